"""A key withdrawn by ``rotate_signing_key --compromised`` never signs nor verifies again.

docs/tokens.md "Compromised keys": once the command has returned, no process
sharing the validation cache signs with the withdrawn key or accepts its
tokens; a process whose cache is its own stops within ``KEY_CACHE_SECONDS``.

"Another process" is simulated in this one: keys.rotate() drops the loaded
keys of the process it runs in (``store._loaded``), so the command runs with a
fresh ``_LoadedKeys`` standing for the other process, and this process's own,
loaded before, is put back afterwards, as a running worker keeps it. Its
commit happens (on-commit callbacks run) as in a real command. The shared
cache is a file-based cache, which separate processes do share.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from io import StringIO

import jwt
import pytest
from conftest import bearer_authenticate
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time
from jwt.algorithms import get_default_algorithms

from token_lifecycle import keys
from token_lifecycle.keys import store
from token_lifecycle.models import SigningKey

JWKS_URL = "/auth/.well-known/jwks.json"
INTROSPECT_URL = "/auth/token/introspect/"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
T1 = T0 + timedelta(hours=1)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
CACHE = timedelta(seconds=keys.KEY_CACHE_SECONDS)


# -- Helpers ------------------------------------------------------------------------


@pytest.fixture
def clock() -> Iterator:
    with freeze_time(T0) as frozen:
        yield frozen


@pytest.fixture
def shared_cache(settings, tmp_path) -> None:
    """A validation cache that other processes share (a file-based one)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }


@pytest.fixture
def local_cache(settings) -> None:
    """A validation cache of this process's own."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def rotate_elsewhere(django_capture_on_commit_callbacks) -> Callable[..., SigningKey]:
    """Run ``rotate_signing_key`` as another process would; returns the key it added."""

    def rotate(*options: str) -> SigningKey:
        before = set(SigningKey.objects.values_list("kid", flat=True))
        this_process = store._loaded
        store._loaded = store._LoadedKeys()
        try:
            with django_capture_on_commit_callbacks(execute=True):
                call_command("rotate_signing_key", *options, stdout=StringIO())
        finally:
            store._loaded = this_process
        return SigningKey.objects.exclude(kid__in=before).get()

    return rotate


@pytest.fixture
def issue(make_client, login) -> Callable[..., str]:
    """Log alice in through a client with a high cap; returns the access token."""
    default = make_client("prober", max_pairs_per_client=1000)

    def do(creds=None) -> str:
        client_obj, secret = creds or default
        return login(client_creds=(client_obj.client_id, secret))["access_token"]

    return do


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def published_kids(client) -> list[str]:
    return [jwk["kid"] for jwk in client.get(JWKS_URL).json()["keys"]]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_by(token: str, kid: str) -> str:
    """``token`` re-signed with the private half of stored key ``kid``, as its thief would."""
    key = store.load(SigningKey.objects.get(kid=kid), with_private=True)
    header = {**jwt.get_unverified_header(token), "kid": key.kid, "alg": key.algorithm}
    signing_input = f"{b64url(json.dumps(header).encode())}.{token.split('.')[1]}"
    signature = get_default_algorithms()[key.algorithm].sign(
        signing_input.encode(), key.private_key
    )
    return f"{signing_input}.{b64url(signature)}"


# -- With a shared cache: at once everywhere -----------------------------------------


def test_a_worker_stops_signing_with_the_key_once_the_command_returns(
    clock, shared_cache, issue, rotate_elsewhere
):
    """The worker loaded the key a moment ago; its 60 s key cache must not matter."""
    old_kid = kid_of(issue())
    clock.tick(10)

    new = rotate_elsewhere("--compromised")

    clock.tick(10)
    assert kid_of(issue()) == new.kid
    assert old_kid != new.kid


@pytest.mark.parametrize(
    "token_kind",
    ["presented-before", "issued-not-presented", "forged-after"],
)
def test_a_worker_refuses_the_keys_tokens_at_once(
    clock, shared_cache, issue, whoami, rotate_elsewhere, token_kind
):
    """Remembered by the worker, merely issued by it, or forged with the stolen key later."""
    presented = issue()
    assert whoami(presented).status_code == 200  # the key and the token are remembered
    not_presented = issue()
    old_kid = kid_of(presented)
    clock.tick(10)

    new = rotate_elsewhere("--compromised")

    clock.tick(10)
    if token_kind == "presented-before":
        token = presented
    elif token_kind == "issued-not-presented":
        token = not_presented
    else:
        token = signed_by(issue(), old_kid)  # a live pair's claims, the stolen key
    assert kid_of(token) == old_kid != new.kid
    response = whoami(token)
    assert response.status_code == 401, response.content
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_worker_introspects_the_keys_tokens_as_inactive(
    clock, shared_cache, oauth_client, login, oauth_post, rotate_elsewhere
):
    """A resource server asking the worker must not be told a withdrawn key's token is active."""
    client_obj, secret = oauth_client
    token = login()["access_token"]

    def introspect() -> dict:
        response = oauth_post(
            INTROSPECT_URL, {"token": token}, auth=(client_obj.client_id, secret)
        )
        assert response.status_code == 200, response.content
        return response.json()

    assert introspect()["active"] is True  # the worker loaded the key
    clock.tick(10)

    rotate_elsewhere("--compromised")

    assert introspect() == {"active": False}


def test_lifetime_raised_then_compromised_the_old_key_never_comes_back(
    clock, shared_cache, client, make_client, issue, whoami, rotate_elsewhere
):
    """The issue's reproduction.

    A normal rotation: the old key keeps signing for JWKS_MAX_AGE. A worker
    loads it; a client's access lifetime is raised to 30 days, beyond the old
    key's verify_until; --compromised runs in another process; within the
    worker's key cache both clients get tokens. Formerly the worker signed
    with the old key and pushed its verify_until out, putting it back in the
    JWKS. Now its verify_until never moves, the JWKS never lists it again, and
    nothing it signs is accepted.
    """
    long_lived = make_client("long-lived", max_pairs_per_client=1000)
    old_kid = kid_of(issue())
    clock.move_to(T1)
    pending = rotate_elsewhere()  # old key signs until T1 + JWKS_MAX_AGE
    long_lived[0].access_token_lifetime = 30 * DAY
    long_lived[0].save()
    clock.move_to(T1 + MINUTE)
    assert kid_of(issue()) == old_kid  # the worker loads the old key
    clock.move_to(T1 + MINUTE + 10 * SECOND)

    new = rotate_elsewhere("--compromised")

    withdrawn_at = T1 + MINUTE + 10 * SECOND
    clock.move_to(T1 + MINUTE + 30 * SECOND)  # within the worker's key cache
    tokens = [issue(long_lived), issue()]
    assert [kid_of(token) for token in tokens] == [new.kid, new.kid]
    forged = signed_by(tokens[1], old_kid)
    for moment in [
        T1 + MINUTE + 30 * SECOND,
        T1 + MINUTE + CACHE,
        pending.signs_from,
        T1 + 15 * DAY,
        T1 + 30 * DAY,
    ]:
        clock.move_to(moment)
        assert SigningKey.objects.get(kid=old_kid).verify_until == withdrawn_at
        assert SigningKey.objects.get(kid=pending.kid).verify_until == withdrawn_at
        assert published_kids(client) == [new.kid], moment
        assert whoami(forged).status_code == 401, moment


def test_a_lost_key_state_entry_reloads_keys_and_refuses_nothing(
    clock, shared_cache, issue, whoami
):
    """The entry never expires, but a cache may evict it: a reload, not a refusal."""
    token = issue()
    assert whoami(token).status_code == 200
    caches["default"].clear()

    assert whoami(token).status_code == 200
    assert kid_of(issue()) == kid_of(token)


def test_a_warm_bearer_request_on_a_shared_cache_costs_no_query(clock, shared_cache, issue):
    """Reading the key state with the pair's entries does not reload keys while it is unchanged."""
    token = issue()
    bearer_authenticate(token)

    with CaptureQueriesContext(connection) as queries:
        user, auth = bearer_authenticate(token)

    assert queries.captured_queries == []
    assert (user.username, auth.claims["jti"]) == (
        "alice",
        jwt.decode(token, options={"verify_signature": False})["jti"],
    )


def test_a_key_read_before_the_keys_are_dropped_is_not_kept(clock, shared_cache, issue):
    """A drop during a load (another thread saw a new version): the old read is not cached."""
    kid = kid_of(issue())
    store.clear_cache()
    load = store.load

    def load_then_drop(row, **options):
        key = load(row, **options)
        store.observe_key_state("a version published meanwhile")
        return key

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "load", load_then_drop)
        assert store.verification_key(kid).kid == kid

    with CaptureQueriesContext(connection) as queries:
        assert store.verification_key(kid).kid == kid
    assert len(queries.captured_queries) == 1  # read again, not kept from before the drop


# -- With a cache of each process's own: the documented bound ------------------------------


def test_with_a_local_cache_other_workers_stop_within_the_key_cache_time(
    clock, local_cache, issue, whoami, rotate_elsewhere
):
    """docs/tokens.md: other processes cannot see a local cache; KEY_CACHE_SECONDS bounds them."""
    loaded_at = T0
    presented = issue()
    assert whoami(presented).status_code == 200
    clock.tick(10)

    new = rotate_elsewhere("--compromised")

    clock.move_to(loaded_at + CACHE)
    assert kid_of(issue()) == new.kid
    assert whoami(presented).status_code == 401


def test_the_bearer_path_on_local_memory_reads_its_three_entries_only(
    clock, local_cache, issue, monkeypatch
):
    """The key state costs the local-memory hot path nothing: one get_many of three keys."""
    token = issue()
    bearer_authenticate(token)
    reads = []
    cache = caches["default"]
    get_many = cache.get_many
    monkeypatch.setattr(cache, "get_many", lambda keys: reads.append(list(keys)) or get_many(keys))
    monkeypatch.setattr(cache, "get", lambda *args: pytest.fail(f"cache.get{args}"))

    bearer_authenticate(token)

    assert len(reads) == 1
    assert [key.rsplit(":", 2)[-2] for key in reads[0]] == ["pair", "user", "client"]
