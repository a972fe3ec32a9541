"""Clock skew between servers: ``LEEWAY`` forgives a future ``iat``, never an expiry.

Two servers of one deployment share the database and the cache but not their
clocks. Here "server A" (the issuer) and "server B" (the verifier) are the
test client under two frozen clocks; between them the per-process caches
(verified tokens, loaded keys) are dropped, as another process would not have
them. The signing key exists before either clock starts, as in a deployment
that has been running for a while.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest
from freezegun import freeze_time

from token_lifecycle import keys

T = datetime(2031, 3, 14, 12, 0, 0, tzinfo=timezone.utc)  # real time, on a good clock
LEEWAY = 30  # seconds: the default TOKEN_LIFECYCLE['LEEWAY']


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


@pytest.fixture(autouse=True)
def signing_key_made_long_ago(db):
    with freeze_time(T - timedelta(days=1)):
        keys.signing_key()


def on_another_server() -> None:
    """What another process does not share with this one: verified tokens, loaded keys."""
    keys.access_tokens._verified.clear()
    keys.clear_cache()


@pytest.fixture
def issue(token_request, oauth_client):
    """``issue(clock)``: a client-credentials pair from a server whose clock reads ``clock``."""
    client, secret = oauth_client

    def at(clock: datetime) -> dict:
        on_another_server()
        with freeze_time(clock):
            response = token_request(
                {"grant_type": "client_credentials"}, auth=(client.client_id, secret)
            )
        assert response.status_code == 200, response.content
        return response.json()

    return at


@pytest.fixture
def whoami_at(whoami):
    """``whoami_at(clock, pair, fresh_process=True)``: the bearer path on a server at ``clock``."""

    def at(clock: datetime, pair: dict, *, fresh_process: bool = True):
        if fresh_process:
            on_another_server()
        with freeze_time(clock):
            return whoami(pair["access_token"])

    return at


@pytest.mark.parametrize("ahead", [1, 20, LEEWAY])
def test_an_issuer_ahead_by_up_to_the_leeway_is_accepted_by_a_server_behind(
    issue, whoami_at, ahead
):
    pair = issue(T + seconds(ahead))  # iat is `ahead` seconds in server B's future
    response = whoami_at(T, pair)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("ahead", [LEEWAY + 1, 45, 600])
def test_an_issuer_ahead_by_more_than_the_leeway_is_refused_until_the_clocks_catch_up(
    issue, whoami_at, ahead
):
    pair = issue(T + seconds(ahead))
    refused = whoami_at(T, pair)
    assert refused.status_code == 401
    challenge = refused["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge and "not valid yet" in challenge
    # Still refused one second before server B's clock is within the leeway of iat...
    assert whoami_at(T + seconds(ahead - LEEWAY - 1), pair).status_code == 401
    # ...and accepted from then on, by the same process (a refusal is not remembered).
    caught_up = whoami_at(T + seconds(ahead - LEEWAY), pair, fresh_process=False)
    assert caught_up.status_code == 200, caught_up.content


@pytest.fixture
def one_minute_tokens(oauth_client):
    client, _ = oauth_client
    client.access_token_lifetime = timedelta(minutes=1)
    client.save()


@pytest.mark.usefixtures("one_minute_tokens")
@pytest.mark.parametrize("issuer_offset", [+20, 0, -20])
def test_the_leeway_never_extends_expiry(issue, whoami_at, issuer_offset):
    """Whatever the issuer's clock, a token works until its own ``exp`` and not a second more.

    ``exp`` is the issuer's clock plus the lifetime; every server refuses the
    token at ``exp`` by its own clock, with no leeway, whether it verified the
    token before (per-process cache) or sees it for the first time.
    """
    issued_at = T + seconds(issuer_offset)
    pair = issue(issued_at)
    expires_at = issued_at + timedelta(minutes=1)
    assert pair["expires_in"] == 60
    last_second = expires_at - seconds(1)
    assert whoami_at(last_second, pair).status_code == 200
    # The same process, its verified-token cache warm: refused at exp exactly.
    assert whoami_at(expires_at, pair, fresh_process=False).status_code == 401
    for late in (0, 1, LEEWAY - 1, LEEWAY, LEEWAY + 1):
        response = whoami_at(expires_at + seconds(late), pair)
        assert response.status_code == 401, f"{late} s after exp"
        assert "expired" in response["WWW-Authenticate"]


def test_the_leeway_is_configurable(issue, whoami_at, settings):
    settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "LEEWAY": timedelta(0)}
    pair = issue(T + seconds(1))
    assert whoami_at(T, pair).status_code == 401
    assert whoami_at(T + seconds(1), pair).status_code == 200

    settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "LEEWAY": timedelta(minutes=2)}
    pair = issue(T + seconds(100))
    assert whoami_at(T, pair).status_code == 200


def test_refresh_windows_get_no_leeway(issue, token_request, oauth_client):
    """The grace window is a stored instant judged by each server's clock, with no leeway."""
    client, secret = oauth_client
    client.refresh_grace_period = timedelta(minutes=1)
    client.save()
    auth = (client.client_id, secret)
    pair = issue(T)

    def refresh(clock: datetime):
        on_another_server()
        with freeze_time(clock):
            return token_request(
                {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}, auth=auth
            )

    assert refresh(T + seconds(10)).status_code == 200  # first use: grace ends at T+70 s
    assert refresh(T + seconds(69)).status_code == 200  # a server behind, still inside
    late = refresh(T + seconds(70))  # at the grace end exactly: refused, replay
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"


@pytest.mark.usefixtures("one_minute_tokens")
def test_the_signature_check_alone_applies_the_leeway_to_iat_only(issue):
    """``decode_access_token`` by itself (what any verifier of ours runs before the database)."""
    pair = issue(T + seconds(20))
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    token, issuer = pair["access_token"], claims["iss"]
    expires_at = T + seconds(20) + timedelta(minutes=1)

    def decode(clock: datetime) -> dict:
        on_another_server()
        return keys.decode_access_token(token, issuer=issuer, now=clock)

    assert decode(T)["jti"] == claims["jti"]  # iat 20 s ahead: within the leeway
    assert decode(expires_at - seconds(1))["exp"] == int(expires_at.timestamp())
    for late in (0, 1, LEEWAY, LEEWAY + 1):
        with pytest.raises(keys.InvalidAccessToken, match="expired"):
            decode(expires_at + seconds(late))
