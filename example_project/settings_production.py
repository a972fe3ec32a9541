"""Production settings of the example project: ``settings.py`` with everything a
deployment must decide taken from the environment.

``DJANGO_SETTINGS_MODULE=example_project.settings_production``. Start-up fails,
naming the variable, unless these are set:

- ``DJANGO_SECRET_KEY``: a long random value (it also encrypts the signing keys);
- ``DJANGO_ALLOWED_HOSTS``: the API's host names, comma-separated;
- ``TOKEN_LIFECYCLE_ISSUER``: the public URL of the app, e.g. ``https://api.example.com/auth``;
- ``CACHE_URL``: ``redis://...``, a cache every process shares (revocations,
  throttles).

``DATABASE_URL`` and the other ``TOKEN_LIFECYCLE_<KEY>`` variables work as in
``settings.py``. HTTPS is assumed: ``DJANGO_SECURE_PROXY_SSL_HEADER=1`` trusts
``X-Forwarded-Proto`` from a TLS-terminating proxy (which must set it), and
``DJANGO_HSTS_SUBDOMAINS=0`` leaves subdomains out of HSTS (and of preloading).
``manage.py check --deploy`` passes with no warning
(``tests/test_example_settings.py``).
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from example_project.env import cache_from_url, flag, required
from example_project.settings import *  # noqa: F403
from example_project.settings import TOKEN_LIFECYCLE

DEBUG = False  # whatever DJANGO_DEBUG says
SECRET_KEY = required("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [host.strip() for host in required("DJANGO_ALLOWED_HOSTS").split(",")]

if not TOKEN_LIFECYCLE.get("ISSUER"):
    # Derived from each request's host otherwise: tokens would depend on the name used.
    raise ImproperlyConfigured("Set the environment variable TOKEN_LIFECYCLE_ISSUER.")

_cache_url = required("CACHE_URL")
if urlsplit(_cache_url).scheme not in ("redis", "rediss"):
    # A per-process cache sees another process's revocations only after
    # VALIDATION_CACHE_SECONDS, and counts the throttles per process.
    raise ImproperlyConfigured(
        f"CACHE_URL must be redis://... (a shared cache), not {_cache_url}."
    )
CACHES = {"default": cache_from_url(_cache_url)}

# HTTPS only, and cookies never sent over plain HTTP.
SECURE_SSL_REDIRECT = True
if flag("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 365 * 24 * 3600
SECURE_HSTS_INCLUDE_SUBDOMAINS = flag("DJANGO_HSTS_SUBDOMAINS", True)
# Allows submitting the domain to browsers' preload lists; it takes a submission to happen.
SECURE_HSTS_PRELOAD = SECURE_HSTS_INCLUDE_SUBDOMAINS
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
