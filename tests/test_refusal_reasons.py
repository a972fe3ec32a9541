"""The ``reason`` of a refused refresh: a contract between the server and the client library.

Each :class:`~token_lifecycle.reasons.RefreshRefusal` is produced for real
through the token endpoint, and the very response the server wrote is replayed
to the client library, which must raise the exception class a caller acts on.
The client reads ``reason`` only: ``error_description`` is prose and may change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from django.contrib.auth import get_user_model
from freezegun import freeze_time

from token_lifecycle.client import (
    RefreshTokenExpired,
    RefreshTokenRejected,
    RefreshTokenReused,
    RefreshTokenRevoked,
    SessionEnded,
    TokenEndpointError,
)
from token_lifecycle.client.endpoint import TokenEndpoint
from token_lifecycle.client.errors import REFRESH_REFUSALS, error_for_response
from token_lifecycle.reasons import RefreshRefusal

T0 = datetime(2031, 3, 3, tzinfo=timezone.utc)
DAY = timedelta(days=1)
#: The example project's lifetimes (example_project/settings.py).
REFRESH_LIFETIME = 30 * DAY
GRACE = timedelta(hours=6)

#: The class a caller gets for each reason.
EXPECTED: dict[RefreshRefusal, type[RefreshTokenRejected]] = {
    RefreshRefusal.INVALID: RefreshTokenRejected,
    RefreshRefusal.REVOKED: RefreshTokenRevoked,
    RefreshRefusal.EXPIRED: RefreshTokenExpired,
    RefreshRefusal.SESSION_ENDED: SessionEnded,
    RefreshRefusal.REUSE_DETECTED: RefreshTokenReused,
    RefreshRefusal.USER_INACTIVE: RefreshTokenRejected,
}


class Server:
    """The real token endpoint, one confidential client and user alice, on a frozen clock."""

    def __init__(self, login, oauth_post, oauth_client, make_client, settings, frozen) -> None:
        self.login = login
        self.oauth_post = oauth_post
        self.credentials = (oauth_client[0].client_id, oauth_client[1])
        self.make_client = make_client
        self.settings = settings
        self.frozen = frozen

    def refresh(self, refresh_token: str, *, credentials=None):
        params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self.oauth_post("/auth/token/", params, auth=credentials or self.credentials)

    def later(self, delta: timedelta) -> None:
        self.frozen.move_to(T0 + delta)


@pytest.fixture
def server(login, oauth_post, oauth_client, make_client, settings):
    with freeze_time(T0) as frozen:
        yield Server(login, oauth_post, oauth_client, make_client, settings, frozen)


# -- How each refusal is provoked ------------------------------------------------------


def unknown_token(server: Server):
    server.login()
    return server.refresh("rt_no-such-token")


def another_clients_token(server: Server):
    tokens = server.login()
    other, secret = server.make_client("other")
    return server.refresh(tokens["refresh_token"], credentials=(other.client_id, secret))


def access_token_as_refresh_token(server: Server):
    return server.refresh(server.login()["access_token"])


def revoked_pair(server: Server):
    tokens = server.login()
    revoked = server.oauth_post(
        "/auth/token/revoke/", {"token": tokens["refresh_token"]}, auth=server.credentials
    )
    assert revoked.status_code == 200
    return server.refresh(tokens["refresh_token"])


def expired_token(server: Server):
    tokens = server.login()
    server.later(REFRESH_LIFETIME)  # exactly at refresh_expires_at: expired
    return server.refresh(tokens["refresh_token"])


def session_ended(server: Server):
    lifecycle = server.settings.TOKEN_LIFECYCLE
    server.settings.TOKEN_LIFECYCLE = {**lifecycle, "MAX_SESSION_LIFETIME": 20 * DAY}
    tokens = server.login()
    server.later(20 * DAY)
    return server.refresh(tokens["refresh_token"])


def replay_after_the_grace_window(server: Server):
    tokens = server.login()
    assert server.refresh(tokens["refresh_token"]).status_code == 200
    server.later(GRACE)
    return server.refresh(tokens["refresh_token"])


def user_deactivated(server: Server):
    tokens = server.login()
    get_user_model().objects.filter(username="alice").update(is_active=False)
    return server.refresh(tokens["refresh_token"])


REFUSALS = pytest.mark.parametrize(
    ("provoke", "reason"),
    [
        pytest.param(unknown_token, RefreshRefusal.INVALID, id="unknown-token"),
        pytest.param(another_clients_token, RefreshRefusal.INVALID, id="another-clients-token"),
        pytest.param(access_token_as_refresh_token, RefreshRefusal.INVALID, id="access-token"),
        pytest.param(revoked_pair, RefreshRefusal.REVOKED, id="revoked"),
        pytest.param(expired_token, RefreshRefusal.EXPIRED, id="expired"),
        pytest.param(session_ended, RefreshRefusal.SESSION_ENDED, id="session-ended"),
        pytest.param(
            replay_after_the_grace_window, RefreshRefusal.REUSE_DETECTED, id="reuse-detected"
        ),
        pytest.param(user_deactivated, RefreshRefusal.USER_INACTIVE, id="user-inactive"),
    ],
)


def as_seen_by_the_client(response) -> TokenEndpointError:
    """What the client library raises for ``response``, replayed to it byte for byte."""

    def replay(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": response["Content-Type"]}
        return httpx.Response(response.status_code, headers=headers, content=response.content)

    http = httpx.Client(transport=httpx.MockTransport(replay))
    endpoint = TokenEndpoint("https://auth.test/auth/token/", "client", "secret", http_client=http)
    params = {"grant_type": "refresh_token", "refresh_token": "rt_x"}
    with http, pytest.raises(TokenEndpointError) as raised:
        endpoint.request_tokens(params, requested_at=0.0)
    return raised.value


# -- The contract ------------------------------------------------------------------------


@REFUSALS
def test_the_server_says_why(server, provoke: Callable, reason: RefreshRefusal):
    response = provoke(server)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert body["reason"] == reason.value
    assert body["error_description"]


@REFUSALS
def test_the_client_raises_the_class_of_that_reason(
    server, provoke: Callable, reason: RefreshRefusal
):
    refusal = as_seen_by_the_client(provoke(server))

    assert type(refusal) is EXPECTED[reason]
    assert refusal.error == "invalid_grant"
    assert refusal.status_code == 400


def test_every_reason_is_provoked_and_expected():
    provoked = {param.values[1] for param in REFUSALS.args[1]}
    assert provoked == set(RefreshRefusal) == set(EXPECTED)


def test_every_reason_has_a_class_in_the_client():
    assert set(REFRESH_REFUSALS) == set(RefreshRefusal)
    assert {member: REFRESH_REFUSALS[member] for member in RefreshRefusal} == EXPECTED


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param(None, id="none"),
        pytest.param("banished", id="unknown"),
        pytest.param("", id="empty"),
        pytest.param(7, id="number"),
        pytest.param(["revoked"], id="list"),
        pytest.param({"reason": "revoked"}, id="object"),
    ],
)
def test_no_reason_or_an_unknown_one_is_a_plain_rejection(reason):
    """Never a crash, and the description is not parsed, however it reads."""
    refusal = error_for_response(
        400,
        "invalid_grant",
        "The refresh token has been revoked.",
        grant_type="refresh_token",
        reason=reason,
    )
    assert type(refusal) is RefreshTokenRejected
