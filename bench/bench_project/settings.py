"""Settings of the benchmark project: this app and its peers, side by side.

One project holds all four packages (token_lifecycle, djangorestframework-simplejwt
with its blacklist app, django-oauth-toolkit and django-rest-knox) so that they
are measured in the same process, on the same database, with the same
middleware. Each package's view uses only that package's authentication class
(``bench_project.views``); DRF has no default authentication class here.

Environment (set by ``bench/run.py``):

- ``BENCH_DATABASE_URL``: ``sqlite:////abs/path.sqlite3`` or
  ``postgres://postgres@127.0.0.1:5432/bench_tl_...`` (parsed like the example
  project's ``DATABASE_URL``);
- ``BENCH_CACHE_URL``: ``locmem://`` or ``redis://127.0.0.1:6379/9`` (the
  validation cache of token_lifecycle; no peer uses a cache);
- ``BENCH_WORKDIR``: a directory holding ``simplejwt_rs256.pem``, the RSA key
  simplejwt signs with (generated once by ``run.py`` so that every process,
  gunicorn workers included, agrees on it).

Passwords use Django's default hasher (PBKDF2-SHA256) for every package, and
DOT hashes confidential client secrets with it too (its default).
"""

import os
from datetime import timedelta
from pathlib import Path

from example_project.env import cache_from_url, database_from_url

BENCH_DIR = Path(__file__).resolve().parent.parent
WORKDIR = Path(os.environ.get("BENCH_WORKDIR", BENCH_DIR / ".work"))

SECRET_KEY = "bench-only-insecure-secret-key-never-use-in-production-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "token_lifecycle",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "oauth2_provider",
    "knox",
]

# The example project's middleware (where GET /api/whoami/ is served), so that the
# HTTP comparison with AllowAny is made on a realistic stack, the same for everyone.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bench_project.urls"
WSGI_APPLICATION = "bench_project.wsgi.application"
TEMPLATES: list = []

DATABASES = {
    "default": database_from_url(
        os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{WORKDIR / 'bench.sqlite3'}"), BENCH_DIR
    )
}
CACHES = {"default": cache_from_url(os.environ.get("BENCH_CACHE_URL", "locmem://"))}
if CACHES["default"]["BACKEND"] == "token_lifecycle.redis_cache.RedisCache":
    # The same Redis through Django's own backend: "ours (stock RedisCache)" in micro.py.
    CACHES["stock"] = {
        **CACHES["default"],
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

REST_FRAMEWORK = {
    # Every view names its own authentication class: no package gets a head start.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

# token_lifecycle: the defaults of docs/lifecycle.md (ISSUER derived from the request).
TOKEN_LIFECYCLE = {
    "ACCESS_TOKEN_LIFETIME": timedelta(days=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=30),
    "REFRESH_GRACE_PERIOD": timedelta(hours=6),
    "MAX_PAIRS_PER_CLIENT": 10,
    "REUSE_DETECTION": True,
}


def _simplejwt_keys() -> tuple[str, str]:
    pem_file = WORKDIR / "simplejwt_rs256.pem"
    if not pem_file.exists():  # a stray import (ruff, an editor): any key does
        return "", ""
    from cryptography.hazmat.primitives import serialization

    private_pem = pem_file.read_bytes()
    key = serialization.load_pem_private_key(private_pem, password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem.decode(), public_pem.decode()


_SIGNING_PEM, _VERIFYING_PEM = _simplejwt_keys()

# simplejwt: RS256 like our access tokens, refresh rotation with the blacklist.
SIMPLE_JWT = {
    "ALGORITHM": "RS256",
    "SIGNING_KEY": _SIGNING_PEM,
    "VERIFYING_KEY": _VERIFYING_PEM,
    "ACCESS_TOKEN_LIFETIME": timedelta(days=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=30),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# django-oauth-toolkit: its defaults (hashed client secrets, refresh rotation).
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": 15 * 24 * 3600,
    "REFRESH_TOKEN_EXPIRE_SECONDS": 30 * 24 * 3600,
    "ROTATE_REFRESH_TOKEN": True,
}

# knox: its defaults ("Authorization: Token ...", 10 h TTL, no auto-refresh).
REST_KNOX: dict = {}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # DOT logs an RFC 9700 deprecation warning on every password grant.
    "loggers": {"oauth2_provider": {"level": "ERROR"}},
}
