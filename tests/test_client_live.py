"""``TokenAuth`` against the example project served live: the real server's answers.

Each terminal case is produced for real (revocation, expiry, replay after the
grace window, the session's end, an inactive user, a wrong password or
secret) and must come out as its exception class, so the ``reason`` the client
reads cannot drift from the server's unnoticed.
Then the recoveries: a 401 retried after a signing key was withdrawn, an
evicted pair replaced by a new login, a straggler inside the grace window, a
worker waking after it. Time moves with freezegun, for the server and the
client alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from conftest import PASSWORD
from django.contrib.auth import get_user_model
from freezegun import freeze_time

from example_project import client_example
from token_lifecycle import credentials, keys, services
from token_lifecycle.client import (
    ClientAuthenticationFailed,
    InvalidCredentials,
    MemoryTokenStore,
    PasswordGrant,
    RedisTokenStore,
    RefreshTokenExpired,
    RefreshTokenRejected,
    RefreshTokenReused,
    RefreshTokenRevoked,
    SessionEnded,
    TokenAuth,
    TokenSet,
)
from token_lifecycle.models import TokenPair
from token_lifecycle.rules import RevokeReason

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2031, 3, 3, tzinfo=timezone.utc)
DAY = timedelta(days=1)
#: When a fresh pair is due with the default margin: 15 days minus 10%.
DUE = timedelta(days=13, hours=12)
GRACE = timedelta(hours=6)
ROOT = Path(__file__).resolve().parent.parent


class Deployment:
    """The live server, one confidential client, and user alice; makes auth objects."""

    def __init__(self, url: str, client, secret: str) -> None:
        self.url, self.client, self.secret = url, client, secret

    def auth(self, *, store=None, secret: str | None = None, **options) -> TokenAuth:
        return TokenAuth(
            f"{self.url}/auth/token/",
            self.client.client_id,
            secret or self.secret,
            store=store if store is not None else MemoryTokenStore(),
            **options,
        )

    def api(self, auth: TokenAuth) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=auth, timeout=30)

    def whoami(self, auth: TokenAuth) -> dict:
        with self.api(auth) as api:
            response = api.get("/api/whoami/")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def deployment(live_server, oauth_client, user) -> Deployment:
    client, secret = oauth_client
    return Deployment(live_server.url, client, secret)


def pair_of(tokens: TokenSet) -> TokenPair:
    return TokenPair.objects.get(refresh_token_digest=credentials.digest(tokens.refresh_token))


# -- What the server's refusals become ---------------------------------------------


def test_a_revoked_pair(deployment):
    auth = deployment.auth(auto_reauthenticate=False)
    services.revoke_pair(pair_of(auth.tokens()), RevokeReason.ADMIN)
    with deployment.api(auth) as api, pytest.raises(RefreshTokenRevoked) as raised:
        api.get("/api/whoami/")  # 401 invalid_token, then the refresh is refused
    assert raised.value.error == "invalid_grant"
    assert raised.value.description == "The refresh token has been revoked."


def test_an_expired_refresh_token(deployment):
    with freeze_time(T0) as frozen:
        auth = deployment.auth(auto_reauthenticate=False)
        auth.tokens()
        frozen.move_to(T0 + 30 * DAY)  # exactly at refresh_expires_at: expired
        with pytest.raises(RefreshTokenExpired):
            deployment.whoami(auth)


def test_a_replay_after_the_grace_window_revokes_the_family(deployment):
    with freeze_time(T0) as frozen:
        active = deployment.auth()
        first = active.tokens()
        stale_copy = MemoryTokenStore()  # a worker that never saw the refresh
        sleeper = deployment.auth(store=stale_copy, auto_reauthenticate=False)
        stale_copy.save(sleeper.store_key, first)
        frozen.move_to(T0 + DUE)
        refreshed = active.tokens()
        assert not refreshed.same_pair(first)
        frozen.move_to(T0 + DUE + GRACE)
        with pytest.raises(RefreshTokenReused):
            sleeper.tokens()
        assert pair_of(refreshed).revoke_reason == RevokeReason.REUSE_DETECTED


def test_the_end_of_the_session(deployment, settings):
    settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "MAX_SESSION_LIFETIME": 20 * DAY}
    with freeze_time(T0) as frozen:
        auth = deployment.auth(auto_reauthenticate=False)
        auth.tokens()
        frozen.move_to(T0 + 20 * DAY)
        with pytest.raises(SessionEnded):
            auth.tokens()


def test_an_inactive_user(deployment):
    with freeze_time(T0) as frozen:
        grant = PasswordGrant("alice", PASSWORD)
        auth = deployment.auth(grant=grant, auto_reauthenticate=False)
        auth.tokens()
        get_user_model().objects.filter(username="alice").update(is_active=False)
        frozen.move_to(T0 + DUE)
        with pytest.raises(RefreshTokenRejected) as raised:
            auth.tokens()
    assert raised.value.description == "The user account is inactive."


def test_an_unknown_refresh_token(deployment):
    with freeze_time(T0) as frozen:
        auth = deployment.auth(auto_reauthenticate=False)
        tokens = auth.tokens()
        auth.store.save(auth.store_key, dataclasses.replace(tokens, refresh_token="rt_nope"))
        frozen.move_to(T0 + DUE)
        with pytest.raises(RefreshTokenRejected) as raised:
            auth.tokens()
    assert type(raised.value) is RefreshTokenRejected
    assert raised.value.description == "The refresh token is invalid."


def test_a_wrong_password(deployment):
    auth = deployment.auth(grant=PasswordGrant("alice", "not the password"))
    with pytest.raises(InvalidCredentials):
        auth.tokens()


def test_a_wrong_client_secret(deployment):
    with pytest.raises(ClientAuthenticationFailed):
        deployment.auth(secret="cs_wrong").tokens()


# -- Recoveries ---------------------------------------------------------------------


def test_a_withdrawn_signing_key_costs_one_401_and_a_refresh(deployment):
    """``rotate_signing_key --compromised``: access tokens refused, refresh tokens still fine."""
    auth = deployment.auth()
    before = deployment.whoami(auth)
    keys.rotate(compromised=True)
    seen = []
    with deployment.api(auth) as api:
        api.event_hooks["response"] = [lambda response: seen.append(response.status_code)]
        after = api.get("/api/whoami/").json()
    assert seen == [401, 200]
    assert str(TokenPair.objects.get(pk=after["pair_id"]).parent_id) == before["pair_id"]


def test_an_evicted_pair_is_replaced_by_a_new_login(deployment, token_request):
    auth = deployment.auth()
    evicted = deployment.whoami(auth)["pair_id"]
    credentials = (deployment.client.client_id, deployment.secret)
    for _ in range(10):  # the same principal (the owner, by client credentials)
        token_request({"grant_type": "client_credentials"}, auth=credentials)
    assert TokenPair.objects.get(pk=evicted).revoke_reason == RevokeReason.EVICTED
    replacement = deployment.whoami(auth)["pair_id"]
    assert TokenPair.objects.get(pk=replacement).parent_id is None  # a new login


def test_a_straggler_inside_the_grace_window_gets_a_pair_and_the_store_keeps_one(deployment):
    """A worker that could not get the lock refreshes with the old token inside the grace
    window: the server issues a pair (the grace window is for exactly this); the worker
    then finds the store moved on, revokes its duplicate and uses the stored pair."""
    store = StaleViewStore()
    with freeze_time(T0) as frozen:
        first, straggler = deployment.auth(store=store), deployment.auth(store=store)
        original = first.tokens()
        assert straggler.tokens().same_pair(original)
        frozen.move_to(T0 + DUE)
        current = first.tokens()
        frozen.move_to(T0 + DUE + GRACE - timedelta(seconds=1))
        store.stale_reads.append(original)  # the straggler's read predates the refresh
        assert deployment.whoami(straggler)["pair_id"] == str(pair_of(current).pk)

    duplicate = TokenPair.objects.exclude(pk=pair_of(current).pk).get(parent=pair_of(original))
    assert duplicate.revoke_reason == RevokeReason.REVOCATION_ENDPOINT
    assert store.load(first.store_key) == current
    assert not TokenPair.objects.filter(revoke_reason=RevokeReason.REUSE_DETECTED).exists()


class StaleViewStore(MemoryTokenStore):
    """A store whose lock is never obtained, and whose next reads can be scripted stale."""

    def __init__(self) -> None:
        super().__init__()
        self.stale_reads: list[TokenSet] = []

    def lock(self, key: str, timeout: float):
        return contextlib.nullcontext(False)

    def load(self, key: str) -> TokenSet | None:
        return self.stale_reads.pop(0) if self.stale_reads else super().load(key)


def test_a_worker_waking_after_the_grace_window_adopts_the_stored_pair(deployment):
    """Its own refresh token is a replay by now: it must not send it."""
    store = MemoryTokenStore()
    with freeze_time(T0) as frozen:
        busy, sleeper = deployment.auth(store=store), deployment.auth(store=store)
        sleeper.tokens()
        frozen.move_to(T0 + DUE)
        current = busy.tokens()
        frozen.move_to(T0 + DUE + GRACE + DAY)
        assert deployment.whoami(sleeper)["pair_id"] == str(pair_of(current).pk)
    assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()
    assert TokenPair.objects.count() == 2


def test_asyncio_tasks_share_one_login(deployment):
    auth = deployment.auth()

    async def main() -> set[str]:
        async with httpx.AsyncClient(base_url=deployment.url, auth=auth, timeout=30) as api:
            responses = await asyncio.gather(*(api.get("/api/whoami/") for _ in range(10)))
        return {response.json()["pair_id"] for response in responses}

    assert len(asyncio.run(main())) == 1
    assert TokenPair.objects.count() == 1


@pytest.mark.redis
def test_workers_sharing_redis_make_one_refresh(deployment):
    import redis
    from test_client_stores import CLIENT_REDIS_URL, _delete_prefixed, _prefix

    prefix = _prefix()
    try:
        with freeze_time(T0) as frozen:
            stores = [
                RedisTokenStore(redis.Redis.from_url(CLIENT_REDIS_URL), prefix=prefix)
                for _ in range(5)
            ]
            workers = [deployment.auth(store=store) for store in stores]
            assert len({deployment.whoami(worker)["pair_id"] for worker in workers}) == 1
            frozen.move_to(T0 + DUE)
            assert len({deployment.whoami(worker)["pair_id"] for worker in workers}) == 1
        assert TokenPair.objects.count() == 2  # one login, one refresh
    finally:
        _delete_prefixed(prefix)


# -- A client service runs no Django ---------------------------------------------------


def test_importing_the_client_imports_no_django():
    code = (
        "import sys, token_lifecycle.client, example_project.client_example; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'rest_framework') or m == 'token_lifecycle.models'); "
        "print(loaded)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_example_script_against_the_live_server(deployment, capsys, tmp_path):
    store = str(tmp_path / "tokens")
    argv = [deployment.client.client_id, deployment.secret, "--base-url", deployment.url]
    assert client_example.main([*argv, "--store", store]) == 0
    output = capsys.readouterr().out
    assert "same pair both times: True" in output
    assert "a new pair: True" in output
    pairs_after_first_run = TokenPair.objects.count()
    assert client_example.main([*argv, "--store", store]) == 0  # reuses the stored pair
    # The second run logged out and in once: one new pair, no login at its start.
    assert TokenPair.objects.count() == pairs_after_first_run + 1


def test_the_example_script_with_the_password_grant(deployment, capsys):
    argv = [deployment.client.client_id, deployment.secret, "--base-url", deployment.url]
    assert client_example.main([*argv, "--username", "alice", "--password", PASSWORD]) == 0
    assert "'username': 'alice'" in capsys.readouterr().out
