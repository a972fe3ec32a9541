"""docs/lifecycle.md rule 5 and §5: ``purge_expired_tokens`` and :mod:`token_lifecycle.purge`.

What is purged, at its exact boundaries (freezegun, one second either side):
a pair dead for longer than the retention, counting from its revocation, or
from the expiry of the last of its two tokens. A pair whose refresh token was
used is dead once its grace window and access token are over (``live_until``
moved back), but its row is kept until its refresh token's own expiry: until
then, a replay of that token must still find the row and revoke the family
(docs/lifecycle.md rule 2). Live pairs are never touched, whatever else happens.

Then the command (dry run, batches, idempotence, the summary line, argument
and database errors), signing keys, and on PostgreSQL the query plan and the
purge running beside real HTTP traffic without ever waiting for a lock.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from conftest import FORM, PASSWORD, basic_auth
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, connections, transaction
from django.db.models.signals import post_delete, pre_delete
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from token_lifecycle import authorization_codes, credentials, keys, pkce, purge, rules
from token_lifecycle.clock import now as app_clock
from token_lifecycle.management.commands.purge_expired_tokens import summary
from token_lifecycle.models import AuthorizationCode, SigningKey, TokenPair
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
#: The example project's lifetimes (docs/lifecycle.md defaults) and PURGE_RETENTION default.
ACCESS = 15 * DAY
REFRESH = 30 * DAY
GRACE = 6 * HOUR
RETENTION = 7 * DAY


# -- Helpers --------------------------------------------------------------------------------


@pytest.fixture
def clock():
    with freeze_time(T0) as frozen:
        yield frozen


@pytest.fixture
def make_pair(oauth_client, user) -> Callable[..., TokenPair]:
    """Store a pair with the given history, as the services would have left it."""
    client_obj, _ = oauth_client

    def make(
        issued_at: datetime = T0,
        *,
        access: timedelta = ACCESS,
        refresh: timedelta = REFRESH,
        rotated_at: datetime | None = None,
        revoked_at: datetime | None = None,
        save: bool = True,
    ) -> TokenPair:
        pair = TokenPair(
            client=client_obj,
            user=user,
            refresh_token_digest=credentials.digest(credentials.new_refresh_token()),
            issued_at=issued_at,
            access_expires_at=issued_at + access,
            refresh_expires_at=issued_at + refresh,
            rotated_at=rotated_at,
            refresh_grace_ends_at=rotated_at and rotated_at + GRACE,
            revoked_at=revoked_at,
            revoke_reason=RevokeReason.ADMIN if revoked_at else "",
        )
        pair.family_id = pair.id
        pair.live_until = rules.live_until(pair)
        if save:
            pair.save(force_insert=True)
        return pair

    return make


@pytest.fixture
def refresh(token_request, oauth_client):
    """Refresh through the token endpoint; returns the response."""

    def do(refresh_token: str):
        client_obj, secret = oauth_client
        return token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client_obj.client_id, secret),
        )

    return do


def exists(pair: TokenPair) -> bool:
    return TokenPair.objects.filter(pk=pair.pk).exists()


def pair_of(refresh_token: str) -> TokenPair:
    return TokenPair.objects.get(refresh_token_digest=credentials.digest(refresh_token))


def run_command(*args: str, **options) -> list[str]:
    """Run ``purge_expired_tokens``; returns the lines it printed."""
    out = StringIO()
    call_command("purge_expired_tokens", *args, stdout=out, **options)
    return out.getvalue().splitlines()


def dead_since(pair: TokenPair) -> datetime:
    """The oracle for :func:`purge.dead_since`, in Python."""
    if pair.revoked_at is not None:
        return pair.revoked_at
    return max(pair.access_expires_at, pair.refresh_expires_at)


# -- What is purged, and when ---------------------------------------------------------------

BOUNDARY = pytest.mark.parametrize(
    ("offset", "deleted"),
    [(-SECOND, False), (timedelta(0), False), (SECOND, True)],
    ids=["second-before", "at-retention", "second-after"],
)


@BOUNDARY
def test_revoked_pair_counts_from_its_revocation(clock, make_pair, offset, deleted):
    pair = make_pair(revoked_at=T0 + HOUR)  # revoked while both its tokens were usable
    clock.move_to(T0 + HOUR + RETENTION + offset)

    purge.purge(retention=RETENTION)

    assert exists(pair) is not deleted


@BOUNDARY
@pytest.mark.parametrize(
    ("access", "refresh"),
    [(ACCESS, REFRESH), (40 * DAY, REFRESH)],
    ids=["refresh-outlives-access", "access-outlives-refresh"],
)
def test_unused_pair_counts_from_its_last_expiry(
    clock, make_pair, offset, deleted, access, refresh
):
    pair = make_pair(access=access, refresh=refresh)
    assert pair.live_until == T0 + max(access, refresh)
    clock.move_to(pair.live_until + RETENTION + offset)

    purge.purge(retention=RETENTION)

    assert exists(pair) is not deleted


def test_pair_revoked_after_it_expired_counts_from_the_revocation(clock, make_pair):
    """An expired access token still revokes its pair (RFC 7009): the revocation stays visible."""
    pair = make_pair(revoked_at=T0 + 40 * DAY)  # dead since T0 + 30 days, then revoked
    clock.move_to(T0 + 40 * DAY + RETENTION)
    purge.purge(retention=RETENTION)
    assert exists(pair)

    clock.move_to(T0 + 40 * DAY + RETENTION + SECOND)
    purge.purge(retention=RETENTION)
    assert not exists(pair)


class TestUsedRefreshToken:
    """The grace-window case: the first use moves ``live_until`` back to the access expiry."""

    @pytest.fixture
    def used(self, clock, login, refresh) -> tuple[TokenPair, str, dict]:
        """Alice's first pair, refreshed an hour after login.

        Returns the pair, its refresh token and the child's token response.
        """
        first = login()
        clock.move_to(T0 + HOUR)
        response = refresh(first["refresh_token"])
        assert response.status_code == 200, response.content
        parent = pair_of(first["refresh_token"])
        assert parent.live_until == T0 + ACCESS  # moved back from T0 + REFRESH
        return parent, first["refresh_token"], response.json()

    def test_kept_after_its_live_until_plus_retention(self, clock, used, refresh):
        """A replay 22 days on must still find the row: it revokes the family (rule 2)."""
        parent, parent_refresh_token, child_tokens = used
        clock.move_to(parent.live_until + RETENTION + SECOND)

        report = purge.purge(retention=RETENTION)

        assert report.pairs == 0
        assert exists(parent)
        replay = refresh(parent_refresh_token)
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"
        child = pair_of(child_tokens["refresh_token"])
        assert child.revoke_reason == RevokeReason.REUSE_DETECTED

    @BOUNDARY
    def test_purged_after_its_refresh_expiry_plus_retention(self, clock, used, offset, deleted):
        parent, _, _ = used
        clock.move_to(parent.refresh_expires_at + RETENTION + offset)

        purge.purge(retention=RETENTION)

        assert exists(parent) is not deleted

    def test_live_child_keeps_working_after_its_parent_is_purged(
        self, clock, oauth_client, login, refresh, whoami
    ):
        """No constraint ties a child to its parent: bearer auth and refresh go on."""
        client_obj, _ = oauth_client
        client_obj.access_token_lifetime = REFRESH  # the child's access token outlives its parent
        client_obj.save()
        first = login()
        clock.move_to(T0 + DAY)
        child = refresh(first["refresh_token"]).json()
        parent = pair_of(first["refresh_token"])
        clock.move_to(T0 + REFRESH + SECOND)  # the parent is dead, the child is not

        report = purge.purge(retention=timedelta(0))

        assert report.pairs == 1
        assert not exists(parent)
        child_pair = pair_of(child["refresh_token"])
        assert child_pair.parent_id == parent.pk
        assert whoami(child["access_token"]).status_code == 200
        grandchild = refresh(child["refresh_token"])
        assert grandchild.status_code == 200, grandchild.content
        assert pair_of(grandchild.json()["refresh_token"]).family_id == parent.family_id
        assert whoami(grandchild.json()["access_token"]).status_code == 200


_timelines = st.fixed_dictionaries(
    {
        "issued": st.integers(0, 60),  # days after T0
        "access": st.integers(1, 40),  # days
        "refresh": st.integers(1, 40),
        "rotated": st.none() | st.integers(0, 40 * 24),  # hours after issue
        "revoked": st.none() | st.integers(0, 80 * 24),
    }
)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    timelines=st.lists(_timelines, min_size=1, max_size=6),
    now_hours=st.integers(0, 120 * 24),
    retention_hours=st.integers(0, 10 * 24),
)
def test_deletes_exactly_what_has_been_dead_for_longer_than_the_retention(
    make_pair, timelines, now_hours, retention_hours
):
    """Against the rules: never a live pair; every pair dead since before the cutoff; no other."""
    TokenPair.objects.all().delete()
    now = T0 + timedelta(hours=now_hours)
    retention = timedelta(hours=retention_hours)
    pairs = []
    for timeline in timelines:
        issued_at = T0 + timeline["issued"] * DAY
        rotated = timeline["rotated"]
        revoked = timeline["revoked"]
        pairs.append(
            make_pair(
                issued_at,
                access=timeline["access"] * DAY,
                refresh=timeline["refresh"] * DAY,
                rotated_at=None if rotated is None else issued_at + rotated * HOUR,
                revoked_at=None if revoked is None else issued_at + revoked * HOUR,
            )
        )
    # A pair revoked "in the future" is not revoked yet at ``now``.
    for pair in pairs:
        if pair.revoked_at is not None and pair.revoked_at > now:
            pair.revoked_at = None
            pair.save(update_fields=["revoked_at"])

    purge.purge(retention=retention, now=now, batch_size=2)

    for pair in pairs:
        should_go = dead_since(pair) < now - retention
        assert exists(pair) is not should_go, (pair.__dict__, now, retention)
        if rules.is_live(pair, now):
            assert exists(pair)


def test_dead_since_is_the_indexed_expression():
    """The database uses the index only for the very same expression."""
    (index,) = [i for i in TokenPair._meta.indexes if i.name == purge.DEAD_SINCE_INDEX]
    assert index.expressions == (purge.dead_since(),)


# -- The command ----------------------------------------------------------------------------


@pytest.fixture
def dead_and_live(clock, make_pair) -> tuple[list[TokenPair], list[TokenPair]]:
    """Seven pairs dead for longer than the retention, three live ones; the clock at T0 + 60 d."""
    dead = [make_pair(T0 + i * SECOND) for i in range(4)]
    dead += [make_pair(T0 + DAY, revoked_at=T0 + 2 * DAY + i * SECOND) for i in range(3)]
    now = T0 + REFRESH + RETENTION + 30 * DAY
    live = [make_pair(now - i * DAY) for i in range(3)]
    clock.move_to(now)
    return dead, live


def test_dry_run_counts_and_deletes_nothing(dead_and_live):
    lines = run_command("--dry-run", "--batch-size", "3")

    assert lines[-1] == (
        "Would delete 7 pairs in 3 batches, 0 signing keys and 0 authorization codes;"
        " 3 live pairs untouched."
    )
    assert TokenPair.objects.count() == 10


def test_deletes_in_batches_of_the_requested_size(dead_and_live):
    _, live = dead_and_live
    batches: list[int] = []

    with CaptureQueriesContext(connection) as queries:
        report = purge.purge(
            retention=RETENTION, batch_size=3, on_batch=lambda _, rows: batches.append(rows)
        )

    assert batches == [3, 3, 1]
    assert report.batches == 3
    assert report.pairs == 7
    deletes = [q["sql"] for q in queries if 'DELETE FROM "token_lifecycle_tokenpair"' in q["sql"]]
    assert len(deletes) == 3  # one statement per batch (on PostgreSQL, with its SELECT)
    selects = [q["sql"] for q in queries if "COALESCE" in q["sql"] and "LIMIT" in q["sql"]]
    assert len(selects) == 3 and all("LIMIT 3" in sql for sql in selects)
    assert set(TokenPair.objects.values_list("pk", flat=True)) == {pair.pk for pair in live}


def test_an_exact_multiple_of_the_batch_size_needs_no_extra_batch(clock, make_pair):
    for i in range(6):
        make_pair(T0 + i * SECOND)
    clock.move_to(T0 + REFRESH + RETENTION + DAY)

    assert run_command("--batch-size", "3")[-1].startswith("Deleted 6 pairs in 2 batches")


def test_second_run_deletes_nothing(dead_and_live):
    assert run_command()[-1].startswith("Deleted 7 pairs in 1 batch ")

    assert run_command()[-1] == (
        "Deleted 0 pairs in 0 batches (0.0 s), 0 signing keys and 0 authorization codes;"
        " 3 live pairs untouched."
    )
    assert TokenPair.objects.count() == 3


def test_summary_line(clock, make_pair):
    clock.move_to(T0 + REFRESH + RETENTION + DAY)
    make_pair()
    make_pair(revoked_at=T0 + DAY)
    make_pair(T0 + REFRESH + RETENTION)

    lines = run_command()

    # The clock is frozen, so no time passes and no rate is shown.
    assert lines == [
        "Purging pairs, signing keys and authorization codes dead for more than 7 days.",
        "Deleted 2 pairs in 1 batch (0.0 s), 0 signing keys and 0 authorization codes;"
        " 1 live pair untouched.",
    ]


def test_verbosity(dead_and_live):
    """-v 0 for a silent cron job; -v 2 adds a line per batch."""
    assert run_command("--dry-run", verbosity=0) == []
    lines = run_command("--batch-size", "4", verbosity=2)
    assert lines[1:3] == ["  batch 1: 4 pairs deleted", "  batch 2: 3 pairs deleted"]
    assert lines[-1].startswith("Deleted 7 pairs in 2 batches")


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (
            dict(pairs=1_000_000, batches=200, seconds=12.5, live_pairs=100_000, signing_keys=2),
            "Deleted 1,000,000 pairs in 200 batches (12.5 s, 80,000 rows/s), 2 signing keys"
            " and 0 authorization codes; 100,000 live pairs untouched.",
        ),
        (
            dict(
                pairs=1,
                batches=1,
                seconds=0.5,
                live_pairs=1,
                signing_keys=1,
                authorization_codes=1,
            ),
            "Deleted 1 pair in 1 batch (0.5 s, 2 rows/s), 1 signing key and 1 authorization code;"
            " 1 live pair untouched.",
        ),
        (
            dict(pairs=10, batches=2, seconds=1.0, pairs_left_locked=3),
            "Deleted 10 pairs in 2 batches (1.0 s, 10 rows/s), 0 signing keys and 0 authorization"
            " codes; 0 live pairs untouched; 3 pairs in use by other transactions left for the"
            " next run.",
        ),
        (
            dict(dry_run=True, pairs=12_345, batches=3, live_pairs=7),
            "Would delete 12,345 pairs in 3 batches, 0 signing keys and 0 authorization codes;"
            " 7 live pairs untouched.",
        ),
    ],
    ids=["large", "singular", "left-locked", "dry-run"],
)
def test_summary_wording(report, line):
    fields = {"dry_run": False, "retention": RETENTION, "cutoff": T0, **report}
    assert summary(purge.PurgeReport(**fields)) == line


def test_older_than_overrides_the_retention_setting(settings, clock, make_pair):
    settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "PURGE_RETENTION": 30 * DAY}
    pair = make_pair(revoked_at=T0)
    clock.move_to(T0 + 10 * DAY)

    assert run_command()[0] == (
        "Purging pairs, signing keys and authorization codes dead for more than 30 days."
    )
    assert exists(pair)
    assert run_command("--older-than", "9")[-1].startswith("Deleted 1 pair ")
    assert not exists(pair)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: must be from 1 to 100,000"),
        (["--batch-size", "100001"], "argument --batch-size: must be from 1 to 100,000"),
        (["--batch-size", "many"], "argument --batch-size: 'many' is not a whole number"),
        (["--older-than", "-1"], "argument --older-than: must be 0 or more days"),
        (["--older-than", "1.5"], "argument --older-than: '1.5' is not a whole number of days"),
        (["--older-than", "99999999999"], "argument --older-than: must be at most"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_invalid_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        run_command(*args)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"batch_size": 0}, "--batch-size"), ({"older_than": -3}, "--older-than")],
)
def test_invalid_options_from_call_command(db, options, message):
    """``call_command(batch_size=0)`` bypasses argparse; the command checks anyway."""
    with pytest.raises(CommandError, match=message):
        run_command(**options)


class TestDatabaseErrors:
    @pytest.fixture
    def failing_delete(self, monkeypatch) -> Callable[[int], None]:
        """Make the n-th batch's DELETE fail as a lost connection would."""

        def fail_on(batch: int) -> None:
            calls = []
            real = purge.delete_batch

            def delete_batch(*args):
                calls.append(1)
                if len(calls) == batch:
                    raise OperationalError("server closed the connection unexpectedly")
                return real(*args)

            monkeypatch.setattr(purge, "delete_batch", delete_batch)

        return fail_on

    def test_failure_midway_keeps_committed_batches_and_says_so(
        self, dead_and_live, failing_delete
    ):
        failing_delete(3)

        with pytest.raises(CommandError) as raised:
            run_command("--batch-size", "2")

        assert str(raised.value) == (
            "Purge failed after deleting 4 pairs in 2 batches (those stay deleted; run again "
            "to continue). Database error: server closed the connection unexpectedly"
        )
        assert TokenPair.objects.count() == 6  # 10 - the two committed batches

    def test_failure_in_the_first_batch(self, dead_and_live, failing_delete):
        failing_delete(1)

        with pytest.raises(CommandError, match=r"^Purge failed before deleting anything"):
            run_command()

        assert TokenPair.objects.count() == 10


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("database_url", "args", "exit_code", "message"),
    [
        (
            f"postgres://postgres@127.0.0.1:{closed_port()}/gone",
            [],
            1,
            "CommandError: Purge failed before deleting anything. Database error: ",
        ),
        ("sqlite:///unused.sqlite3", ["--batch-size", "0"], 2, "argument --batch-size: must be"),
    ],
    ids=["database-unavailable", "invalid-argument"],
)
def test_command_line_exits_non_zero_with_a_message(database_url, args, exit_code, message):
    """As cron runs it: a real process, its exit status and what it writes to stderr."""
    result = subprocess.run(
        [sys.executable, "manage.py", "purge_expired_tokens", "--skip-checks", *args],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == exit_code, result
    assert message in result.stderr


def test_no_model_instances_and_no_delete_signals(dead_and_live):
    """A project's delete receivers must not turn the purge into a collector loading every row."""
    received = []

    def receiver(sender, **kwargs):
        received.append(sender)

    pre_delete.connect(receiver, weak=False)
    post_delete.connect(receiver, weak=False)
    try:
        with CaptureQueriesContext(connection) as queries:
            report = purge.purge(retention=RETENTION, batch_size=3)
    finally:
        pre_delete.disconnect(receiver)
        post_delete.disconnect(receiver)

    assert report.pairs == 7
    assert received == []
    token_columns = '"token_lifecycle_tokenpair"."refresh_token_digest"'
    assert not any(token_columns in q["sql"] for q in queries)  # never a whole row


def test_debug_query_log_does_not_grow_with_the_table(settings, dead_and_live):
    """With DEBUG on, Django logs every query; each batch's DELETE holds a whole batch of ids."""
    settings.DEBUG = True
    connection.queries_log.clear()

    report = purge.purge(retention=RETENTION, batch_size=1)

    assert report.batches == 7
    # Without the purge clearing it, the log would hold a DELETE per batch; it holds at
    # most the final probe that found nothing (a statement of its own on PostgreSQL).
    deletes = [
        q for q in connection.queries if 'DELETE FROM "token_lifecycle_tokenpair"' in q["sql"]
    ]
    assert len(deletes) <= 1


# -- Authorization codes --------------------------------------------------------------------

CODE_LIFETIME = timedelta(seconds=60)  # AUTHORIZATION_CODE_LIFETIME's default


@pytest.fixture
def make_code(make_client, user) -> Callable[..., AuthorizationCode]:
    """Store an authorization code issued now; ``used`` marks it exchanged."""
    code_client, _ = make_client(
        "code app",
        public=True,
        grant_types="authorization_code",
        redirect_uris="https://app.example/cb",
    )

    def make(*, used: bool = False) -> AuthorizationCode:
        code = authorization_codes.issue(
            client=code_client,
            user=user,
            redirect_uri="https://app.example/cb",
            scope="",
            code_challenge=pkce.s256_challenge("v" * 43),
        )
        row = AuthorizationCode.objects.get(code_digest=credentials.digest(code))
        if used:
            row.used_at = app_clock()
            row.save(update_fields=["used_at"])
        return row

    return make


@pytest.mark.parametrize("used", [False, True], ids=["unused", "used"])
@pytest.mark.parametrize(("offset", "deleted"), [(0 * SECOND, False), (SECOND, True)])
def test_codes_are_purged_once_expired_for_longer_than_the_retention(
    clock, make_code, used, offset, deleted
):
    """Dead from ``expires_at`` whether used or not; kept for the retention (late replays)."""
    code = make_code(used=used)
    clock.move_to(T0 + CODE_LIFETIME + RETENTION + offset)

    run_command()

    assert AuthorizationCode.objects.filter(pk=code.pk).exists() is not deleted


def test_a_code_still_exchangeable_is_never_purged(clock, make_code):
    code = make_code()
    clock.move_to(T0 + CODE_LIFETIME - SECOND)

    assert run_command("--older-than", "0")[-1].endswith(
        ", 0 signing keys and 0 authorization codes; 0 live pairs untouched."
    )
    assert AuthorizationCode.objects.filter(pk=code.pk).exists()
    clock.move_to(T0 + CODE_LIFETIME + SECOND)
    assert run_command("--older-than", "0")[-1].endswith(
        ", 0 signing keys and 1 authorization code; 0 live pairs untouched."
    )
    assert not AuthorizationCode.objects.exists()


def test_codes_are_counted_by_a_dry_run_and_deleted_in_batches(clock, make_code):
    for _ in range(5):
        make_code(used=True)
    clock.move_to(T0 + CODE_LIFETIME + RETENTION + SECOND)
    fresh = make_code()

    assert run_command("--dry-run")[-1] == (
        "Would delete 0 pairs in 0 batches, 0 signing keys and 5 authorization codes;"
        " 0 live pairs untouched."
    )
    assert AuthorizationCode.objects.count() == 6
    assert run_command("--batch-size", "2")[-1].endswith(
        ", 0 signing keys and 5 authorization codes; 0 live pairs untouched."
    )
    assert list(AuthorizationCode.objects.values_list("pk", flat=True)) == [fresh.pk]


# -- Signing keys ---------------------------------------------------------------------------


def test_signing_keys_past_retention_are_deleted_and_live_ones_kept(clock, client, login, whoami):
    login()  # creates the first key
    first = SigningKey.objects.get()
    clock.move_to(T0 + HOUR)
    second = keys.rotate(immediately=True)
    first.refresh_from_db()
    clock.move_to(first.verify_until + RETENTION)
    third = keys.rotate(immediately=True)  # the second now verifies until some day ahead

    assert run_command()[-1].endswith(
        ", 0 signing keys and 0 authorization codes; 1 live pair untouched."
    )
    clock.move_to(first.verify_until + RETENTION + SECOND)
    assert run_command("--dry-run")[-1] == (
        "Would delete 0 pairs in 0 batches, 1 signing key and 0 authorization codes;"
        " 1 live pair untouched."
    )
    assert run_command()[-1].endswith(
        ", 1 signing key and 0 authorization codes; 1 live pair untouched."
    )

    assert set(SigningKey.objects.values_list("kid", flat=True)) == {second.kid, third.kid}
    keys.clear_cache()
    assert whoami(login()["access_token"]).status_code == 200
    jwks = client.get("/auth/.well-known/jwks.json").json()
    assert {jwk["kid"] for jwk in jwks["keys"]} == {second.kid, third.kid}


# -- PostgreSQL: the query plan and concurrent traffic --------------------------------------


@pytest.mark.postgres
def test_batches_and_counts_are_range_scans_of_the_dead_since_index(dead_and_live):
    """The planner matches the expression, so each batch reads only its slice of the index.

    Sequential and bitmap scans are disabled only because a ten-row table is
    cheaper to read whole and sort; ``make bench-purge`` shows the same plan
    at 1.1 million rows with the planner's default settings.
    """
    cutoff = app_clock() - RETENTION
    rows = purge.purgeable_pairs(cutoff)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        first = purge.batch_query(rows, purge.DEAD_SINCE, 5000, using="default").explain()
        resumed = purge.batch_query(
            rows, purge.DEAD_SINCE, 5000, floor=cutoff - DAY, using="default"
        ).explain()
        counted = rows.explain()

    for plan in (first, resumed):
        assert "Index Scan using tl_pair_dead_since" in plan, plan
        assert "LockRows" in plan and "Sort" not in plan, plan
    assert "tl_pair_dead_since" in counted, counted


def hold_row_locks(pair_ids: list, release: threading.Event, held: threading.Event) -> None:
    """In a thread: lock rows as a request would (``SELECT ... FOR UPDATE``) until released."""
    try:
        with transaction.atomic():
            locked = TokenPair.objects.select_for_update().filter(pk__in=pair_ids)
            assert len(list(locked.values_list("pk"))) == len(pair_ids)
            held.set()
            release.wait(timeout=60)
    finally:
        connections.close_all()


@pytest.fixture
def lock_timeout() -> Iterator[None]:
    """Make this connection fail instead of waiting more than 100 ms for a lock."""
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '100ms'")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rows_held_by_other_transactions_are_skipped_not_waited_for(make_pair, lock_timeout):
    now = T0 + REFRESH + RETENTION + DAY
    dead = [make_pair(T0 + i * SECOND) for i in range(10)]
    held_ids = [dead[2].pk, dead[7].pk]
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_row_locks, args=(held_ids, release, held))
    holder.start()
    try:
        assert held.wait(timeout=10)
        # The setup is sensitive: waiting for one of those rows fails within lock_timeout.
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            TokenPair.objects.filter(pk=held_ids[0]).delete()

        report = purge.purge(retention=RETENTION, now=now, batch_size=3)

        assert report.pairs == 8
        assert report.pairs_left_locked == 2
        assert set(TokenPair.objects.values_list("pk", flat=True)) == set(held_ids)
    finally:
        release.set()
        holder.join(timeout=10)

    assert purge.purge(retention=RETENTION, now=now).pairs == 2
    assert not TokenPair.objects.exists()


@dataclass
class Traffic:
    """Counts what the HTTP traffic did, and lets the purge wait for more of it."""

    answers: list[tuple[str, int]] = field(default_factory=list)
    issued_refresh_tokens: list[str] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, what: str, status: int) -> None:
        with self.condition:
            self.answers.append((what, status))
            self.condition.notify_all()

    def wait_for_more_than(self, count: int) -> int:
        with self.condition:
            assert self.condition.wait_for(lambda: len(self.answers) > count, timeout=30), (
                "the traffic stalled"
            )
            return len(self.answers)


class Endpoint:
    """Real HTTP requests to the live server, one connection per request."""

    def __init__(self, live_server, client_id: str, secret: str) -> None:
        parts = urlsplit(live_server.url)
        self.host, self.port = parts.hostname, parts.port
        self.basic = basic_auth(client_id, secret)

    def request(self, method: str, path: str, params=None, bearer=None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {bearer}" if bearer else self.basic}
        body = None
        if params is not None:
            body, headers["Content-Type"] = urlencode(params), FORM
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return response.status, (json.loads(raw) if raw else {})


def traffic_worker(endpoint: Endpoint, username: str, dead_tokens: list[str], traffic: Traffic):
    """Log in, then refresh, call the API and revoke expired pairs until told to stop."""
    try:
        login = {"grant_type": "password", "username": username, "password": PASSWORD}
        status, tokens = endpoint.request("POST", "/auth/token/", login)
        traffic.record("login", status)
        if status != 200:
            return
        traffic.issued_refresh_tokens.append(tokens["refresh_token"])
        while not traffic.stop.is_set():
            refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
            status, body = endpoint.request("POST", "/auth/token/", refresh)
            traffic.record("refresh", status)
            if status != 200:
                return
            tokens = body
            traffic.issued_refresh_tokens.append(tokens["refresh_token"])
            status, _ = endpoint.request("GET", "/api/whoami/", bearer=tokens["access_token"])
            traffic.record("whoami", status)
            if dead_tokens:
                # RFC 7009 with an expired pair's token: locks that dead row, as the purge runs.
                revoke = {"token": dead_tokens.pop()}
                status, _ = endpoint.request("POST", "/auth/token/revoke/", revoke)
                traffic.record("revoke", status)
    finally:
        connections.close_all()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_purge_beside_live_http_traffic(live_server, oauth_client, make_user, make_pair):
    """The purge runs batch after batch while clients log in, refresh, call the API and revoke.

    Between two batches at least one more request completes (the batches wait
    for the traffic, never the reverse), so they really interleave. The purge's
    connection has a 100 ms ``lock_timeout``: had it waited for any lock, it
    would have failed. A transaction holds three dead rows for the whole run.
    """
    client_obj, secret = oauth_client
    usernames = [f"user{i}" for i in range(4)]
    for name in usernames:
        make_user(name)
    now = app_clock()
    dead: list[TokenPair] = []
    dead_tokens: dict[str, list[str]] = {name: [] for name in usernames}
    for i in range(2000):
        token = credentials.new_refresh_token()
        issued = now - 90 * DAY + i * SECOND
        pair = make_pair(issued, revoked_at=issued + DAY if i % 2 else None, save=False)
        pair.refresh_token_digest = credentials.digest(token)
        dead.append(pair)
        if i % 10 == 0:  # even, so expired but not revoked: revocable through RFC 7009
            dead_tokens[usernames[i // 10 % 4]].append(token)
    live = [make_pair(now - i * HOUR, save=False) for i in range(300)]
    TokenPair.objects.bulk_create(dead + live)
    held_ids = [dead[5].pk, dead[1000].pk, dead[1999].pk]

    traffic = Traffic()
    endpoint = Endpoint(live_server, client_obj.client_id, secret)
    workers = [
        threading.Thread(target=traffic_worker, args=(endpoint, name, dead_tokens[name], traffic))
        for name in usernames
    ]
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_row_locks, args=(held_ids, release, held))
    outcome: dict = {}

    def run_purge() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '100ms'")
            seen = [traffic.wait_for_more_than(len(usernames))]  # everyone has started

            def after_batch(number: int, rows: int) -> None:
                seen.append(traffic.wait_for_more_than(seen[-1]))

            outcome["report"] = purge.purge(
                retention=RETENTION, batch_size=40, on_batch=after_batch
            )
            outcome["requests_during"] = seen[-1] - seen[0]
        except BaseException as error:  # reported by the main thread
            outcome["error"] = error
        finally:
            connections.close_all()

    purger = threading.Thread(target=run_purge)
    holder.start()
    assert held.wait(timeout=10)
    for worker in workers:
        worker.start()
    purger.start()
    purger.join(timeout=300)
    traffic.stop.set()
    for worker in workers:
        worker.join(timeout=60)
    release.set()
    holder.join(timeout=10)

    assert {status for _, status in traffic.answers} == {200}, traffic.answers
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert outcome["requests_during"] >= report.batches >= 2
    # Live pairs intact: those from before, and every pair issued to the traffic.
    still_live = TokenPair.objects.live(app_clock()).filter(pk__in=[pair.pk for pair in live])
    assert still_live.count() == len(live)
    issued = {credentials.digest(token) for token in traffic.issued_refresh_tokens}
    assert TokenPair.objects.filter(refresh_token_digest__in=issued).count() == len(issued)
    # Dead pairs: deleted, held by the locking transaction, or revoked just now by the traffic
    # (a revocation is kept for the retention, like any other).
    kept = list(TokenPair.objects.filter(pk__in=[pair.pk for pair in dead]))
    assert report.pairs == len(dead) - len(kept)
    assert report.pairs_left_locked >= len(held_ids)
    for pair in kept:
        assert pair.pk in held_ids or (
            pair.revoke_reason == RevokeReason.REVOCATION_ENDPOINT and pair.revoked_at >= now
        ), pair.__dict__
    print(
        f"\n[figures] {len(traffic.answers)} requests, {outcome['requests_during']} of them "
        f"during the purge; {report.pairs} pairs deleted in {report.batches} batches; "
        f"{len(kept) - len(held_ids)} dead pairs revoked by the traffic first"
    )

    # Once the holder is gone, the next run deletes what it held, and that is all that is left.
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '100ms'")
    try:
        again = purge.purge(retention=RETENTION)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert again.pairs == len(held_ids)
    assert purge.purgeable_pairs(app_clock() - RETENTION).count() == 0
