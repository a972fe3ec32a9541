"""System checks: a bad ``TOKEN_LIFECYCLE`` stops ``runserver``/``migrate``/``check``
with a message naming the key, before any token is issued under it.

``manage.py check --deploy`` adds the warnings that only matter in production
(they would be noise under ``runserver``): a validation or throttle cache local
to each process (W002), an issuer derived from each request's host (W003), and
signing keys encrypted under a secret that is not secret (W004).
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.checks import Error, Tags, Warning, register
from django.db import connections
from django.utils.module_loading import import_string

from .conf import SETTINGS_NAME, validate

#: SECRET_KEY values published with this project: never a secret.
PUBLIC_SECRET_KEYS = frozenset({"django-insecure-example-project-only-never-use-in-production"})


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    _, problems = validate(getattr(settings, SETTINGS_NAME, None))
    return [Error(problem, id="token_lifecycle.E001") for problem in problems]


@register(Tags.database)
def check_sqlite_transaction_mode(app_configs=None, databases=None, **kwargs) -> list:
    """Concurrent token requests on SQLite need write-locking (IMMEDIATE) transactions.

    With SQLite's default deferred transactions, two requests that both read
    and then write fail with "database is locked" instead of waiting.
    """
    warnings = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "sqlite":
            continue
        mode = connection.settings_dict.get("OPTIONS", {}).get("transaction_mode")
        if str(mode).upper() not in ("IMMEDIATE", "EXCLUSIVE"):
            warnings.append(
                Warning(
                    f"Database {alias!r} is SQLite without transaction_mode IMMEDIATE: "
                    "concurrent token requests may fail with 'database is locked'.",
                    hint='Set DATABASES[...]["OPTIONS"]["transaction_mode"] = "IMMEDIATE".',
                    id="token_lifecycle.W001",
                )
            )
    return warnings


def _backend(alias: str) -> type | None:
    """The backend class of a configured cache, without connecting to it."""
    try:
        return import_string(settings.CACHES[alias]["BACKEND"])
    except Exception:  # an unknown alias or backend fails loudly elsewhere
        return None


def _per_process(backend: type | None) -> bool:
    return backend is not None and issubclass(backend, LocMemCache)


@register(Tags.caches, Tags.security, deploy=True)
def check_shared_cache(app_configs=None, **kwargs) -> list:
    """W002: the validation cache and the throttles need a cache every process shares."""
    lifecycle, _ = validate(getattr(settings, SETTINGS_NAME, None))
    if lifecycle is None:
        return []  # E001 says what to fix first
    problems = []
    alias = lifecycle.cache_alias
    if lifecycle.validation_cache_seconds and _per_process(_backend(alias)):
        problems.append(
            f"The validation cache (CACHE_ALIAS {alias!r}) is local to each process: with "
            "several processes (gunicorn -w 2), a token revoked through one process keeps "
            "working on the others for up to VALIDATION_CACHE_SECONDS "
            f"({lifecycle.validation_cache_seconds} s)."
        )
    # DRF's throttles (token_lifecycle.oauth.throttling) count in the default cache.
    throttle_cache = _backend("default")
    if _per_process(throttle_cache):
        problems.append(
            "The token endpoint's throttles count in the default cache, local to each "
            "process: N processes allow N times the configured rates."
        )
    elif throttle_cache is not None and issubclass(throttle_cache, DummyCache):
        problems.append(
            "The default cache is DummyCache: the token endpoint's throttles never count, "
            "so password guessing is not limited."
        )
    if not problems:
        return []
    return [
        Warning(
            " ".join(problems),
            hint="Use a cache that every process shares, such as Redis: "
            "{'BACKEND': 'token_lifecycle.redis_cache.RedisCache', 'LOCATION': 'redis://...'} "
            "as CACHES['default'] (and as CACHE_ALIAS if it names another cache). "
            "One process only? Add 'token_lifecycle.W002' to SILENCED_SYSTEM_CHECKS.",
            id="token_lifecycle.W002",
        )
    ]


@register(Tags.security, deploy=True)
def check_issuer(app_configs=None, **kwargs) -> list:
    """W003: without ISSUER, each request's host names the issuer (:mod:`.issuer`)."""
    lifecycle, _ = validate(getattr(settings, SETTINGS_NAME, None))
    if lifecycle is None or lifecycle.issuer:
        return []
    return [
        Warning(
            f"{SETTINGS_NAME}['ISSUER'] is not set, so the issuer of a token is derived from "
            "the host of the request that issued it: a token issued at "
            "http://localhost:8000 is refused at http://127.0.0.1:8000, and one issued "
            "through a host name of the API is refused through any other.",
            hint=f"Set {SETTINGS_NAME}['ISSUER'] to the public URL the app is mounted at, "
            "e.g. 'https://api.example.com/auth' (the variable TOKEN_LIFECYCLE_ISSUER with "
            "token_lifecycle.conf.from_env()).",
            id="token_lifecycle.W003",
        )
    ]


def _weakness(secret: str) -> str | None:
    """Why a secret is not one (Django's own rules for SECRET_KEY, security.W009), or None."""
    if secret in PUBLIC_SECRET_KEYS:
        return "is the example project's published value"
    if secret.startswith("django-insecure"):
        return "starts with 'django-insecure'"
    if len(secret) < 50:
        return "is shorter than 50 characters"
    if len(set(secret)) < 5:
        return "has fewer than 5 different characters"
    return None


@register(Tags.security, deploy=True)
def check_key_encryption_secret(app_configs=None, **kwargs) -> list:
    """W004: private signing keys are encrypted under a secret (:mod:`.keys.encryption`)."""
    lifecycle, _ = validate(getattr(settings, SETTINGS_NAME, None))
    if lifecycle is None:
        return []
    if lifecycle.key_encryption_secret:
        name, secret = f"{SETTINGS_NAME}['KEY_ENCRYPTION_SECRET']", lifecycle.key_encryption_secret
    else:
        name, secret = "SECRET_KEY", str(getattr(settings, "SECRET_KEY", ""))
    weakness = _weakness(secret)
    if weakness is None:
        return []
    return [
        Warning(
            f"Private signing keys are encrypted at rest with {name}, which {weakness}: "
            "whoever reads the database and knows or guesses it can decrypt the keys and "
            "sign tokens.",
            hint="Give SECRET_KEY a long random value from the environment "
            "(django.core.management.utils.get_random_secret_key()), or set "
            "KEY_ENCRYPTION_SECRET to one. Keys stored under the old SECRET_KEY still decrypt "
            "while it is in SECRET_KEY_FALLBACKS: replace them (manage.py rotate_signing_key "
            "--compromised), then drop it.",
            id="token_lifecycle.W004",
        )
    ]
