"""A second, database-less service that trusts the example project's tokens.

Run the auth server (``make demo``) and, in another terminal,
``make resource-server`` (127.0.0.1:8001), then
``curl -H "Authorization: Bearer $ACCESS" http://127.0.0.1:8001/api/resource/``.
"""

import os

SECRET_KEY = "resource-server-example-only"
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"  # off unless asked for, as in settings.py
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "example_project.resource_server.urls"
INSTALLED_APPS = ["rest_framework"]
DATABASES: dict = {}
USE_TZ = True

AUTH_SERVER = os.environ.get("AUTH_SERVER", "http://127.0.0.1:8000")
AUTH_SERVER_ISSUER = os.environ.get("AUTH_SERVER_ISSUER", f"{AUTH_SERVER}/auth")
AUTH_SERVER_JWKS_URL = f"{AUTH_SERVER_ISSUER}/.well-known/jwks.json"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "example_project.resource_server.authentication.JWKSAuthentication"
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}
