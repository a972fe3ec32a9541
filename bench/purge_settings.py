"""Django settings for ``bench/purge.py``: one minimal project per package under test.

``BENCH_PURGE_PACKAGE`` picks the package (``ours``, ``simplejwt`` or ``oauth_toolkit``)
so that only its tables exist; ``BENCH_PURGE_DATABASE_URL`` the PostgreSQL
database ``bench/purge.py`` created for it. ``DEBUG`` is off, as in production:
with it on, Django would keep the SQL of every query in memory.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from example_project.env import database_from_url

PACKAGE = os.environ.get("BENCH_PURGE_PACKAGE", "ours")
PACKAGE_APPS = {
    "ours": ["rest_framework", "token_lifecycle"],
    "simplejwt": ["rest_framework_simplejwt", "rest_framework_simplejwt.token_blacklist"],
    "oauth_toolkit": ["oauth2_provider"],
}

SECRET_KEY = "bench-purge-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", *PACKAGE_APPS[PACKAGE]]

_database = database_from_url(os.environ["BENCH_PURGE_DATABASE_URL"], Path.cwd())
_database["CONN_MAX_AGE"] = 0
DATABASES = {"default": _database}

# The retention each package's cleanup keeps, aligned on ours (PURGE_RETENTION, 7 days).
# django-oauth-toolkit deletes a refresh token this long after its access token expired;
# without the setting, cleartokens leaves every refresh token (and its access token) alone.
OAUTH2_PROVIDER = {"REFRESH_TOKEN_EXPIRE_SECONDS": 7 * 24 * 3600}
