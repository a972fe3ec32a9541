"""A second service that accepts the example project's tokens: ``make resource-server`` (:8001).

It installs neither ``token_lifecycle`` nor any model: it checks tokens with
``token_lifecycle.remote.RemoteTokenAuthentication``, from the JWKS and the
introspection endpoint of the authorization server (``make demo``, :8000).
``manage.py demo_setup`` creates its introspecting client and prints the
variables to export:

- ``RESOURCE_SERVER_CLIENT_ID``, ``RESOURCE_SERVER_CLIENT_SECRET`` (required);
- ``RESOURCE_SERVER_ISSUER`` (default ``http://127.0.0.1:8000/auth``);
- ``RESOURCE_SERVER_CACHE_SECONDS`` (default 300): how late a revocation is seen here;
- ``CACHE_URL`` (default local memory; ``redis://...`` to share answers between services).
"""

import os

from django.core.exceptions import ImproperlyConfigured

from example_project.env import cache_from_url

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "resource-server-example-only")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"  # off unless asked for, as in settings.py
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]
ROOT_URLCONF = "example_project.resource_server.urls"
INSTALLED_APPS = ["rest_framework"]
DATABASES: dict = {}
CACHES = {"default": cache_from_url(os.environ.get("CACHE_URL") or "locmem://")}
USE_TZ = True


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(
            f"Set {name}: the resource server introspects tokens as a client with "
            "can_introspect. `python manage.py demo_setup` creates one and prints "
            "RESOURCE_SERVER_CLIENT_ID and RESOURCE_SERVER_CLIENT_SECRET to export."
        )
    return value


def _seconds(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ImproperlyConfigured(f"{name}={text!r} is not a whole number of seconds.")
    return int(text)


TOKEN_LIFECYCLE_REMOTE = {
    "ISSUER": os.environ.get("RESOURCE_SERVER_ISSUER") or "http://127.0.0.1:8000/auth",
    "CLIENT_ID": _required("RESOURCE_SERVER_CLIENT_ID"),
    "CLIENT_SECRET": _required("RESOURCE_SERVER_CLIENT_SECRET"),
    "CACHE_SECONDS": _seconds("RESOURCE_SERVER_CACHE_SECONDS", 300),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["token_lifecycle.remote.RemoteTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,  # no django.contrib.auth here
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
