"""Where issue and refresh read and write pairs: a few statements, built once per database.

Every login and every refresh runs the same few statements on the pair
table. The ORM compiles each afresh and converts every column of every row it
reads (all of the principal's live pairs, to learn which to evict); in the
profiles that was over half of a refresh (``make bench``, RESULTS §8). Here
each statement is built once per database from ``TokenPair``'s metadata, with
values converted in and out as the ORM converts them (:class:`.statements.Table`).
Only the rows that are used are converted: the pair being refreshed in full,
the others as ``(pk, issued_at)``.

On PostgreSQL, where every statement is a round trip, the token lookup also
takes the principal's advisory locks (:func:`.locking.principal_locks_sql`),
and an issue's or a refresh's writes (the parent's first use, the new pair,
the evictions) are one statement.

Why not the ORM: ``make bench`` measured a refresh through the ORM at 0.65x
(SQLite) and 0.79x (PostgreSQL) of simplejwt's, against a guard of 0.6x; most
of the difference is compiling six statements per refresh. Everything else
(revocation, listing, the admin) uses the ORM.

What it does not do: send ``pre_save``/``post_save`` for the pairs it writes
(the app's own signals, :mod:`.signals`, report issues and refreshes).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections

from .locking import principal_locks_sql
from .models import TokenPair
from .statements import Table, execute, returns_rows_from_update, user_active


class RefreshTokenOwner(NamedTuple):
    """What the lookup of a refresh token tells before the principal is locked."""

    pair_pk: Any
    client_pk: int
    user_pk: Any
    scope: str
    user_is_active: bool


class LivePair(NamedTuple):
    """A live pair of the principal, as much as the cap needs (``rules.pairs_to_evict``)."""

    pk: Any
    issued_at: datetime


class _Statements:
    """The SQL for one database alias."""

    def __init__(self, alias: str) -> None:
        self.table = table = Table(TokenPair, alias)
        column = table.column
        user = user_active(TokenPair._meta.get_field("user").related_model, alias)
        active, join = "1", ""  # a user model without is_active: always active
        if user is not None:
            active = user.is_active
            join = f" INNER JOIN {user.table} ON {user.pk} = {table.qualified('user_id')}"
        owner = ", ".join(
            [*(table.qualified(name) for name in ("id", "client_id", "user_id", "scope")), active]
        )
        where_digest = (
            f" FROM {table.name}{join} WHERE {table.qualified('refresh_token_digest')} = %s"
        )
        self.find_by_digest = f"SELECT {owner}{where_digest}"
        self.lookup_takes_locks = table.vendor == "postgresql"
        if self.lookup_takes_locks:
            locks = principal_locks_sql(table.qualified("client_id"), table.qualified("user_id"))
            self.find_by_digest_and_lock = f"SELECT {owner}, {locks}{where_digest}"
        # The principal's live pairs (rules.is_live, as an indexed range), oldest first.
        live = (
            f"{column['client_id']} = %s AND {column['user_id']} = %s"
            f" AND {column['revoked_at']} IS NULL AND {column['live_until']} > %s"
        )
        order = f" ORDER BY {column['issued_at']}, {column['id']}"
        self.live_pairs = (
            f"SELECT {column['id']}, {column['issued_at']} FROM {table.name} WHERE {live}{order}"
        )
        # The same plus one pair, in full, whatever its state.
        all_columns = ", ".join(column[name] for name in table.attnames)
        self.live_pairs_and_one = (
            f"SELECT {all_columns} FROM {table.name} WHERE ({live}) OR {column['id']} = %s{order}"
        )
        self.insert = (
            f"INSERT INTO {table.name} ({all_columns})"
            f" VALUES ({', '.join(['%s'] * len(table.attnames))})"
        )
        self.rotate = (
            f"UPDATE {table.name} SET {column['rotated_at']} = %s,"
            f" {column['refresh_grace_ends_at']} = %s, {column['live_until']} = %s"
            f" WHERE {column['id']} = %s"
        )
        # Revocation: the rows this statement changed, so that a pair revoked by
        # two transactions at once is reported (and signalled) by one of them.
        self.returning = returns_rows_from_update(alias)
        self.revoke = (
            f"UPDATE {table.name} SET {column['revoked_at']} = %s, {column['revoke_reason']} = %s"
            f" WHERE {column['revoked_at']} IS NULL AND {column['id']} IN "
        )
        self.revoked_columns = (
            f" RETURNING {column['id']}, {column['client_id']}, {column['user_id']}"
        )
        # PostgreSQL runs an issue's or a refresh's writes as one statement.
        self.combines_writes = table.vendor == "postgresql"
        self._id_index = table.attnames.index("id")
        self._issued_at_index = table.attnames.index("issued_at")


@functools.cache
def _statements_for(alias: str, vendor: str) -> _Statements:
    return _Statements(alias)


def _statements(alias: str) -> _Statements:
    return _statements_for(alias, connections[alias].vendor)


def _execute(alias: str, sql: str, params: list) -> list[tuple]:
    return execute(alias, sql, params)[0]


def lookup_takes_locks(alias: str) -> bool:
    """Whether :func:`find_by_refresh_digest` can take the principal's locks (PostgreSQL)."""
    return _statements(alias).lookup_takes_locks


def find_by_refresh_digest(alias: str, digest: str, *, lock: bool = False):
    """The pair holding this refresh-token digest, with its user's ``is_active``, or None.

    With ``lock`` (only where :func:`lookup_takes_locks`, inside a transaction),
    the same statement also takes the locks of :func:`.locking.lock_principal` for
    the pair's principal, waiting for them; the values returned were read
    before that wait.
    """
    sql = _statements(alias)
    statement = sql.find_by_digest_and_lock if lock else sql.find_by_digest
    rows = _execute(alias, statement, [sql.table.to_db("refresh_token_digest", digest)])
    if not rows:
        return None
    pk, client_pk, user_pk, scope, active = rows[0][:5]
    return RefreshTokenOwner(
        sql.table.from_db("id", pk),
        sql.table.from_db("client_id", client_pk),
        sql.table.from_db("user_id", user_pk),
        scope,
        bool(active),
    )


def live_pairs(alias: str, client_pk: int, user_pk, now: datetime) -> list[LivePair]:
    """The principal's live pairs at ``now``, oldest first (ties by id)."""
    sql = _statements(alias)
    params = [
        sql.table.to_db("client_id", client_pk),
        sql.table.to_db("user_id", user_pk),
        sql.table.to_db("live_until", now),
    ]
    return [
        LivePair(sql.table.from_db("id", pk), sql.table.from_db("issued_at", issued_at))
        for pk, issued_at in _execute(alias, sql.live_pairs, params)
    ]


def live_pairs_and_one(
    alias: str, client_pk: int, user_pk, now: datetime, pair_pk
) -> tuple[TokenPair | None, list[LivePair]]:
    """``pair_pk`` in full (None if gone), and the principal's *other* live pairs, oldest first."""
    sql = _statements(alias)
    params = [
        sql.table.to_db("client_id", client_pk),
        sql.table.to_db("user_id", user_pk),
        sql.table.to_db("live_until", now),
        sql.table.to_db("id", pair_pk),
    ]
    found, others = None, []
    for row in _execute(alias, sql.live_pairs_and_one, params):
        pk = sql.table.from_db("id", row[sql._id_index])
        if pk == pair_pk:
            values = [
                sql.table.from_db(name, value)
                for name, value in zip(sql.table.attnames, row, strict=True)
            ]
            found = TokenPair.from_db(alias, sql.table.attnames, values)
        else:
            others.append(LivePair(pk, sql.table.from_db("issued_at", row[sql._issued_at_index])))
    return found, others


_REVOKE_BATCH = 500  # bounded IN lists (SQLite's variable limit)


def insert(
    alias: str,
    pair: TokenPair,
    *,
    rotated_parent: TokenPair | None = None,
    evict: list = (),
    revoked_at: datetime | None = None,
    reason: str = "",
) -> list[tuple]:
    """Insert ``pair`` (``save(force_insert=True)`` without the compile and model signals).

    With ``rotated_parent``, also store the parent's first use (:func:`save_rotation`);
    with ``evict``, also revoke those pairs (:func:`mark_revoked`, whose rows it returns).
    On PostgreSQL that is one statement, each write in its own ``WITH`` clause:
    they touch different rows, except when the parent itself is evicted, which
    runs as separate statements.
    """
    sql = _statements(alias)
    connection = connections[alias]
    params = [
        field.get_db_prep_save(getattr(pair, field.attname), connection)
        for field in sql.table.fields
    ]
    evict = list(evict)
    combined = (
        sql.combines_writes
        and len(evict) <= _REVOKE_BATCH
        and (rotated_parent is None or rotated_parent.pk not in evict)
    )
    if not combined:
        if rotated_parent is not None:
            save_rotation(alias, rotated_parent)
        _execute(alias, sql.insert, params)
        revoked = mark_revoked(alias, evict, reason, revoked_at)
    else:
        clauses, all_params = [f"inserted AS ({sql.insert})"], params
        if rotated_parent is not None:
            clauses.insert(0, f"rotated AS ({sql.rotate})")
            all_params = _rotation_params(sql, rotated_parent) + all_params
        if evict:
            revoke, revoke_params = _revoke_statement(sql, evict, reason, revoked_at)
            clauses.append(f"evicted AS ({revoke})")
            all_params = all_params + revoke_params
            result = "SELECT * FROM evicted"
        else:
            result = "SELECT 1"
        rows = _execute(alias, f"WITH {', '.join(clauses)} {result}", all_params)
        revoked = _revoked_rows(sql, rows) if evict else []
    pair._state.adding = False
    pair._state.db = alias
    return revoked


def mark_revoked(alias: str, pair_ids, reason: str, now: datetime) -> list[tuple]:
    """Revoke those of the pairs not revoked yet; return their ``(id, client_pk, user_pk)``.

    PostgreSQL and SQLite do it with ``UPDATE ... RETURNING``; other databases
    lock the rows, read them, then update them.
    """
    sql = _statements(alias)
    pair_ids = list(pair_ids)
    rows: list[tuple] = []
    for start in range(0, len(pair_ids), _REVOKE_BATCH):
        batch = pair_ids[start : start + _REVOKE_BATCH]
        if not sql.returning:
            pending = TokenPair.objects.using(alias).select_for_update()
            found = pending.filter(pk__in=batch, revoked_at__isnull=True)
            changed = list(found.values_list("pk", "client_id", "user_id"))
            TokenPair.objects.using(alias).filter(pk__in=[row[0] for row in changed]).update(
                revoked_at=now, revoke_reason=reason
            )
            rows += changed
            continue
        statement, params = _revoke_statement(sql, batch, reason, now)
        rows += _revoked_rows(sql, _execute(alias, statement, params))
    return rows


def _revoke_statement(sql: _Statements, pair_ids: list, reason: str, now: datetime):
    placeholders = ", ".join(["%s"] * len(pair_ids))
    params = [sql.table.to_db("revoked_at", now), str(reason)]
    params += [sql.table.to_db("id", pair_id) for pair_id in pair_ids]
    return f"{sql.revoke}({placeholders}){sql.revoked_columns}", params


def _revoked_rows(sql: _Statements, rows: list[tuple]) -> list[tuple]:
    return [
        (
            sql.table.from_db("id", pk),
            sql.table.from_db("client_id", client_pk),
            sql.table.from_db("user_id", user_pk),
        )
        for pk, client_pk, user_pk in rows
    ]


def save_rotation(alias: str, pair: TokenPair) -> None:
    """Store the first use of ``pair``'s refresh token (rule 2): its grace end and liveness."""
    sql = _statements(alias)
    _execute(alias, sql.rotate, _rotation_params(sql, pair))


def _rotation_params(sql: _Statements, pair: TokenPair) -> list:
    return [
        sql.table.to_db("rotated_at", pair.rotated_at),
        sql.table.to_db("refresh_grace_ends_at", pair.refresh_grace_ends_at),
        sql.table.to_db("live_until", pair.live_until),
        sql.table.to_db("id", pair.pk),
    ]
