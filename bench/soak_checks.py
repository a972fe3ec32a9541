"""What must hold after the soak, judged from the database and the client-side history.

The database is the server-side truth: every pair row, and for each revoked
row the instant its revocation committed (``pg_xact_commit_timestamp`` of
the row's ``xmin``; the private cluster runs with ``track_commit_timestamp``).
The history is what clients sent and were answered. The soak process, the
gunicorn workers and PostgreSQL share the host clock.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

import psycopg
from soak_load import AdminAction, CapSamples, Event

TOKEN_ENDPOINTS = ("client_credentials", "password", "refresh")
#: A request sent this long after a revocation's commit timestamp must be refused.
#: Covers the commit's WAL flush, between the timestamp and the row becoming visible.
COMMIT_VISIBILITY_TOLERANCE = 0.25


@dataclasses.dataclass
class Check:
    name: str
    passed: bool
    detail: str
    evidence: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Row:
    id: str
    client_id: int
    user_id: int
    family_id: str
    parent_id: str | None
    digest: str
    issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    rotated_at: datetime | None
    refresh_grace_ends_at: datetime | None
    session_ends_at: datetime | None
    live_until: datetime
    revoked_at: datetime | None
    revoke_reason: str
    committed: float | None  # commit time of the row's last writer (epoch seconds)

    @property
    def end(self) -> datetime:
        """When the pair stopped (or stops) being live."""
        return min(self.revoked_at, self.live_until) if self.revoked_at else self.live_until


@dataclasses.dataclass(frozen=True)
class PolicyView:
    access: timedelta
    refresh: timedelta
    grace: timedelta
    cap: int


def load_rows(dsn: str, table: str) -> dict[str, Row]:
    sql = (
        "SELECT id::text, client_id, user_id, family_id::text, parent_id::text, "
        "refresh_token_digest, issued_at, access_expires_at, refresh_expires_at, rotated_at, "
        "refresh_grace_ends_at, session_ends_at, live_until, revoked_at, revoke_reason, "
        f"extract(epoch FROM pg_xact_commit_timestamp(xmin))::float FROM {table}"
    )
    with psycopg.connect(dsn, autocommit=True) as connection:
        return {values[0]: Row(*values) for values in connection.execute(sql).fetchall()}


def sample(items: Iterable, count: int = 5) -> list[str]:
    return [str(item) for item in list(items)[:count]]


# -- HTTP statuses ----------------------------------------------------------------


def check_no_server_errors(events: list[Event]) -> Check:
    errors = [e for e in events if e.status >= 500 and e.status != 503]
    return Check(
        "No 500 (no 5xx other than 503)",
        not errors,
        f"{len(errors)} of {len(events)} requests" if errors else f"0 of {len(events)} requests",
        [f"{e.endpoint} by {e.actor} sent {e.t_sent:.3f}: {e.status} {e.error}" for e in errors],
    )


def check_503s(events: list[Event], windows: list[tuple[float, float]], margin: float) -> Check:
    """Every 503 says temporarily_unavailable (token endpoint) and carries Retry-After."""
    unavailable = [e for e in events if e.status == 503]
    bad = [
        e
        for e in unavailable
        if not e.retry_after
        or (e.endpoint in (*TOKEN_ENDPOINTS, "revoke") and e.error != "temporarily_unavailable")
    ]
    # By the time answered: under load a request may wait in the listen queue for seconds.
    outside = [
        e
        for e in unavailable
        if not any(start - margin <= e.t_done <= end + margin for start, end in windows)
    ]
    detail = f"{len(unavailable)} answers 503; {len(bad)} without the RFC shape or Retry-After"
    detail += f"; {len(outside)} outside the fault windows (±{margin:.0f} s)"
    evidence = [f"shape: {e.endpoint} {e.error!r} Retry-After={e.retry_after}" for e in bad[:5]]
    evidence += [f"outside: {e.endpoint} by {e.actor} at {e.t_sent:.3f}" for e in outside[:5]]
    return Check(
        "503s are temporarily_unavailable with Retry-After, only during faults",
        not bad and not outside,
        detail,
        evidence,
    )


# -- The cap ------------------------------------------------------------------------


def check_sampled_cap(samples: CapSamples, caps: dict[int, int]) -> Check:
    worst = max(
        ((count, principal) for principal, count in samples.max_seen.items()), default=(0, None)
    )
    detail = (
        f"{samples.samples} samples ({samples.failed} failed while PostgreSQL was down); "
        f"highest live count {worst[0]} (principal: client/user pk {worst[1]}, cap "
        f"{caps.get(worst[1][0], '?') if worst[1] else '-'})"
    )
    return Check(
        "Cap never exceeded in the live samples",
        not samples.violations,
        detail,
        sample(samples.violations),
    )


def check_interval_cap(rows: dict[str, Row], policies: dict[int, PolicyView]) -> Check:
    """Sweep each principal's [issued_at, end) intervals: never more than cap at once."""
    by_principal: dict[tuple[int, int], list[Row]] = defaultdict(list)
    for row in rows.values():
        by_principal[(row.client_id, row.user_id)].append(row)
    violations, highest = [], 0
    for principal, pairs in by_principal.items():
        cap = policies[principal[0]].cap
        # At one instant ends (-1) come before starts (+1): intervals are half-open.
        moments = sorted(
            [(row.issued_at, 1) for row in pairs] + [(row.end, -1) for row in pairs],
            key=lambda moment: (moment[0], moment[1]),
        )
        live = 0
        for instant, change in moments:
            live += change
            highest = max(highest, live) if change > 0 else highest
            if live > cap:
                violations.append(f"principal {principal}: {live} live at {instant} (cap {cap})")
    detail = f"{len(by_principal)} principals, {len(rows)} pairs; highest concurrency {highest}"
    return Check(
        "Cap never exceeded, reconstructed from the table's intervals",
        not violations,
        detail,
        sample(violations),
    )


# -- Rows -------------------------------------------------------------------------------


def row_problems(row: Row, rows: dict[str, Row], policy: PolicyView, purged: set[str]):
    """What is inconsistent in one row (a list of texts, empty when the row is sound)."""
    problems = []

    def missing(pair_id):
        return pair_id not in rows and pair_id not in purged

    if missing(row.family_id):
        problems.append("family's first pair missing")
    if row.parent_id is None and row.family_id != row.id:
        problems.append("no parent, yet not its family's first pair")
    parent = rows.get(row.parent_id) if row.parent_id else None
    if row.parent_id and missing(row.parent_id):
        problems.append("parent missing")
    if parent is not None:
        if (parent.client_id, parent.user_id, parent.family_id) != (
            row.client_id,
            row.user_id,
            row.family_id,
        ):
            problems.append("parent of another principal or family")
        if parent.rotated_at is None or parent.refresh_grace_ends_at is None:
            problems.append("parent never marked used")
        elif not parent.rotated_at <= row.issued_at < parent.refresh_grace_ends_at:
            problems.append("issued outside the parent's grace window")
    if (row.rotated_at is None) != (row.refresh_grace_ends_at is None):
        problems.append("rotated_at and refresh_grace_ends_at not set together")
    if row.rotated_at and row.refresh_grace_ends_at - row.rotated_at != policy.grace:
        problems.append("grace window of the wrong length")
    refresh_end = row.refresh_expires_at
    if row.refresh_grace_ends_at is not None:
        refresh_end = min(refresh_end, row.refresh_grace_ends_at)
    if row.live_until != max(row.access_expires_at, refresh_end):
        problems.append("live_until != max(access end, refresh end with grace)")
    if row.session_ends_at is None and (
        row.access_expires_at - row.issued_at != policy.access
        or row.refresh_expires_at - row.issued_at != policy.refresh
    ):
        problems.append("lifetimes differ from the client's policy")
    if (row.revoked_at is None) != (row.revoke_reason == ""):
        problems.append("revoked_at and revoke_reason not set together")
    return problems


def check_rows(rows: dict[str, Row], policies: dict[int, PolicyView], purged: set[str]) -> Check:
    bad = {}
    for row in rows.values():
        problems = row_problems(row, rows, policies[row.client_id], purged)
        if problems:
            bad[row.id] = problems
    return Check(
        "Every row consistent (family/parent, live_until, grace fields, lifetimes, reason)",
        not bad,
        f"{len(rows)} rows, {len(bad)} inconsistent",
        [f"{pair_id}: {', '.join(problems)}" for pair_id, problems in list(bad.items())[:8]],
    )


def check_rotation_atomic(rows: dict[str, Row]) -> Check:
    """A pair marked used has a child issued at that very instant (same transaction)."""
    first_child: dict[str, datetime] = {}
    for row in rows.values():
        if row.parent_id:
            seen = first_child.get(row.parent_id)
            first_child[row.parent_id] = (
                row.issued_at if seen is None else min(seen, row.issued_at)
            )
    used = [row for row in rows.values() if row.rotated_at is not None]
    orphans = [row.id for row in used if row.id not in first_child]
    mismatched = [
        row.id for row in used if row.id in first_child and first_child[row.id] != row.rotated_at
    ]
    unused_parents = [pid for pid in first_child if pid in rows and rows[pid].rotated_at is None]
    detail = (
        f"{len(used)} pairs marked used: {len(orphans)} without a child, "
        f"{len(mismatched)} whose first child was not issued at rotated_at; "
        f"{len(unused_parents)} parents never marked used"
    )
    return Check(
        "No half-written refresh (rotated_at set <=> a child exists)",
        not (orphans or mismatched or unused_parents),
        detail,
        sample(orphans + mismatched + unused_parents),
    )


# -- Token responses ----------------------------------------------------------------------


def check_token_responses(events: list[Event], rows: dict[str, Row]) -> Check:
    """Every 200 token response's pair is in the table once, as answered; none duplicated."""
    issued = [e for e in events if e.endpoint in TOKEN_ENDPOINTS and e.status == 200]
    jtis = Counter(e.returned for e in issued)
    digests = Counter(e.refresh_digest for e in issued)
    lost = [e for e in issued if e.returned not in rows]
    wrong = [
        e for e in issued if e.returned in rows and rows[e.returned].digest != e.refresh_digest
    ]
    bad_parent = [
        e
        for e in issued
        if e.endpoint == "refresh"
        and e.returned in rows
        and rows[e.returned].parent_id != e.presented
    ]
    duplicated = [jti for jti, count in jtis.items() if count > 1]
    duplicated += [d for d, count in digests.items() if count > 1]
    db_digests = Counter(row.digest for row in rows.values())
    duplicated += [d for d, count in db_digests.items() if count > 1]
    detail = (
        f"{len(issued)} pairs answered 200: {len(lost)} missing from the table, "
        f"{len(wrong)} with another refresh token, {len(bad_parent)} refreshes with the wrong "
        f"parent, {len(duplicated)} duplicated ids or refresh tokens"
    )
    evidence = [f"lost {e.returned} ({e.endpoint} by {e.actor})" for e in lost[:5]]
    evidence += [f"duplicated {value}" for value in duplicated[:5]]
    return Check(
        "No lost or duplicated pair (200 token responses vs the table)",
        not (lost or wrong or bad_parent or duplicated),
        detail,
        evidence,
    )


def unanswered_pairs(events: list[Event], rows: dict[str, Row], known: set[str]) -> int:
    """Rows no client got a 200 for (killed workers, requests that timed out)."""
    answered = {e.returned for e in events if e.returned}
    return sum(1 for pair_id in rows if pair_id not in answered and pair_id not in known)


# -- Revocation and expiry on the bearer path ------------------------------------------


def revocation_committed_at(
    rows: dict[str, Row], admin: list[AdminAction], events: list[Event]
) -> dict[str, tuple[float, str]]:
    """For each revoked pair, the earliest instant its revocation is known to be visible.

    The commit timestamp plus :data:`COMMIT_VISIBILITY_TOLERANCE`; or, tighter,
    the moment a revocation the soak asked for was answered (its transaction
    had committed by then): an HTTP revoke or logout, an admin action.
    """
    known = {
        row.id: (row.committed + COMMIT_VISIBILITY_TOLERANCE, "commit timestamp")
        for row in rows.values()
        if row.revoked_at is not None and row.committed is not None
    }

    def tighten(pair_id: str, instant: float, source: str) -> None:
        row = rows.get(pair_id)
        if row is None or row.committed is None or row.committed > instant:
            return  # not revoked by that request (already dead, or revoked later)
        if instant < known[pair_id][0]:
            known[pair_id] = (instant, source)

    for event in events:
        if event.endpoint in ("revoke", "logout") and event.status == 200 and event.presented:
            tighten(event.presented, event.t_done, f"{event.endpoint} answered")
    for action in admin:
        for pair_id in action.pair_ids:
            if action.ok:
                tighten(pair_id, action.t_done, f"admin {action.kind} returned")
    return known


def check_no_use_after_revocation(
    events: list[Event], rows: dict[str, Row], admin: list[AdminAction]
) -> Check:
    visible = revocation_committed_at(rows, admin, events)
    accepted = [e for e in events if e.status == 200 and e.endpoint in ("whoami", "pairs")]
    late = [e for e in accepted if e.presented in visible and e.t_sent > visible[e.presented][0]]
    tested = sum(1 for e in events if e.endpoint == "whoami" and e.presented in visible)
    refused_after = sum(
        1
        for e in events
        if e.endpoint == "whoami"
        and e.status == 401
        and e.presented in visible
        and e.t_sent > visible[e.presented][0]
    )
    detail = (
        f"{len(visible)} pairs revoked; {tested} bearer requests presented one of them, "
        f"{refused_after + len(late)} sent after its revocation was visible: {refused_after} "
        f"refused (401), {len(late)} accepted"
    )
    evidence = [
        f"{e.presented}: sent {e.t_sent - visible[e.presented][0]:.3f} s after "
        f"{visible[e.presented][1]}, reason {rows[e.presented].revoke_reason}, by {e.actor}"
        for e in late[:8]
    ]
    return Check("No token accepted after its revocation committed", not late, detail, evidence)


def check_no_use_after_expiry(events: list[Event], rows: dict[str, Row]) -> Check:
    """No access token answered 200 once its (whole-second) expiry had passed: no leeway."""
    late, presented_expired = [], 0
    for event in events:
        row = rows.get(event.presented) if event.endpoint == "whoami" else None
        if row is None or event.t_sent < row.access_expires_at.timestamp():
            continue
        presented_expired += 1
        if event.status == 200:
            late.append(event)
    detail = (
        f"{presented_expired} whoami requests with an expired access token, "
        f"{len(late)} answered 200"
    )
    return Check(
        "No access token accepted after its expiry",
        not late,
        detail,
        [f"{e.presented} by {e.actor}" for e in late[:5]],
    )


def check_reuse_detections(events: list[Event], rows: dict[str, Row]) -> Check:
    """Every family revoked for reuse follows a refresh with a token past its grace window."""
    families: dict[str, float] = {}
    for row in rows.values():
        if row.revoke_reason == "reuse_detected" and row.committed is not None:
            families[row.family_id] = min(
                families.get(row.family_id, row.committed), row.committed
            )
    replays = defaultdict(list)
    for event in events:
        row = rows.get(event.presented) if event.endpoint == "refresh" else None
        if row is None or row.refresh_grace_ends_at is None or event.status not in (0, 400):
            continue
        if event.t_done >= row.refresh_grace_ends_at.timestamp():
            replays[row.family_id].append(event)
    unexplained = [
        family
        for family, committed in families.items()
        if not any(e.t_sent <= committed + 0.001 for e in replays.get(family, []))
    ]
    detail = (
        f"{len(families)} families revoked for reuse, {len(unexplained)} without a replay "
        f"after the grace window; {sum(len(v) for v in replays.values())} replays refused"
    )
    return Check(
        "Reuse detection fired only on replays after the grace window",
        not unexplained,
        detail,
        sample(unexplained),
    )


# -- Recovery after faults -----------------------------------------------------------------

FAILED = (0, 500, 502, 503, 504)


def check_everyone_recovered(
    events: list[Event], t_last_fault: float, t_stop: float, settle: float = 2.0
) -> Check:
    """After the last fault (plus ``settle`` s), no client gets 5xx or no answer any more."""
    after = [
        e for e in events if e.t_sent > t_last_fault + settle and not e.actor.startswith("fault/")
    ]
    actors = {e.actor for e in events if not e.actor.startswith(("fault/", "admin"))}
    answered = {e.actor for e in after}
    failing = sorted({e.actor for e in after if e.status in FAILED})
    silent = sorted(actors - answered)
    ok = sum(1 for e in after if e.status == 200)
    detail = (
        f"{len(after)} requests in the {t_stop - t_last_fault - settle:.0f} s from {settle:.0f} s "
        f"after the last fault ({ok} answered 200): {len(failing)} clients still got 5xx or no "
        f"answer, {len(silent)} of {len(actors)} clients sent nothing"
    )
    return Check(
        "Every client recovered after the faults",
        not failing and not silent,
        detail,
        sample(failing + silent),
    )
