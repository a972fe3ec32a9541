"""Deleting dead pairs and retired signing keys (``purge_expired_tokens``, docs/lifecycle.md).

**What is dead.** A pair's row matters until it can no longer change any
answer: a revoked pair from its ``revoked_at``; an unrevoked one until both
of its tokens have expired, ``max(access_expires_at, refresh_expires_at)``
(:func:`dead_since`). For a pair whose refresh token was never used that is
exactly ``live_until``. For a used one it is later: its ``live_until`` moved
back (to its access expiry or grace end, whichever is later), but a replay of
its refresh token before ``refresh_expires_at`` must still find the row, or
reuse detection (docs/lifecycle.md rule 2) would silently stop working and a stolen
token family would live on.
A pair is deleted once it has been dead for longer than the retention
(``PURGE_RETENTION``, seven days by default), so that admins still see
recent revocations. A live pair is never dead, so never deleted.

**How.** In batches, each its own short transaction: select the next batch
of ids in ``dead_since`` order with ``FOR UPDATE SKIP LOCKED`` (an index
range scan on ``tl_pair_dead_since``, resumed where the previous batch
ended), then delete exactly those ids. On PostgreSQL both happen in one
statement and no id leaves the server (:func:`batch_statement`); elsewhere
the ids come to Python and go back in one ``DELETE ... WHERE id IN``. No
model instance is loaded and no delete signal is sent: Django's deletion
collector would load every row into memory as soon as any project connects a
``pre_delete``/``post_delete`` receiver, and ``parent`` deliberately has no
database constraint, so there is nothing to cascade. Memory is bounded by one
batch of ids whatever the table size.

**Alongside traffic.** The purge only ever locks dead rows, and only with
``SKIP LOCKED``: a row that some request holds (say, an RFC 7009 revocation of
an expired pair) is skipped and left for the next run, so the purge never
waits for a lock and cannot take part in a deadlock. Live rows are outside
the index range it scans. Nothing enters that range during a run (the only
change to a pair's ``dead_since`` is a revocation, which sets it to now,
after the cutoff), so resuming each batch where the previous one ended misses
nothing but the skipped rows.

On backends without ``SKIP LOCKED`` (SQLite, which has one writer at a time
anyway) the batch is selected without row locks.

**Authorization codes** are dead from their ``expires_at``, used or not: no
exchange can succeed after it. They are kept for the same retention, so that
a late replay of a used code still finds it and revokes the family it
started (docs/code-flow.md), then deleted the same way, in ``expires_at``
order.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Expression, Model, QuerySet
from django.db.models.functions import Coalesce, Greatest

from .clock import now as clock
from .models import AuthorizationCode, SigningKey, TokenPair

#: Rows per batch: big enough that per-statement overhead vanishes, small enough
#: that each transaction is short and one batch of ids is a few hundred kB.
DEFAULT_BATCH_SIZE = 5000
#: Upper bound for ``--batch-size``: beyond it a batch stops being a short transaction.
MAX_BATCH_SIZE = 100_000

#: Name of the ``dead_since`` annotation, and of the index that serves it.
DEAD_SINCE = "dead_since"
DEAD_SINCE_INDEX = "tl_pair_dead_since"


def dead_since() -> Expression:
    """When a pair stopped mattering: revoked, or both tokens expired (see module docstring).

    Live pairs have a ``dead_since`` in the future. The expression is the one
    indexed as ``tl_pair_dead_since`` (``TokenPair.Meta.indexes``); the two
    must stay identical for the database to use the index.
    """
    return Coalesce("revoked_at", Greatest("access_expires_at", "refresh_expires_at"))


def purgeable_pairs(cutoff: datetime) -> QuerySet:
    """Pairs dead since before ``cutoff``, annotated with ``dead_since``."""
    return (
        TokenPair._base_manager.annotate(**{DEAD_SINCE: dead_since()})
        .filter(**{f"{DEAD_SINCE}__lt": cutoff})
        .order_by()
    )


def retired_signing_keys(cutoff: datetime) -> QuerySet:
    """Keys that stopped verifying before ``cutoff``: no token they signed is accepted."""
    return SigningKey._base_manager.filter(verify_until__lt=cutoff).order_by()


def expired_codes(cutoff: datetime) -> QuerySet:
    """Authorization codes expired before ``cutoff`` (used or not)."""
    return AuthorizationCode._base_manager.filter(expires_at__lt=cutoff).order_by()


@dataclasses.dataclass
class PurgeReport:
    """What a purge did (or, for a dry run, would do); filled in as it runs."""

    dry_run: bool
    retention: timedelta
    #: Pairs dead since before this instant are purged: the run's clock minus the retention.
    cutoff: datetime
    pairs: int = 0
    batches: int = 0
    signing_keys: int = 0
    authorization_codes: int = 0
    #: Pairs live at the run's clock, counted after the purge.
    live_pairs: int = 0
    #: Purgeable pairs left because another transaction held them (next run's work).
    pairs_left_locked: int = 0
    seconds: float = 0.0

    @property
    def pairs_per_second(self) -> float | None:
        return self.pairs / self.seconds if self.seconds > 0 else None


class PurgeFailed(Exception):
    """The database failed mid-purge. Batches already committed stay deleted."""

    def __init__(self, error: DatabaseError, progress: PurgeReport) -> None:
        super().__init__(str(error))
        self.error = error
        self.progress = progress


BatchCallback = Callable[[int, int], None]


def purge(
    *,
    retention: timedelta,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    now: datetime | None = None,
    on_batch: BatchCallback | None = None,
) -> PurgeReport:
    """Delete pairs, signing keys and authorization codes dead for longer than ``retention``.

    ``on_batch(batch_number, rows_in_batch)`` is called after each committed
    batch of pairs (progress output, tests). Raises :class:`PurgeFailed` on a
    database error, with what was done so far.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    if retention < timedelta(0):
        raise ValueError("retention must not be negative")
    now = clock() if now is None else now
    report = PurgeReport(dry_run=dry_run, retention=retention, cutoff=now - retention)
    started = time.perf_counter()

    def batch_done(number: int, rows: int) -> None:
        report.pairs += rows
        report.batches = number
        if on_batch is not None:
            on_batch(number, rows)

    try:
        if dry_run:
            report.pairs = purgeable_pairs(report.cutoff).count()
            report.batches = math.ceil(report.pairs / batch_size)
            report.signing_keys = retired_signing_keys(report.cutoff).count()
            report.authorization_codes = expired_codes(report.cutoff).count()
        else:
            delete_in_batches(purgeable_pairs(report.cutoff), DEAD_SINCE, batch_size, batch_done)
            report.signing_keys = delete_in_batches(
                retired_signing_keys(report.cutoff), "verify_until", batch_size
            )
            report.authorization_codes = delete_in_batches(
                expired_codes(report.cutoff), "expires_at", batch_size
            )
            report.pairs_left_locked = purgeable_pairs(report.cutoff).count()
        report.live_pairs = TokenPair.objects.live(now).count()
    except DatabaseError as error:
        raise PurgeFailed(error, report) from error
    finally:
        report.seconds = time.perf_counter() - started
    return report


def delete_in_batches(
    rows: QuerySet,
    order_key: str,
    batch_size: int,
    on_batch: BatchCallback | None = None,
) -> int:
    """Delete ``rows`` in ``order_key`` order, one short transaction per batch; return the count.

    ``order_key`` must be indexed (for pairs, ``dead_since`` is), so that each
    batch is a range scan starting where the previous one ended.
    """
    using = router.db_for_write(rows.model)
    deleted = batches = 0
    floor = None
    while True:
        with transaction.atomic(using=using):
            batch = delete_batch(
                batch_query(rows, order_key, batch_size, floor=floor, using=using)
            )
        if not batch.found:
            return deleted
        deleted += batch.deleted
        batches += 1
        floor = batch.last_key
        _forget_debug_queries(using)
        if on_batch is not None:
            on_batch(batches, batch.deleted)
        if batch.found < batch_size:
            return deleted


def batch_query(
    rows: QuerySet, order_key: str, batch_size: int, *, floor=None, using: str
) -> QuerySet:
    """The next batch: ``(pk, order_key)`` of up to ``batch_size`` rows from ``floor`` up.

    Rows locked by another transaction are skipped (``SKIP LOCKED``) where the
    database supports it; must be evaluated inside a transaction.
    """
    if floor is not None:
        rows = rows.filter(**{f"{order_key}__gte": floor})
    features = connections[using].features
    if features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    return rows.using(using).order_by(order_key).values_list("pk", order_key)[:batch_size]


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch, done: rows selected, rows deleted, and the ``order_key`` of the last one."""

    found: int
    deleted: int
    last_key: Any


def delete_batch(batch: QuerySet) -> Batch:
    """Delete the rows ``batch`` (a :func:`batch_query`) selects, in the caller's transaction."""
    if connections[batch.db].vendor == "postgresql":
        with connections[batch.db].cursor() as cursor:
            cursor.execute(*batch_statement(batch))
            return Batch(*cursor.fetchone())
    found = list(batch)
    if not found:
        return Batch(0, 0, None)
    return Batch(
        len(found), _delete_ids(batch.model, [pk for pk, _ in found], batch.db), found[-1][1]
    )


def batch_statement(batch: QuerySet) -> tuple[str, tuple]:
    """PostgreSQL: select, lock and delete one batch in a single statement.

    The batch's ``SELECT ... FOR UPDATE SKIP LOCKED`` becomes a CTE, the
    DELETE removes exactly its ids (a primary-key lookup each), and the
    answer is one row: rows found, rows deleted, last ``order_key``. Nothing
    per row travels to Python (on other databases the ids do, see
    :func:`_delete_ids`), which makes a batch several times cheaper.
    """
    connection = connections[batch.db]
    select, params = batch.query.get_compiler(batch.db).as_sql()
    table = connection.ops.quote_name(batch.model._meta.db_table)
    pk = connection.ops.quote_name(batch.model._meta.pk.column)
    sql = (
        f"WITH batch (batch_pk, batch_key) AS MATERIALIZED ({select}), "
        f"deleted AS (DELETE FROM {table} WHERE {pk} = ANY(ARRAY(SELECT batch_pk FROM batch))"
        " RETURNING 1) "
        "SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM deleted),"
        " (SELECT max(batch_key) FROM batch)"
    )
    return sql, params


def _forget_debug_queries(using: str) -> None:
    """Drop the SQL that ``DEBUG = True`` made Django keep for this connection.

    Django keeps the last 9,000 queries while ``DEBUG`` is on and resets them
    at the start of each request; a management command has no request, and
    each batch's DELETE may carry a whole batch of ids (about 200 kB of SQL),
    so a long purge would otherwise hold up to ~2 GB of query log. Explicit
    capture (``CaptureQueriesContext``, ``assertNumQueries``) is left alone.
    """
    connection = connections[using]
    if connection.queries_logged and not connection.force_debug_cursor:
        connection.queries_log.clear()


def _delete_ids(model: type[Model], ids: list, using: str) -> int:
    """``DELETE ... WHERE pk IN (ids)``, without loading rows or sending signals.

    Split only where the backend limits query parameters (SQLite: 999).
    """
    chunk = connections[using].features.max_query_params or len(ids)
    deleted = 0
    for start in range(0, len(ids), chunk):
        # QuerySet._raw_delete: one DELETE statement, no collector, no signals.
        rows = model._base_manager.using(using).filter(pk__in=ids[start : start + chunk])
        deleted += rows._raw_delete(using)
    return deleted
