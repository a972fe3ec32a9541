"""Settings of the soak run: the example project's, for production-like processes.

Selected with ``DJANGO_SETTINGS_MODULE=soak_settings`` (``bench/`` on the
path) by ``bench/soak.py`` for the gunicorn workers, the purge command and
the soak process itself. The stack comes from the environment variables the
example project reads (``DATABASE_URL``, ``CACHE_URL``,
``TOKEN_LIFECYCLE_ISSUER``, ``DJANGO_DEBUG``). Only two things differ:

- password hashing is PBKDF2 with 1,000 iterations (``soak_hashers``) so that
  password logins cost what they cost minus the deliberate slowness;
- log lines carry a timestamp and the process id, so that a traceback in the
  gunicorn log can be matched with the request that caused it;
- each process names its database connections ``soak-pid-<pid>``
  (``application_name``), so that the soak can tell from ``pg_stat_activity``
  which gunicorn worker is inside which transaction.

Gunicorn imports the settings in each worker after the fork (no ``--preload``),
so ``os.getpid()`` here is the worker's.
"""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES

DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = f"soak-pid-{os.getpid()}"

PASSWORD_HASHERS = ["soak_hashers.SoakPBKDF2PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "stamped": {"format": "%(asctime)s pid=%(process)d %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "stamped"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
