"""Settings of the example project (also used by the test suite).

``DATABASE_URL`` (default: SQLite file ``db.sqlite3``) and ``CACHE_URL``
(default: local memory; ``redis://...`` for Redis) select the stack, so the
same code runs embedded and on PostgreSQL + Redis. ``TOKEN_LIFECYCLE_<KEY>``
variables set the app's settings (:func:`token_lifecycle.conf.from_env`).

``DEBUG`` is off unless ``DJANGO_DEBUG=1``, which ``make demo`` sets for its
server on 127.0.0.1 only. For production, see ``settings_production.py``.
"""

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

from example_project.env import cache_from_url, database_from_url
from token_lifecycle.conf import from_env

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-example-project-only-never-use-in-production"
)
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
# Loopback names only: DEBUG pages are for this machine (and "testserver" for Django's tests).
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "token_lifecycle",
    "example_project",
]
# The OpenAPI schema at /api/schema/ when drf-spectacular is installed (the "openapi" extra).
OPENAPI = importlib.util.find_spec("drf_spectacular") is not None
if OPENAPI:
    INSTALLED_APPS.append("drf_spectacular")

MIDDLEWARE = [
    # First: an unknown Host gets a plain 400, never DEBUG's page (which shows the settings).
    "example_project.middleware.reject_unknown_hosts",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
# Where /auth/authorize/ sends a visitor who is not logged in (Django's default,
# spelled out); the login page is example_project/templates/registration/login.html.
LOGIN_URL = "/accounts/login/"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# An empty variable counts as unset.
DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL") or "sqlite:///db.sqlite3", BASE_DIR
    )
}
CACHES = {"default": cache_from_url(os.environ.get("CACHE_URL") or "locmem://")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "token_lifecycle.authentication.BearerTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
if OPENAPI:
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
    SPECTACULAR_SETTINGS = {
        "TITLE": "django-token-lifecycle example project",
        "DESCRIPTION": "Access/refresh token pairs (token_lifecycle) and a demo endpoint.",
        "VERSION": "0.1.0",
        "SERVE_INCLUDE_SCHEMA": False,  # /api/schema/ itself is not part of the API
    }

# The defaults of docs/lifecycle.md, written out so the example shows every knob;
# TOKEN_LIFECYCLE_<KEY> variables override them (TOKEN_LIFECYCLE_ACCESS_TOKEN_LIFETIME=15m).
TOKEN_LIFECYCLE = from_env(
    {
        "ACCESS_TOKEN_LIFETIME": timedelta(days=15),
        "REFRESH_TOKEN_LIFETIME": timedelta(days=30),
        "REFRESH_GRACE_PERIOD": timedelta(hours=6),
        "MAX_PAIRS_PER_CLIENT": 10,
        "MAX_SESSION_LIFETIME": None,
        "REUSE_DETECTION": True,
        # Behind several processes or hosts, tokens must name one issuer: TOKEN_LIFECYCLE_ISSUER.
        "ISSUER": None,
    }
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
