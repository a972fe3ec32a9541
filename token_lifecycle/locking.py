"""Who waits for whom when pairs change: the principal's lock and the user's lock.

Every change to a principal's pairs (issue, refresh, eviction) runs in one
short transaction holding that principal's lock, so the cap holds exactly
however many processes issue at once, while other principals never wait. A
user-wide revocation (logout-all, a password change) holds the user's lock,
which every issue and refresh of that user takes shared, so no pair issued
concurrently escapes it.

- PostgreSQL: transaction-scoped advisory locks named below; no row is locked.
- SQLite: nothing; the database admits one writer at a time (use
  ``transaction_mode: IMMEDIATE``, which ``manage.py check`` asks for).
- Other backends: the user's row stands in for both locks, which serialises
  one user's logins across clients.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router

from .models import TokenPair

_PREFIX = "token_lifecycle:"


def user_lock_name(user_pk: Any) -> str:
    return f"{_PREFIX}user:{user_pk}"


def principal_lock_name(client_pk: Any, user_pk: Any) -> str:
    return f"{_PREFIX}principal:{client_pk}:{user_pk}"


def principal_locks_sql(client_column: str, user_column: str) -> str:
    """:func:`lock_principal`'s two locks as SQL taking them for a row's principal (PostgreSQL).

    The names are the ones above, built by the database from the row's
    columns (``tests/test_pair_store.py`` checks that they are the same).
    """
    user = f"'{_PREFIX}user:' || {user_column}"
    principal = f"'{_PREFIX}principal:' || {client_column} || ':' || {user_column}"
    return (
        f"pg_advisory_xact_lock_shared(hashtextextended({user}, 0)),"
        f" pg_advisory_xact_lock(hashtextextended({principal}, 0))"
    )


def database() -> str:
    """The database alias pairs are written to."""
    return router.db_for_write(TokenPair)


def lock_principal(client_pk: Any, user_pk: Any) -> None:
    """Hold (client, user)'s lock, and the user's lock shared, until the transaction ends."""
    _lock(
        user_pk,
        shared=[user_lock_name(user_pk)],
        exclusive=[principal_lock_name(client_pk, user_pk)],
    )


def lock_user(user_pk: Any) -> None:
    """Hold the user's lock until the transaction ends: every issue and refresh of it waits."""
    _lock(user_pk, shared=[], exclusive=[user_lock_name(user_pk)])


def _lock(user_pk: Any, *, shared: list[str], exclusive: list[str]) -> None:
    connection = connections[database()]
    if connection.vendor == "postgresql":
        calls = [("pg_advisory_xact_lock_shared", name) for name in shared]
        calls += [("pg_advisory_xact_lock", name) for name in exclusive]
        sql = ", ".join(f"{function}(hashtextextended(%s, 0))" for function, _ in calls)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {sql}", [name for _, name in calls])
    elif connection.features.has_select_for_update:
        user_model = TokenPair._meta.get_field("user").related_model
        rows = user_model._default_manager.using(database()).select_for_update()
        list(rows.filter(pk=user_pk).values_list("pk"))
