"""Read ``DATABASE_URL`` and ``CACHE_URL`` into Django settings dicts, and other variables.

Small on purpose (no dj-database-url dependency): the example project needs
SQLite, PostgreSQL, local memory and Redis, and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def database_from_url(url: str, base_dir: Path) -> dict:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db or sqlite:////absolute/path.db
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        name = path if Path(path).is_absolute() else str(base_dir / (path or "db.sqlite3"))
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            # One writer at a time, waiting instead of failing: see README, SQLite.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    if parts.scheme in ("postgres", "postgresql"):
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            # Lets parallel test runs on one server use separate test databases.
            "TEST": {"NAME": os.environ.get("TEST_DATABASE_NAME")},
        }
    raise ValueError(f"Unsupported DATABASE_URL scheme {parts.scheme!r}")


def cache_from_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        # Django's RedisCache, reusing its Redis client (see token_lifecycle/redis_cache.py).
        return {"BACKEND": "token_lifecycle.redis_cache.RedisCache", "LOCATION": url}
    if parts.scheme == "locmem":
        # Room for the validation entries of many pairs (Django's default is 300).
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 20000},
        }
    if parts.scheme == "dummy":
        return {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    raise ValueError(f"Unsupported CACHE_URL scheme {parts.scheme!r}")


def required(name: str) -> str:
    """The value of an environment variable that has no sensible default."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"Set the environment variable {name}.")
    return value


def flag(name: str, default: bool) -> bool:
    """``1``/``0`` (also ``true``/``false``, ``yes``/``no``); ``default`` when unset."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not 1 or 0.")
