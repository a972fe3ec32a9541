"""docs/lifecycle.md rules 2 and 3 under real concurrency, on PostgreSQL.

Storms of real HTTP requests hit pytest-django's ``live_server`` (a threaded
server: one thread and one database connection per request) from threads
released together by a barrier, so that the requests really overlap. Where an
exact interleaving matters, it is forced instead of hoped for: a
:class:`TransactionThread` keeps a transaction open, holding a principal's
advisory lock (or an uncommitted revocation), and the test looks in
``pg_locks`` to see that another request is waiting for that lock before it
lets the transaction commit. Timeouts (``GUARD``) only stop a broken run from
hanging; no assertion depends on how fast anything is.

Passwords are hashed with MD5 here, only to keep the password-login storms
fast: hashing happens before the token transaction and does not change what
these tests prove.

Each test prints its figures (requests, threads, outcomes, live pairs); see
them with ``pytest -rP``.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import pytest
from conftest import FORM, PASSWORD, basic_auth
from django.db import connection, connections, transaction
from django.utils import timezone

from token_lifecycle import clock, credentials, locking, rules, services
from token_lifecycle.models import GrantType, TokenPair
from token_lifecycle.rules import RevokeReason

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

#: Concurrent requests per storm.
STORM = 24
#: ``MAX_PAIRS_PER_CLIENT`` and ``REFRESH_GRACE_PERIOD`` of the example project (the defaults).
MAX_PAIRS = 10
GRACE = timedelta(hours=6)
#: Seconds after which a test gives up waiting: a failure guard, never a speed assertion.
GUARD = 10.0

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def server(live_server):
    """pytest-django's ``live_server``, listening with a backlog that fits a whole storm.

    Django's test server listens with a backlog of 10: when a storm's connections
    arrive faster than its accept loop takes them, Linux resets the extra ones
    ("Connection reset by peer") before the server ever sees the request.
    Calling ``listen()`` again on the listening socket only enlarges the queue.
    """
    live_server.thread.httpd.socket.listen(4 * STORM)
    return live_server


# -- HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One response of the token endpoint."""

    status: int
    body: dict[str, Any]

    @property
    def error(self) -> str | None:
        return self.body.get("error")

    @property
    def outcome(self) -> str:
        """``"200"``, ``"400 invalid_grant"``, ``"5xx"``...: what :func:`tally` counts."""
        if self.status >= 500:
            return "5xx"
        return str(self.status) if self.status == 200 else f"{self.status} {self.error}"

    @property
    def pair(self) -> TokenPair:
        """The pair whose refresh token this (successful) answer carries."""
        return pair_of(self.body["refresh_token"])


class TokenEndpoint:
    """POSTs form-encoded token requests to the live server, one connection per request."""

    def __init__(self, server, client, secret: str) -> None:
        parts = urlsplit(server.url)
        self.host, self.port = parts.hostname, parts.port
        self.authorization = basic_auth(client.client_id, secret)

    def post(self, **params: str) -> Answer:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(
                "POST",
                "/auth/token/",
                body=urlencode(params),
                headers={"Content-Type": FORM, "Authorization": self.authorization},
            )
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        return Answer(response.status, body)

    def login(self, username: str) -> Answer:
        return self.post(grant_type="password", username=username, password=PASSWORD)

    def refresh(self, refresh_token: str) -> Answer:
        return self.post(grant_type="refresh_token", refresh_token=refresh_token)

    def client_credentials(self) -> Answer:
        return self.post(grant_type="client_credentials")


# -- Threads ------------------------------------------------------------------


def closing_connections(function: Callable[..., T]) -> Callable[..., T]:
    """Close the thread's database connections when ``function`` returns, so the test DB can go."""

    def run(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return run


def run_together(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Run each task on its own thread, all released at once by a barrier; results in order."""
    barrier = threading.Barrier(len(tasks))

    @closing_connections
    def run(task: Callable[[], T]) -> T:
        barrier.wait(timeout=GUARD)
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(run, task) for task in tasks]
        return [future.result(timeout=6 * GUARD) for future in futures]


class TransactionThread:
    """A thread holding one open transaction; runs the calls sent to it inside that transaction.

    The test decides when the transaction commits (:meth:`commit`), so whatever
    the calls locked (a principal's advisory lock) or wrote stays locked and
    uncommitted meanwhile.
    """

    def __init__(self) -> None:
        self._calls: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> TransactionThread:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive():
            self._calls.put(None)
            self._thread.join(GUARD)

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        done: Future = Future()
        self._calls.put((function, args, kwargs, done))
        return done.result(timeout=GUARD)

    def commit(self) -> None:
        self._calls.put(None)
        self._thread.join(GUARD)
        assert not self._thread.is_alive(), "the held transaction did not end"
        if self._error is not None:
            raise self._error

    @closing_connections
    def _main(self) -> None:
        try:
            with transaction.atomic():
                while (call := self._calls.get(timeout=6 * GUARD)) is not None:
                    function, args, kwargs, done = call
                    try:
                        done.set_result(function(*args, **kwargs))
                    except BaseException as error:
                        done.set_exception(error)
        except BaseException as error:
            self._error = error


class LiveCountMonitor:
    """Samples a principal's live-pair count from its own connection while a storm runs.

    Each sample is one ``SELECT count(*)``, which sees one committed state, so
    the largest sample is the largest live count any reader could observe.
    """

    def __init__(self, client, user) -> None:
        self.client, self.user = client, user
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> LiveCountMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(GUARD)

    @property
    def peak(self) -> int:
        return max(self.samples)

    @closing_connections
    def _main(self) -> None:
        while True:
            self.samples.append(live_pairs(self.client, self.user).count())
            if self._stop.wait(0.002):
                return


# -- PostgreSQL locks -----------------------------------------------------------


def advisory_lock_waiters() -> int:
    """Sessions of this test database waiting for an advisory lock (a principal's lock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


def wait_until(condition: Callable[[], bool], what: str, *, poll: float = 0.01) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting until {what}"
        time.sleep(poll)


def wait_for_lock_waiters(count: int) -> None:
    wait_until(lambda: advisory_lock_waiters() >= count, f"{count} request(s) wait for a lock")


# -- Data -----------------------------------------------------------------------


def pair_of(refresh_token: str) -> TokenPair:
    return TokenPair.objects.get(refresh_token_digest=credentials.digest(refresh_token))


def live_pairs(client, user):
    return TokenPair.objects.live(timezone.now()).filter(client=client, user=user)


def principal_pairs(client, user) -> list[TokenPair]:
    return list(TokenPair.objects.filter(client=client, user=user))


def tally(answers: Sequence[Answer]) -> Counter:
    return Counter(answer.outcome for answer in answers)


def report(test: str, outcomes: Counter, *, threads: int, live: int) -> None:
    """Print a test's figures (shown by ``pytest -rP``)."""
    requests = sum(outcomes.values())
    print(f"\n[figures] {test}: {requests} requests from {threads} threads")
    print(f"[figures] {test}: outcomes {dict(outcomes)}, live pairs after: {live}")


def assert_no_server_error(answers: Sequence[Answer]) -> None:
    broken = [answer for answer in answers if answer.status >= 500]
    assert not broken, f"{len(broken)} 5xx answers, e.g. {broken[0]}"


# -- 1. Refresh storms on one refresh token ---------------------------------------


def refresh_storm(endpoint: TokenEndpoint, username: str, client, user):
    """Log in once, then refresh that one refresh token STORM times at once."""
    login = endpoint.login(username)
    assert login.status == 200, login
    parent = login.pair
    token = login.body["refresh_token"]
    with LiveCountMonitor(client, user) as monitor:
        answers = run_together([lambda: endpoint.refresh(token)] * STORM)
    parent.refresh_from_db()
    return parent, token, answers, monitor


def assert_one_family_under(parent: TokenPair, client, user) -> None:
    """Every pair of the principal is the parent or a child of it, in the parent's family."""
    pairs = {pair.pk: pair for pair in principal_pairs(client, user)}
    assert parent.parent_id is None
    assert parent.family_id == parent.pk
    for pair in pairs.values():
        if pair.pk != parent.pk:
            assert pair.parent_id == parent.pk
            assert pairs[pair.parent_id].family_id == pair.family_id == parent.family_id


def assert_rotated_once(parent: TokenPair) -> None:
    """The first use set ``rotated_at`` and the grace end; later uses did not move them."""
    assert parent.rotated_at is not None
    assert parent.refresh_grace_ends_at == parent.rotated_at + GRACE


def test_refresh_storm_inside_the_grace_window_gives_every_request_a_new_pair(
    server, make_user, make_client
):
    """docs/lifecycle.md rule 2: every use of R inside its grace window issues another new pair.

    STORM concurrent refreshes of one refresh token, through a client whose cap
    (a per-client override, STORM + 1) leaves room for all of them: all succeed,
    each with its own new pair in the parent's family, and the parent was
    rotated exactly once.
    """
    user = make_user("alice")
    client, secret = make_client("roomy", max_pairs_per_client=STORM + 1)
    endpoint = TokenEndpoint(server, client, secret)

    parent, token, answers, monitor = refresh_storm(endpoint, "alice", client, user)

    live = live_pairs(client, user).count()
    report("refresh storm, roomy cap", tally(answers), threads=STORM, live=live)
    assert_no_server_error(answers)
    assert tally(answers) == {"200": STORM}
    new_tokens = {answer.body["refresh_token"] for answer in answers}
    assert len(new_tokens) == STORM and token not in new_tokens
    assert_rotated_once(parent)
    assert parent.revoked_at is None
    assert_one_family_under(parent, client, user)
    assert live == STORM + 1 <= client.policy().max_pairs
    assert monitor.peak <= client.policy().max_pairs
    assert not TokenPair.objects.exclude(revoke_reason="").exists()


def test_refresh_storm_with_the_default_cap_stops_when_the_parent_is_evicted(
    server, make_user, oauth_client
):
    """docs/lifecycle.md rules 2 and 3 together, with the default cap of 10.

    Each refresh inside the grace window issues a new pair, but the cap counts
    the parent and its children: the 10th child evicts the parent (the oldest
    live pair), and from then on its refresh token is refused like any revoked
    one (``invalid_grant``, no reuse detection). So exactly MAX_PAIRS of the
    STORM refreshes succeed, the rest get ``invalid_grant``, nothing is 5xx,
    and the principal never has more than MAX_PAIRS live pairs.
    """
    user = make_user("alice")
    client, secret = oauth_client
    endpoint = TokenEndpoint(server, client, secret)

    parent, token, answers, monitor = refresh_storm(endpoint, "alice", client, user)

    live = live_pairs(client, user).count()
    outcomes = tally(answers)
    report("refresh storm, default cap", outcomes, threads=STORM, live=live)
    assert_no_server_error(answers)
    assert set(outcomes) <= {"200", "400 invalid_grant"}
    assert outcomes == {"200": MAX_PAIRS, "400 invalid_grant": STORM - MAX_PAIRS}
    new_tokens = {answer.body["refresh_token"] for answer in answers if answer.status == 200}
    assert len(new_tokens) == MAX_PAIRS and token not in new_tokens
    assert_rotated_once(parent)
    assert parent.revoke_reason == RevokeReason.EVICTED
    assert_one_family_under(parent, client, user)
    assert live == MAX_PAIRS
    succeeded = {answer.pair for answer in answers if answer.status == 200}
    assert set(live_pairs(client, user)) == succeeded
    assert monitor.peak <= MAX_PAIRS
    assert not TokenPair.objects.filter(revoke_reason=RevokeReason.REUSE_DETECTED).exists()


# -- 2. Client-credentials storm ----------------------------------------------------


def test_client_credentials_storm_keeps_exactly_the_cap_of_newest_pairs(server, oauth_client):
    """docs/lifecycle.md rule 3: the cap holds exactly under concurrent issues for one principal.

    STORM concurrent ``client_credentials`` requests of one client (principal:
    the client and its owner, docs/lifecycle.md) all succeed. Afterwards exactly
    MAX_PAIRS pairs are live (no reader ever saw more), every other pair was
    revoked with reason ``evicted``, and no evicted pair is newer (by issue
    time) than a surviving one.
    """
    client, secret = oauth_client
    owner = client.owner
    endpoint = TokenEndpoint(server, client, secret)

    with LiveCountMonitor(client, owner) as monitor:
        answers = run_together([endpoint.client_credentials] * STORM)

    now = timezone.now()
    pairs = principal_pairs(client, owner)
    live = [pair for pair in pairs if rules.is_live(pair, now)]
    evicted = [pair for pair in pairs if not rules.is_live(pair, now)]
    report("client_credentials storm", tally(answers), threads=STORM, live=len(live))
    assert_no_server_error(answers)
    assert tally(answers) == {"200": STORM}
    assert len({answer.body["refresh_token"] for answer in answers}) == STORM
    assert len(pairs) == STORM
    assert len(live) == MAX_PAIRS
    assert monitor.peak <= MAX_PAIRS
    assert len(evicted) == STORM - MAX_PAIRS
    assert {pair.revoke_reason for pair in evicted} == {RevokeReason.EVICTED}
    assert max(pair.issued_at for pair in evicted) <= min(pair.issued_at for pair in live)


# -- 3. Mixed storm -------------------------------------------------------------------


def test_mixed_storm_of_logins_and_refreshes_never_exceeds_the_cap(
    server, make_user, oauth_client, settings
):
    """docs/lifecycle.md rule 3 with logins and refreshes of one principal racing each other.

    Three rounds, each STORM requests at once: half password logins, half
    refreshes of four earlier refresh tokens. No 5xx; every login succeeds; a
    refresh either succeeds or gets ``invalid_grant`` because the cap evicted
    its pair meanwhile (never a reuse detection, the grace window is open);
    after every round exactly MAX_PAIRS pairs are live and no reader ever saw
    more.
    """
    # Twelve logins of one username at once exceed the password limit's places
    # (attempts count while they are hashed): this test is about the cap.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "token_lifecycle.password_username": None,
            "token_lifecycle.password_ip": None,
        },
    }
    user = make_user("alice")
    client, secret = oauth_client
    endpoint = TokenEndpoint(server, client, secret)
    tokens = [endpoint.login("alice").body["refresh_token"] for _ in range(4)]
    half = STORM // 2
    totals: Counter = Counter()

    for _ in range(3):
        refreshed = [tokens[i % len(tokens)] for i in range(half)]
        tasks = [lambda: endpoint.login("alice")] * half
        tasks += [lambda token=token: endpoint.refresh(token) for token in refreshed]
        with LiveCountMonitor(client, user) as monitor:
            answers = run_together(tasks)
        logins, refreshes = answers[:half], answers[half:]
        totals += tally(answers)

        assert_no_server_error(answers)
        assert tally(logins) == {"200": half}
        assert set(tally(refreshes)) <= {"200", "400 invalid_grant"}
        for token, answer in zip(refreshed, refreshes, strict=True):
            if answer.status != 200:
                assert pair_of(token).revoke_reason == RevokeReason.EVICTED
        assert live_pairs(client, user).count() == MAX_PAIRS
        assert monitor.peak <= MAX_PAIRS
        tokens = [answer.body["refresh_token"] for answer in answers if answer.status == 200][-4:]

    report("mixed storm (3 rounds)", totals, threads=STORM, live=live_pairs(client, user).count())
    assert not TokenPair.objects.filter(revoke_reason=RevokeReason.REUSE_DETECTED).exists()


# -- 4. Different users do not share a lock ------------------------------------------


def test_logins_of_different_users_through_one_client_do_not_serialise(
    server, make_user, oauth_client
):
    """docs/lifecycle.md rule 3: logins of different users through one client must not serialise.

    A transaction holds alice's principal lock for (client, alice). Alice's
    login through that client queues for the lock (seen in ``pg_locks``) and
    stays pending; bob's login through the same client completes meanwhile.
    Once the transaction ends, alice's login completes too.
    """
    alice, bob = make_user("alice"), make_user("bob")
    client, secret = oauth_client
    endpoint = TokenEndpoint(server, client, secret)

    with ThreadPoolExecutor(max_workers=2) as pool, TransactionThread() as holder:
        holder.run(locking.lock_principal, client.pk, alice.pk)
        alice_login = pool.submit(endpoint.login, "alice")
        wait_for_lock_waiters(1)

        bob_answer = pool.submit(endpoint.login, "bob").result(timeout=GUARD)
        assert bob_answer.status == 200, bob_answer
        assert not alice_login.done(), "alice's login did not wait for alice's lock"
        assert advisory_lock_waiters() == 1

        holder.commit()
        alice_answer = alice_login.result(timeout=GUARD)

    outcomes = tally([bob_answer, alice_answer])
    report(
        "different users, one client",
        outcomes,
        threads=2 + 1,
        live=TokenPair.objects.live(timezone.now()).count(),
    )
    assert alice_answer.status == 200, alice_answer
    assert alice_answer.pair.user == alice and bob_answer.pair.user == bob


# -- 5. Refresh racing a user-wide revocation ----------------------------------------


def revoke_everything_of(user) -> list:
    """What a password change or logout-all does (docs/lifecycle.md rule 4)."""
    return services.revoke_user_pairs(user, RevokeReason.PASSWORD_CHANGE)


def test_revocation_waits_for_a_refresh_in_flight_and_revokes_its_new_pair(
    server, make_user, oauth_client
):
    """Refresh first: the revocation waits for it and then revokes the pair it created.

    A transaction refreshes alice's pair and stays open (holding the principal
    lock, the new pair uncommitted). A user-wide revocation started meanwhile
    queues for that lock; once the refresh commits, the revocation revokes the
    new pair as well as the old one: nothing escapes.
    """
    user = make_user("alice")
    client, secret = oauth_client
    login = TokenEndpoint(server, client, secret).login("alice")
    issuer = f"{server.url}/auth"

    with ThreadPoolExecutor(max_workers=1) as pool, TransactionThread() as holder:
        child = holder.run(
            services.refresh_pair,
            client=client,
            refresh_token=login.body["refresh_token"],
            issuer=issuer,
        ).pair
        revocation = pool.submit(closing_connections(revoke_everything_of), user)
        wait_for_lock_waiters(1)
        assert not revocation.done()
        holder.commit()
        revoked_ids = revocation.result(timeout=GUARD)

    live = live_pairs(client, user).count()
    report("refresh then revocation (forced)", Counter({"200": 1}), threads=2, live=live)
    assert set(revoked_ids) == {login.pair.pk, child.pk}
    child.refresh_from_db()
    assert child.revoke_reason == RevokeReason.PASSWORD_CHANGE
    assert live == 0


def test_refresh_waiting_behind_a_revocation_is_refused(server, make_user, oauth_client):
    """Revocation first: a refresh that waited for it finds its pair revoked.

    A transaction revokes every pair of alice and stays open. A refresh of
    alice's refresh token queues for the principal lock; once the revocation
    commits, the refresh gets ``invalid_grant`` (not 5xx) and no pair is live.
    """
    user = make_user("alice")
    client, secret = oauth_client
    endpoint = TokenEndpoint(server, client, secret)
    login = endpoint.login("alice")

    with ThreadPoolExecutor(max_workers=1) as pool, TransactionThread() as holder:
        assert holder.run(revoke_everything_of, user) == [login.pair.pk]
        refresh = pool.submit(endpoint.refresh, login.body["refresh_token"])
        wait_for_lock_waiters(1)
        assert not refresh.done()
        holder.commit()
        answer = refresh.result(timeout=GUARD)

    live = live_pairs(client, user).count()
    report("revocation then refresh (forced)", tally([answer]), threads=2, live=live)
    assert answer.outcome == "400 invalid_grant", answer
    assert live == 0
    assert TokenPair.objects.count() == 1


def test_refresh_storm_racing_a_revocation_leaves_no_live_pair(server, make_user, oauth_client):
    """An unforced race: STORM - 1 refreshes of one token and a revocation in their midst.

    The revocation starts as soon as the first refresh has committed, while the
    others are in flight. Whatever the interleaving, each refresh either
    commits before the revocation takes the principal lock (and its pair is
    revoked with the rest) or runs after it and is refused with
    ``invalid_grant``. Three rounds; after each, no pair of alice is live and
    nothing answered 5xx.
    """
    user = make_user("alice")
    client, secret = oauth_client
    endpoint = TokenEndpoint(server, client, secret)
    totals: Counter = Counter()

    for _ in range(3):
        login = endpoint.login("alice")
        token, parent = login.body["refresh_token"], login.pair

        def revoke_after_the_first_refresh(parent: TokenPair = parent) -> list:
            children = TokenPair.objects.filter(parent=parent)
            wait_until(children.exists, "a refresh commits", poll=0.001)
            return revoke_everything_of(user)

        tasks: list[Callable[[], Any]] = [lambda token=token: endpoint.refresh(token)]
        *answers, revoked_ids = run_together(
            tasks * (STORM - 1) + [revoke_after_the_first_refresh]
        )
        totals += tally(answers)

        assert_no_server_error(answers)
        assert set(tally(answers)) <= {"200", "400 invalid_grant"}
        assert revoked_ids, "the revocation found nothing live"
        assert live_pairs(client, user).count() == 0
        for answer in answers:
            if answer.status == 200:
                reason = answer.pair.revoke_reason
                assert reason in (RevokeReason.PASSWORD_CHANGE, RevokeReason.EVICTED)

    report(
        "refresh storm racing a revocation (3 rounds)",
        totals,
        threads=STORM,
        live=live_pairs(client, user).count(),
    )


# -- Interleavings that expose bugs -----------------------------------------------------


def test_login_committed_before_a_revocation_commits_does_not_escape_it(
    server, make_user, make_client
):
    """A user-wide revocation must catch every pair committed before it commits.

    Alice has a pair through client A only. A transaction revokes every pair of
    alice and stays open. Meanwhile alice logs in through client B. If that
    login commits before the revocation does (it does today: nothing makes it
    wait), its pair was created before the revocation committed and must be
    revoked by it (docs/lifecycle.md rule 4: a password change revokes every pair of the
    user). A login that waits for the revocation and runs after it may keep
    its pair.
    """
    user = make_user("alice")
    client_a, secret_a = make_client("a")
    client_b, secret_b = make_client("b")
    assert TokenEndpoint(server, client_a, secret_a).login("alice").status == 200
    endpoint_b = TokenEndpoint(server, client_b, secret_b)

    with ThreadPoolExecutor(max_workers=1) as pool, TransactionThread() as holder:
        assert len(holder.run(revoke_everything_of, user)) == 1
        login = pool.submit(endpoint_b.login, "alice")
        wait_until(lambda: login.done() or advisory_lock_waiters() > 0, "the login ends or waits")
        committed_before_revocation = login.done()
        holder.commit()
        answer = login.result(timeout=GUARD)

    assert answer.status == 200, answer
    live = live_pairs(client_b, user).count()
    report(
        "login via another client during a revocation (forced)",
        tally([answer]),
        threads=2,
        live=live,
    )
    if committed_before_revocation:
        assert answer.pair.revoked_at is not None, "a pair committed before the revocation escaped"


def wait_for_the_next_second() -> None:
    """Until ``clock.now()`` (whole seconds) is past the current second."""
    start = clock.now()
    wait_until(lambda: clock.now() > start, "the clock moves to the next second")


def test_a_pair_issued_after_waiting_for_the_lock_is_not_older_than_pairs_it_evicts(
    server, oauth_client
):
    """docs/lifecycle.md rule 3: eviction revokes the *oldest* live pairs, by issue time.

    A ``client_credentials`` request queues for the principal lock, held by a
    transaction. Once the clock has moved on by a second, that transaction
    issues MAX_PAIRS pairs and commits; the waiting request then issues its
    pair, which evicts one. Every evicted pair must be at least as old as every
    live pair. Today the waiting request stamps its pair with the time it read
    *before* it waited, so its pair survives as the oldest one while a newer
    pair is evicted (and the pair just handed out is not the "current" one).
    """
    client, secret = oauth_client
    owner = client.owner
    endpoint = TokenEndpoint(server, client, secret)
    issuer = f"{server.url}/auth"

    def issue_a_full_cap() -> list[TokenPair]:
        return [
            services.issue_pair(
                client=client, user=owner, issuer=issuer, grant_type=GrantType.CLIENT_CREDENTIALS
            ).pair
            for _ in range(MAX_PAIRS)
        ]

    with ThreadPoolExecutor(max_workers=1) as pool, TransactionThread() as holder:
        holder.run(locking.lock_principal, client.pk, owner.pk)
        waiting = pool.submit(endpoint.client_credentials)
        wait_for_lock_waiters(1)
        wait_for_the_next_second()
        holder.run(issue_a_full_cap)
        holder.commit()
        answer = waiting.result(timeout=GUARD)

    assert answer.status == 200, answer
    now = timezone.now()
    pairs = principal_pairs(client, owner)
    live = [pair for pair in pairs if rules.is_live(pair, now)]
    evicted = [pair for pair in pairs if not rules.is_live(pair, now)]
    report("issue after waiting for the lock (forced)", tally([answer]), threads=2, live=len(live))
    assert len(live) == MAX_PAIRS and len(evicted) == 1
    assert evicted[0].issued_at <= min(pair.issued_at for pair in live), (
        f"evicted a pair issued at {evicted[0].issued_at:%H:%M:%S} while the pair issued at "
        f"{answer.pair.issued_at:%H:%M:%S} stays live"
    )
