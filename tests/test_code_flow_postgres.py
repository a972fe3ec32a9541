"""One authorization code redeemed twice at once, on PostgreSQL (docs/code-flow.md).

Real HTTP requests to pytest-django's ``live_server`` (one thread and one
database connection per request). The overlap is forced, not hoped for: a
transaction holds the code's row lock while the exchanges are sent, and the
test looks in ``pg_stat_activity`` until they all wait for that lock before
letting go. Then exactly one exchange returns a pair, every other one is
``invalid_grant``, and those replays revoke the pair (reason ``code_reused``).
A second test sends a storm released by a barrier, without the held lock.

Timeouts (``GUARD``) only stop a broken run from hanging; no assertion
depends on how fast anything is.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

import pytest
from conftest import FORM
from django.db import connection, connections, transaction

from token_lifecycle import authorization_codes, credentials
from token_lifecycle.models import AuthorizationCode, TokenPair
from token_lifecycle.rules import RevokeReason

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

GUARD = 10.0
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
CALLBACK = "https://app.example/cb"
STORM = 12


@pytest.fixture
def app(make_client):
    client_obj, _ = make_client(
        "Demo app", public=True, grant_types="authorization_code", redirect_uris=CALLBACK
    )
    return client_obj


@pytest.fixture
def code(app, user) -> str:
    return authorization_codes.issue(
        client=app, user=user, redirect_uri=CALLBACK, scope="", code_challenge=CHALLENGE
    )


def exchange(server, app, code: str) -> tuple[int, dict]:
    """POST the exchange on its own connection; ``(status, body)``."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        body = urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": VERIFIER,
                "client_id": app.client_id,
            }
        )
        conn.request("POST", "/auth/token/", body=body, headers={"Content-Type": FORM})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()
        connections.close_all()


def lock_waiters() -> int:
    """Sessions of this database waiting for a lock (here: the code's row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def assert_one_pair_then_revoked(results: list[tuple[int, dict]]) -> None:
    outcomes = Counter(
        "200" if status == 200 else f"{status} {body.get('error')}" for status, body in results
    )
    assert outcomes == {"200": 1, "400 invalid_grant": len(results) - 1}, outcomes
    (winner,) = [body for status, body in results if status == 200]
    pair = TokenPair.objects.get(refresh_token_digest=credentials.digest(winner["refresh_token"]))
    assert TokenPair.objects.count() == 1
    assert pair.revoke_reason == RevokeReason.CODE_REUSED
    row = AuthorizationCode.objects.get()
    assert row.used_at is not None and row.family_id == pair.family_id


def test_exchanges_waiting_on_the_code_row_yield_exactly_one_pair(live_server, app, code):
    row_pk = AuthorizationCode.objects.get().pk
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                AuthorizationCode.objects.select_for_update().get(pk=row_pk)
                locked.set()
                release.wait(GUARD)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row, daemon=True)
    holder.start()
    assert locked.wait(GUARD)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(exchange, live_server, app, code) for _ in range(2)]
        deadline = time.monotonic() + GUARD
        while lock_waiters() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting = lock_waiters()
        release.set()
        results = [future.result(timeout=6 * GUARD) for future in futures]
    holder.join(GUARD)

    assert waiting == 2  # both exchanges were inside their transaction at once
    assert_one_pair_then_revoked(results)


def test_a_storm_of_exchanges_of_one_code_yields_exactly_one_pair(live_server, app, code):
    live_server.thread.httpd.socket.listen(4 * STORM)
    barrier = threading.Barrier(STORM)

    def together() -> tuple[int, dict]:
        barrier.wait(timeout=GUARD)
        return exchange(live_server, app, code)

    with ThreadPoolExecutor(max_workers=STORM) as pool:
        results = [
            future.result(timeout=6 * GUARD)
            for future in [pool.submit(together) for _ in range(STORM)]
        ]

    assert_one_pair_then_revoked(results)
