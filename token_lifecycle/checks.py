"""System checks: a bad ``TOKEN_LIFECYCLE`` stops ``runserver``/``migrate``/``check``
with a message naming the key, before any token is issued under it."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import connections

from .conf import SETTINGS_NAME, validate


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
