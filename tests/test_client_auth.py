"""``TokenAuth`` against a scripted server (``httpx.MockTransport``), on an injected clock.

Covers what is hard to pin down against the real server: the exact instant of a
proactive refresh, the single flight (threads and asyncio tasks), the retry
after a 401, what each token-endpoint refusal becomes, and how passing
failures are absorbed. The real server's own answers are checked in
``test_client_live.py``.

The single-flight tests run on a store whose lock excludes nothing, so that
only the flight can keep the renewals to one; the token request is held open
until every caller has joined the flight (counted, not timed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from token_lifecycle.client import (
    ClientAuthenticationFailed,
    ClientCredentials,
    InvalidCredentials,
    LoginRequired,
    MemoryTokenStore,
    PasswordGrant,
    ReauthenticationRequired,
    RefreshTokenExpired,
    RefreshTokenRejected,
    RefreshTokenReused,
    RefreshTokenRevoked,
    SessionEnded,
    TokenAuth,
    TokenEndpointError,
    TokenEndpointUnavailable,
    TokenSet,
    rejects_access_token,
)
from token_lifecycle.client.errors import error_for_response
from token_lifecycle.client.flight import SingleFlight

TOKEN_URL = "https://auth.test/auth/token/"
API_URL = "https://api.test/api/whoami/"
ACCESS_LIFETIME = 1000
REFRESH_LIFETIME = 3000
T0 = 1_700_000_000.0
#: Seconds after which a test gives up waiting: a failure guard, never a speed assertion.
GUARD = 10.0


class Clock:
    """The injected time source of the client and of the scripted server."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedServer:
    """A token endpoint, a revocation endpoint and one bearer-protected API, in memory.

    Tokens expire on the shared :class:`Clock`. ``answers`` queues forced answers
    ``(status, body[, headers])`` for the next token requests; ``gate`` runs inside every
    refresh before it answers (to hold it open).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.access: dict[str, float] = {}
        self.refresh: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self.api_bodies: list[bytes] = []
        self.refresh_tokens_used: list[str] = []
        self.answers: list[tuple[int, dict]] = []
        self.gate: Callable[[], None] | None = None
        self.reject_every_token = False
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token/"):
            return self._token(dict(parse_qs(request.content.decode())))
        if request.url.path.endswith("/revoke/"):
            self.calls["revoke"] += 1
            token = parse_qs(request.content.decode())["token"][0]
            self.refresh.pop(token, None)
            return httpx.Response(200)
        return self._api(request)

    def _token(self, form: dict[str, list[str]]) -> httpx.Response:
        grant_type = form["grant_type"][0]
        with self._lock:
            self.calls[grant_type] += 1
        if grant_type == "refresh_token" and self.gate is not None:
            self.gate()
        if self.answers:
            status, body, *headers = self.answers.pop(0)
            return httpx.Response(status, json=body, headers=headers[0] if headers else None)
        if grant_type == "refresh_token":
            token = form["refresh_token"][0]
            self.refresh_tokens_used.append(token)
            if self.refresh.get(token, float("-inf")) <= self.clock.now:
                refusal = invalid_grant("The refresh token is invalid.", "invalid")
                return httpx.Response(400, json=refusal)
        return httpx.Response(200, json=self.issue())

    def issue(self) -> dict:
        with self._lock:
            number = next(self._numbers)
        access, refresh = f"at-{number}", f"rt-{number}"
        self.access[access] = self.clock.now + ACCESS_LIFETIME
        self.refresh[refresh] = self.clock.now + REFRESH_LIFETIME
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_LIFETIME,
            "refresh_token": refresh,
            "refresh_expires_in": REFRESH_LIFETIME,
        }

    def revoke_access(self, token: str) -> None:
        self.access.pop(token, None)

    def _api(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls["api"] += 1
            self.api_bodies.append(request.content)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.reject_every_token or self.access.get(token, float("-inf")) <= self.clock.now:
            challenge = 'Bearer realm="api", error="invalid_token", error_description="bad"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, json={"token": token})


def invalid_grant(description: str, reason: str) -> dict[str, str]:
    """The server's refusal of a refresh: the class is chosen by ``reason``."""
    return {"error": "invalid_grant", "error_description": description, "reason": reason}


class UnlockedStore(MemoryTokenStore):
    """A store whose lock excludes nothing: only the single flight can prevent duplicates."""

    def lock(self, key: str, timeout: float):
        return contextlib.nullcontext(True)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock) -> ScriptedServer:
    return ScriptedServer(clock)


@pytest.fixture
def make_auth(server, clock):
    def make(**options) -> TokenAuth:
        options.setdefault("store", MemoryTokenStore())
        token_client = httpx.Client(transport=httpx.MockTransport(server))
        return TokenAuth(
            TOKEN_URL, "client-1", "secret", token_client=token_client, clock=clock, **options
        )

    return make


def api_client(server: ScriptedServer, auth: TokenAuth) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server), auth=auth)


def api_token(response: httpx.Response) -> str:
    assert response.status_code == 200, response
    return response.json()["token"]


# -- Proactive refresh ----------------------------------------------------------


def test_first_request_logs_in_then_reuses_the_pair(server, make_auth):
    with api_client(server, make_auth()) as api:
        assert api_token(api.get(API_URL)) == "at-1"
        assert api_token(api.get(API_URL)) == "at-1"
    assert server.calls == Counter({"client_credentials": 1, "api": 2})


@pytest.mark.parametrize(
    ("options", "margin"),
    [
        ({}, ACCESS_LIFETIME * 0.1),  # the default: 10% of the access lifetime
        ({"refresh_fraction": 0.25}, ACCESS_LIFETIME * 0.25),
        ({"refresh_margin": timedelta(seconds=7)}, 7),
    ],
)
def test_refresh_happens_exactly_at_the_margin_before_expiry(
    server, make_auth, clock, options, margin
):
    with api_client(server, make_auth(**options)) as api:
        api.get(API_URL)
        clock.now = T0 + ACCESS_LIFETIME - margin - 1
        assert api_token(api.get(API_URL)) == "at-1"
        assert server.calls["refresh_token"] == 0
        clock.now = T0 + ACCESS_LIFETIME - margin
        assert api_token(api.get(API_URL)) == "at-2"
    # The refresh came before the request, which never saw a 401.
    assert server.calls == Counter({"client_credentials": 1, "refresh_token": 1, "api": 3})


def test_expiry_is_counted_from_when_the_request_was_sent(server, make_auth, clock):
    """The server counts expires_in from a later instant: the client's expiry is never later."""

    def slow_server(request):
        response = server(request)
        clock.now += 5  # the token request took 5 s
        return response

    auth = TokenAuth(
        TOKEN_URL,
        "client-1",
        "secret",
        store=MemoryTokenStore(),
        clock=clock,
        token_client=httpx.Client(transport=httpx.MockTransport(slow_server)),
    )
    tokens = auth.tokens()
    assert tokens.obtained_at == T0
    assert tokens.access_expires_at == T0 + ACCESS_LIFETIME
    assert tokens.refresh_expires_at == T0 + REFRESH_LIFETIME


# -- Retry on 401 ---------------------------------------------------------------


def test_401_invalid_token_renews_and_retries_once_with_the_same_body(server, make_auth):
    with api_client(server, make_auth()) as api:
        api.get(API_URL)
        server.revoke_access("at-1")  # e.g. evicted, or logged out elsewhere
        response = api.post(API_URL, content=b"payload")
        assert api_token(response) == "at-2"
    assert server.calls["refresh_token"] == 1
    assert server.api_bodies[-2:] == [b"payload", b"payload"]


def test_a_second_401_is_returned_to_the_caller(server, make_auth):
    with api_client(server, make_auth()) as api:
        api.get(API_URL)
        server.reject_every_token = True
        response = api.get(API_URL)
    assert response.status_code == 401
    assert server.calls["api"] == 3  # the first request, then one attempt and one retry
    assert server.calls["refresh_token"] == 1


@pytest.mark.parametrize(
    ("status", "challenge", "retried"),
    [
        (401, 'Bearer realm="api", error="invalid_token", error_description="x"', True),
        (401, "Bearer error=invalid_token", True),
        (401, 'Bearer realm="api"', False),  # no credentials reached the server
        (401, 'Basic realm="api"', False),
        (403, 'Bearer error="insufficient_scope"', False),
    ],
)
def test_only_an_invalid_token_challenge_is_retried(status, challenge, retried):
    response = httpx.Response(status, headers={"WWW-Authenticate": challenge})
    assert rejects_access_token(response) is retried


# -- Single flight ----------------------------------------------------------------


class JoinCounter:
    """Wraps ``auth._flight.join``; ``everyone`` is set once ``expected`` callers joined."""

    def __init__(self, flight: SingleFlight, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.everyone = threading.Event()
        self._join = flight.join
        self._lock = threading.Lock()
        flight.join = self  # type: ignore[method-assign]

    def __call__(self):
        joined = self._join()
        with self._lock:
            self.count += 1
            if self.count >= self.expected:
                self.everyone.set()
        return joined


def hold_refreshes_until(event: threading.Event) -> Callable[[], None]:
    def gate() -> None:
        assert event.wait(GUARD), "not every caller joined the flight"

    return gate


def test_one_refresh_for_twenty_threads(server, make_auth, clock):
    auth = make_auth(store=UnlockedStore())
    with api_client(server, auth) as api:
        api.get(API_URL)
        clock.now = T0 + ACCESS_LIFETIME  # due for every thread at once
        joins = JoinCounter(auth._flight, expected=20)
        server.gate = hold_refreshes_until(joins.everyone)
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.append(api_token(api.get(API_URL))))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(GUARD)
    assert server.calls["refresh_token"] == 1
    assert results == ["at-2"] * 20


def test_one_refresh_for_twenty_asyncio_tasks(server, make_auth, clock):
    auth = make_auth(store=UnlockedStore())
    auth.tokens()  # logged in

    async def main() -> list[str]:
        transport = httpx.MockTransport(server)
        async with httpx.AsyncClient(transport=transport, auth=auth) as api:
            clock.now = T0 + ACCESS_LIFETIME
            joins = JoinCounter(auth._flight, expected=20)
            server.gate = hold_refreshes_until(joins.everyone)
            responses = await asyncio.gather(*(api.get(API_URL) for _ in range(20)))
        return [api_token(response) for response in responses]

    assert asyncio.run(main()) == ["at-2"] * 20
    assert server.calls == Counter({"client_credentials": 1, "refresh_token": 1, "api": 20})


def test_threads_and_tasks_share_one_flight(server, make_auth, clock):
    """One auth object used from a thread pool and an event loop at once: still one refresh."""
    auth = make_auth(store=UnlockedStore())
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME
    joins = JoinCounter(auth._flight, expected=10)
    server.gate = hold_refreshes_until(joins.everyone)
    sync_results: list[str] = []

    def in_a_thread() -> None:
        with api_client(server, auth) as api:
            sync_results.append(api_token(api.get(API_URL)))

    async def in_tasks() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server), auth=auth) as api:
            return [
                api_token(r) for r in await asyncio.gather(*(api.get(API_URL) for _ in range(5)))
            ]

    threads = [threading.Thread(target=in_a_thread) for _ in range(5)]
    for thread in threads:
        thread.start()
    async_results = asyncio.run(in_tasks())
    for thread in threads:
        thread.join(GUARD)
    assert server.calls["refresh_token"] == 1
    assert sync_results + async_results == ["at-2"] * 10


def test_a_cancelled_waiter_does_not_cancel_the_flight(server, make_auth, clock):
    auth = make_auth(store=UnlockedStore())
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME
    joins = JoinCounter(auth._flight, expected=2)
    release = threading.Event()
    server.gate = hold_refreshes_until(release)

    async def main() -> TokenSet:
        leader = asyncio.ensure_future(auth.atokens())
        waiter = asyncio.ensure_future(auth.atokens())
        await asyncio.to_thread(joins.everyone.wait, GUARD)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        return await leader

    assert asyncio.run(main()).access_token == "at-2"
    assert server.calls["refresh_token"] == 1


def test_waiters_get_the_leaders_error(server, make_auth, clock):
    auth = make_auth(store=UnlockedStore(), auto_reauthenticate=False)
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME + 1  # expired: nothing to fall back on
    joins = JoinCounter(auth._flight, expected=5)
    server.gate = hold_refreshes_until(joins.everyone)
    server.answers.append((503, {"error": "temporarily_unavailable", "error_description": "x"}))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            auth.tokens()
        except TokenEndpointUnavailable as error:
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert len(errors) == 5
    assert server.calls["refresh_token"] == 1


# -- Sharing a store ----------------------------------------------------------------


def test_a_worker_adopts_the_pair_another_one_stored(server, make_auth, clock):
    store = MemoryTokenStore()
    first, second = make_auth(store=store), make_auth(store=store)
    assert first.tokens().access_token == second.tokens().access_token == "at-1"
    clock.now = T0 + ACCESS_LIFETIME
    assert first.tokens().access_token == "at-2"
    assert second.tokens().access_token == "at-2"  # read from the store, no request
    assert server.calls == Counter({"client_credentials": 1, "refresh_token": 1})


def test_a_worker_refreshes_with_the_stored_token_not_its_own(server, make_auth, clock):
    """Its own refresh token was used by another worker, possibly hours ago: a replay."""
    store = MemoryTokenStore()
    first, second = make_auth(store=store), make_auth(store=store)
    second.tokens()
    clock.now = T0 + ACCESS_LIFETIME - 50
    first.tokens()  # refreshed: rt-1 -> at-2/rt-2
    clock.now = T0 + 2 * ACCESS_LIFETIME  # at-2 is due as well
    assert second.tokens().access_token == "at-3"
    assert server.refresh_tokens_used == ["rt-1", "rt-2"]  # rt-1 was not sent again


def test_by_default_auth_objects_of_one_process_share_a_pair(server, clock):
    def make() -> TokenAuth:
        client = httpx.Client(transport=httpx.MockTransport(server))
        return TokenAuth(TOKEN_URL, "client-shared-default", "s", token_client=client, clock=clock)

    first, second = make(), make()
    try:
        assert first.tokens().access_token == second.tokens().access_token
        assert server.calls["client_credentials"] == 1
    finally:
        first.revoke()


def test_different_principals_do_not_share(server, make_auth):
    store = MemoryTokenStore()
    alice = make_auth(store=store, grant=PasswordGrant("alice", "pw"))
    bob = make_auth(store=store, grant=PasswordGrant("bob", "pw"))
    service = make_auth(store=store, grant=ClientCredentials())
    tokens = {
        alice.tokens().access_token,
        bob.tokens().access_token,
        service.tokens().access_token,
    }
    assert len(tokens) == 3


def test_revoke_logs_out_every_worker_of_the_store(server, make_auth):
    store = MemoryTokenStore()
    first, second = make_auth(store=store), make_auth(store=store)
    first.tokens()
    second.revoke()
    assert server.calls["revoke"] == 1
    assert store.load(first.store_key) is None
    assert "rt-1" not in server.refresh


# -- Exceptions -----------------------------------------------------------------------

REFRESH_REFUSALS = [
    ("revoked", "The refresh token has been revoked.", RefreshTokenRevoked),
    ("session_ended", "The session has reached its maximum lifetime.", SessionEnded),
    ("expired", "The refresh token has expired.", RefreshTokenExpired),
    (
        "reuse_detected",
        "The refresh token was already used and its grace window has ended.",
        RefreshTokenReused,
    ),
    ("invalid", "The refresh token is invalid.", RefreshTokenRejected),
    ("user_inactive", "The user account is inactive.", RefreshTokenRejected),
]


@pytest.mark.parametrize(("reason", "description", "error_class"), REFRESH_REFUSALS)
def test_refresh_refusals_map_to_classes(reason, description, error_class):
    error = error_for_response(
        400, "invalid_grant", description, grant_type="refresh_token", reason=reason
    )
    assert type(error) is error_class
    assert isinstance(error, ReauthenticationRequired)
    assert (error.error, error.description, error.status_code) == (
        "invalid_grant",
        description,
        400,
    )


@pytest.mark.parametrize(
    ("status", "error", "grant_type", "error_class"),
    [
        (400, "invalid_grant", "password", InvalidCredentials),
        (401, "invalid_client", "refresh_token", ClientAuthenticationFailed),
        (503, "temporarily_unavailable", "refresh_token", TokenEndpointUnavailable),
        (429, "slow_down", "refresh_token", TokenEndpointUnavailable),
        (500, "invalid_response", "client_credentials", TokenEndpointUnavailable),
        (400, "unauthorized_client", "client_credentials", TokenEndpointError),
        (400, "invalid_scope", "password", TokenEndpointError),
    ],
)
def test_other_refusals_map_to_classes(status, error, grant_type, error_class):
    mapped = error_for_response(status, error, "why", grant_type=grant_type)
    assert type(mapped) is error_class
    assert (mapped.error, mapped.description, mapped.status_code) == (error, "why", status)
    is_terminal = error_class is InvalidCredentials
    assert isinstance(mapped, ReauthenticationRequired) is is_terminal


@pytest.mark.parametrize(("reason", "description", "error_class"), REFRESH_REFUSALS)
def test_a_refused_refresh_reaches_the_caller_without_auto_reauthentication(
    server, make_auth, clock, reason, description, error_class
):
    store = MemoryTokenStore()
    auth = make_auth(store=store, auto_reauthenticate=False)
    with api_client(server, auth) as api:
        api.get(API_URL)
        clock.now = T0 + ACCESS_LIFETIME
        server.answers.append((400, invalid_grant(description, reason)))
        with pytest.raises(error_class) as raised:
            api.get(API_URL)
    assert raised.value.description == description
    assert store.load(auth.store_key) is None  # the dead pair is forgotten
    assert server.calls["client_credentials"] == 1


def test_client_credentials_log_in_again_once(server, make_auth, clock):
    with api_client(server, make_auth()) as api:
        api.get(API_URL)
        clock.now = T0 + ACCESS_LIFETIME
        server.answers.append((400, invalid_grant("revoked", "revoked")))
        assert api_token(api.get(API_URL)) == "at-2"
    assert server.calls["client_credentials"] == 2
    assert server.calls["refresh_token"] == 1


def test_a_password_callback_logs_in_again(server, make_auth, clock):
    prompts = []

    def password() -> str:
        prompts.append(True)
        return "pw"

    auth = make_auth(grant=PasswordGrant("alice", password))
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME
    server.answers.append((400, invalid_grant("expired", "expired")))
    assert auth.tokens().access_token == "at-2"
    assert len(prompts) == 2
    assert server.calls["password"] == 2


def test_without_a_password_the_refusal_reaches_the_caller(server, make_auth, clock):
    passwords = iter(["pw"])
    auth = make_auth(grant=PasswordGrant("alice", lambda: next(passwords, None)))
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME
    server.answers.append((400, invalid_grant("revoked", "revoked")))
    with pytest.raises(RefreshTokenRevoked):
        auth.tokens()
    with pytest.raises(LoginRequired):  # nothing left to renew, nobody to ask
        auth.tokens()


def test_a_failed_relogin_is_raised_with_the_refusal_as_cause(server, make_auth, clock):
    auth = make_auth(grant=PasswordGrant("alice", "old password"))
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME
    server.answers += [
        (400, invalid_grant("The refresh token has been revoked.", "revoked")),
        (400, {"error": "invalid_grant", "error_description": "Invalid username or password."}),
    ]
    with pytest.raises(InvalidCredentials) as raised:
        auth.tokens()
    assert isinstance(raised.value.__cause__, RefreshTokenRevoked)
    assert server.calls["password"] == 2  # the first login and one attempt, no more


def test_wrong_client_secret_is_a_configuration_error(server, make_auth):
    server.answers.append((401, {"error": "invalid_client", "error_description": "failed"}))
    with pytest.raises(ClientAuthenticationFailed) as raised:
        make_auth().tokens()
    assert not isinstance(raised.value, ReauthenticationRequired)


def test_a_garbled_token_response_is_an_error(server, make_auth):
    server.answers.append((200, {"token_type": "Bearer"}))
    with pytest.raises(TokenEndpointError, match="access_token"):
        make_auth().tokens()


# -- Passing failures ----------------------------------------------------------------


def test_a_failed_proactive_refresh_keeps_the_working_token(server, make_auth, clock):
    auth = make_auth(retry_interval=60)
    with api_client(server, auth) as api:
        api.get(API_URL)
        clock.now = T0 + ACCESS_LIFETIME - 50  # due, still valid for 50 s
        server.answers.append((503, {"error": "temporarily_unavailable"}))
        assert api_token(api.get(API_URL)) == "at-1"
        clock.now += 30  # within the retry interval: no new attempt
        assert api_token(api.get(API_URL)) == "at-1"
        assert server.calls["refresh_token"] == 1
        clock.now += 30  # the interval has passed
        assert api_token(api.get(API_URL)) == "at-2"
    assert server.calls["refresh_token"] == 2


def test_a_rate_limited_refresh_waits_for_retry_after(server, make_auth, clock):
    auth = make_auth(retry_interval=30)
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME - 100
    server.answers.append((429, {"error": "slow_down"}, {"Retry-After": "60"}))
    assert auth.tokens().access_token == "at-1"
    clock.now += 59
    assert auth.tokens().access_token == "at-1"
    assert server.calls["refresh_token"] == 1
    clock.now += 1
    assert auth.tokens().access_token == "at-2"


def test_a_network_failure_with_a_working_token_is_absorbed(server, clock):
    def flaky(request: httpx.Request) -> httpx.Response:
        if b"refresh_token" in request.content:
            raise httpx.ConnectError("down", request=request)
        return server(request)

    auth = TokenAuth(
        TOKEN_URL,
        "client-1",
        "s",
        store=MemoryTokenStore(),
        clock=clock,
        token_client=httpx.Client(transport=httpx.MockTransport(flaky)),
    )
    auth.tokens()
    clock.now = T0 + ACCESS_LIFETIME - 1
    assert auth.tokens().access_token == "at-1"
    clock.now = T0 + ACCESS_LIFETIME  # expired: now it must surface
    with pytest.raises(httpx.ConnectError):
        auth.tokens()


# -- Client authentication ------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "client_auth", "basic", "body_fields"),
    [
        ("s3cr:t+", "basic", "Basic Y2xpZW50KzE6czNjciUzQXQlMkI=", set()),
        ("s3cr:t+", "body", None, {"client_id", "client_secret"}),
        (None, "basic", None, {"client_id"}),  # a public client
    ],
)
def test_client_authentication(clock, secret, client_auth, basic, body_fields):
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "a", "expires_in": 10})

    auth = TokenAuth(
        TOKEN_URL,
        "client 1",
        secret,
        client_auth=client_auth,
        store=MemoryTokenStore(),
        token_client=httpx.Client(transport=httpx.MockTransport(record)),
    )
    auth.tokens()
    form = parse_qs(seen[0].content.decode())
    assert seen[0].headers.get("authorization") == basic
    assert set(form) - {"grant_type"} == body_fields
    if "client_id" in body_fields:
        assert form["client_id"] == ["client 1"]
