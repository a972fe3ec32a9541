"""Signing-key rotation: ``manage.py rotate_signing_key`` and ``keys.rotate()``.

The policy under test (README "Key rotation", ``keys.rotate``): a new key is
published at once and signs ``JWKS_MAX_AGE`` later; the retired key verifies
until ``verify_until`` = the new key's ``signs_from`` + ``KEY_CACHE_SECONDS`` +
the longest access lifetime in force + ``LEEWAY``, then leaves the JWKS;
``--immediately`` skips the delay; ``--compromised`` stops older keys at once.

The clock is frozen with freezegun, which also drives ``time.monotonic`` and so
the per-process key cache. Where a test needs "a process that starts now" it
clears that cache; elsewhere the cache is left alone, as in a long-running
process. The last test rotates under real concurrent HTTP traffic on PostgreSQL.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from io import StringIO
from itertools import cycle
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
from conftest import FORM, PASSWORD, basic_auth
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.db import connection
from freezegun import freeze_time
from jwt.algorithms import get_default_algorithms

from token_lifecycle import keys
from token_lifecycle.cache import shared_cache
from token_lifecycle.models import SigningKey

JWKS_URL = "/auth/.well-known/jwks.json"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
#: When the tests rotate: an hour after the first key started signing.
T1 = T0 + timedelta(hours=1)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
#: The defaults of the example project (docs/lifecycle.md, README settings table).
JWKS_MAX_AGE = timedelta(minutes=15)
ACCESS_LIFETIME = timedelta(days=15)
LEEWAY = timedelta(seconds=30)
CACHE = timedelta(seconds=keys.KEY_CACHE_SECONDS)
ALGORITHMS = ["RS256", "ES256", "EdDSA"]
KEY_TYPES = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}


# -- Helpers ------------------------------------------------------------------------


@pytest.fixture
def clock():
    with freeze_time(T0) as frozen:
        yield frozen


def rotate(*options: str) -> tuple[SigningKey, str]:
    """Run the command; returns the key it added and what it printed."""
    before = set(SigningKey.objects.values_list("kid", flat=True))
    out = StringIO()
    call_command("rotate_signing_key", *options, stdout=out)
    return SigningKey.objects.exclude(kid__in=before).get(), out.getvalue()


def row(kid: str) -> SigningKey:
    return SigningKey.objects.get(kid=kid)


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def expiry_of(token: str) -> datetime:
    return datetime.fromtimestamp(claims_of(token)["exp"], tz=timezone.utc)


def published_kids(client) -> list[str]:
    return [jwk["kid"] for jwk in client.get(JWKS_URL).json()["keys"]]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def re_sign(token: str, key: keys.LoadedKey) -> str:
    """The same header and claims, signed by ``key`` and naming its kid."""
    header = {**jwt.get_unverified_header(token), "kid": key.kid, "alg": key.algorithm}
    signing_input = f"{b64url(json.dumps(header).encode())}.{token.split('.')[1]}"
    signature = get_default_algorithms()[key.algorithm].sign(
        signing_input.encode(), key.private_key
    )
    return f"{signing_input}.{b64url(signature)}"


def private_half(kid: str) -> keys.LoadedKey:
    """A stored key with its private half, as a thief of that key would hold it."""
    return keys.store.load(row(kid), with_private=True)


def stamp(moment: datetime) -> str:
    """How the command prints an instant."""
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


@pytest.fixture
def issue(make_client, login) -> Callable[..., str]:
    """Log alice in; returns the access token.

    Through a client whose cap is high enough that no probe evicts an earlier
    one, so every token issued in a test stays valid unless its key is refused.
    """
    default = make_client("prober", max_pairs_per_client=1000)

    def do(creds=None) -> str:
        client_obj, secret = creds or default
        return login(client_creds=(client_obj.client_id, secret))["access_token"]

    return do


def assert_authenticates(whoami, *tokens: str) -> None:
    for token in tokens:
        response = whoami(token)
        assert response.status_code == 200, (kid_of(token), response.content)


def assert_refused(whoami, token: str) -> None:
    response = whoami(token)
    assert response.status_code == 401, response.content
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


# -- Scheduled rotation (the default) -------------------------------------------------------


def test_new_key_is_published_at_once_and_signs_after_jwks_max_age(clock, client, issue, whoami):
    """Verifiers caching the JWKS for JWKS_MAX_AGE know the new kid before any token has it."""
    first = issue()
    old_kid = kid_of(first)
    clock.move_to(T1)

    new, _ = rotate()

    assert new.signs_from == T1 + JWKS_MAX_AGE
    assert set(published_kids(client)) == {old_kid, new.kid}
    assert kid_of(issue()) == old_kid
    clock.move_to(new.signs_from - SECOND)
    last_by_old = issue()
    assert kid_of(last_by_old) == old_kid
    clock.move_to(new.signs_from)
    keys.clear_cache()  # a process starting now
    first_by_new = issue()
    assert kid_of(first_by_new) == new.kid
    assert_authenticates(whoami, first, last_by_old, first_by_new)


def test_a_running_process_switches_within_its_key_cache_time(clock, issue):
    """Without a restart the new key signs at the latest KEY_CACHE_SECONDS after its start."""
    old_kid = kid_of(issue())
    clock.move_to(T1)
    new, _ = rotate()
    clock.move_to(new.signs_from - SECOND)
    assert kid_of(issue()) == old_kid  # loads the old key into the cache

    clock.move_to(new.signs_from + CACHE)

    assert kid_of(issue()) == new.kid


@pytest.mark.parametrize(
    "max_age",
    [timedelta(hours=1), timedelta(0)],
    ids=["one-hour", "zero"],
)
def test_publication_delay_is_the_jwks_max_age_setting(clock, settings, issue, max_age):
    settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "JWKS_MAX_AGE": max_age}
    issue()
    clock.move_to(T1)

    new, _ = rotate()

    assert new.signs_from == T1 + max_age
    assert row(new.kid).signs_from == SigningKey.objects.exclude(pk=new.pk).get().retired_at


def test_tokens_signed_before_the_switch_keep_authenticating_until_they_expire(
    clock, client, issue, whoami
):
    before_rotation = issue()
    old_kid = kid_of(before_rotation)
    clock.move_to(T1)
    new, _ = rotate()
    clock.move_to(new.signs_from - SECOND)
    last_by_old = issue()
    assert kid_of(last_by_old) == old_kid

    clock.move_to(expiry_of(before_rotation) - SECOND)
    assert set(published_kids(client)) == {old_kid, new.kid}
    assert_authenticates(whoami, before_rotation, last_by_old)
    clock.move_to(expiry_of(before_rotation))
    assert_refused(whoami, before_rotation)  # its own expiry, not its key
    clock.move_to(expiry_of(last_by_old) - SECOND)
    assert old_kid in published_kids(client)
    assert_authenticates(whoami, last_by_old)


@pytest.mark.parametrize(
    ("override", "leeway", "longest"),
    [
        pytest.param(None, LEEWAY, ACCESS_LIFETIME, id="setting"),
        pytest.param(20 * DAY, LEEWAY, 20 * DAY, id="longer-client-override"),
        pytest.param(5 * DAY, LEEWAY, ACCESS_LIFETIME, id="shorter-client-override"),
        pytest.param(None, 2 * MINUTE, ACCESS_LIFETIME, id="leeway-setting"),
    ],
)
def test_verify_until_covers_every_token_the_old_key_may_sign(
    clock, settings, make_client, override, leeway, longest
):
    """The old key's last signing instant + cache lag + longest lifetime + leeway."""
    settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "LEEWAY": leeway}
    make_client("override", access_token_lifetime=override)
    make_client("no-override")
    old_kid = keys.signing_key().kid
    clock.move_to(T1)

    new, _ = rotate()

    old = row(old_kid)
    assert old.retired_at == new.signs_from
    assert old.verify_until == new.signs_from + CACHE + longest + leeway
    assert (new.retired_at, new.verify_until) == (None, None)


def test_longest_lived_token_of_the_old_key_verifies_to_its_expiry(
    clock, client, make_client, issue, whoami
):
    """The worst case: a 20-day client token signed by the old key from a stale cache.

    A process that loaded the old key just before the switch keeps signing
    with it for up to KEY_CACHE_SECONDS; that token must verify to its expiry.
    """
    long_lived = make_client("long-lived", access_token_lifetime=20 * DAY)
    old_kid = keys.signing_key().kid
    clock.move_to(T1)
    new, _ = rotate()
    clock.move_to(new.signs_from - SECOND)
    issue(long_lived)  # loads the old key into this process's cache
    clock.move_to(new.signs_from + CACHE - 2 * SECOND)  # the cache entry's last instant
    latest_by_old = issue(long_lived)
    assert kid_of(latest_by_old) == old_kid

    clock.move_to(expiry_of(latest_by_old) - SECOND)

    assert old_kid in published_kids(client)
    assert_authenticates(whoami, latest_by_old)


def test_old_key_leaves_the_jwks_and_is_refused_after_verify_until(clock, client, issue, whoami):
    """A token correctly signed by the old key, about a live pair, shows the key's own limit."""
    old_key = keys.signing_key()
    clock.move_to(T1)
    new, _ = rotate()
    verify_until = row(old_key.kid).verify_until
    clock.move_to(verify_until - SECOND)
    fresh = issue()
    by_old_key = re_sign(fresh, old_key)
    assert published_kids(client) == [new.kid, old_key.kid]
    assert_authenticates(whoami, fresh, by_old_key)

    clock.move_to(verify_until)

    assert published_kids(client) == [new.kid]
    assert_refused(whoami, by_old_key)
    assert_authenticates(whoami, fresh)


def test_scheduled_rotation_output(clock, issue):
    """What the operator reads: when the new key signs, until when the old one verifies."""
    old_kid = kid_of(issue())
    clock.move_to(datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc))

    new, out = rotate()

    assert out.splitlines() == [
        f"New key {new.kid} (RS256), published now.",
        "It signs at 2026-03-01 10:15:00 UTC.",
        f"Key {old_kid} (RS256) signs until 2026-03-01 10:15:00 UTC "
        "and verifies until 2026-03-16 10:16:30 UTC.",
    ]


@pytest.mark.parametrize("where", ["client-override", "setting"])
def test_lifetime_raised_while_the_old_key_still_signs(
    clock, settings, make_client, issue, whoami, where
):
    """No token outlives its key, and no key's verify_until is ever extended.

    The retiring key would stop verifying before a token with the raised
    lifetime expires: its successor, published already, signs that token.
    """
    partner = make_client("partner", max_pairs_per_client=1000)
    old_kid = keys.signing_key().kid
    clock.move_to(T1)
    new, _ = rotate()
    old_verify_until = SigningKey.objects.get(kid=old_kid).verify_until
    clock.move_to(T1 + MINUTE)
    if where == "client-override":
        partner[0].access_token_lifetime = 20 * DAY
        partner[0].save()
    else:
        settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "ACCESS_TOKEN_LIFETIME": 20 * DAY}
    keys.clear_cache()
    token = issue(partner)
    assert kid_of(token) == new.kid
    assert new.signs_from > T1 + MINUTE
    assert SigningKey.objects.get(kid=old_kid).verify_until == old_verify_until
    if where == "client-override":
        assert kid_of(issue()) == old_kid  # other clients' lifetimes still fit the old key

    clock.move_to(expiry_of(token) - SECOND)

    assert_authenticates(whoami, token)


# -- --immediately and --algorithm ------------------------------------------------------------


def test_immediately_signs_with_the_new_key_at_once(clock, client, issue, whoami):
    """Even in the process whose cache holds the old key (rotate() clears it)."""
    clock.move_to(T1)
    before = issue()
    old_kid = kid_of(before)

    new, out = rotate("--immediately")

    after = issue()
    assert new.signs_from == T1
    assert kid_of(after) == new.kid
    old = row(old_kid)
    assert old.retired_at == T1
    assert old.verify_until == T1 + CACHE + ACCESS_LIFETIME + LEEWAY
    assert set(published_kids(client)) == {old_kid, new.kid}
    assert_authenticates(whoami, before, after)
    assert out.splitlines()[1] == "It signs now."


@pytest.mark.parametrize("immediately", [True, False], ids=["immediately", "scheduled"])
@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_algorithm_option(clock, client, issue, whoami, algorithm, immediately):
    """Switching algorithm: tokens of both algorithms verify side by side."""
    before = issue()
    clock.move_to(T1)

    new, out = rotate("--algorithm", algorithm, *(["--immediately"] if immediately else []))

    assert new.algorithm == algorithm
    assert out.splitlines()[0] == f"New key {new.kid} ({algorithm}), published now."
    clock.move_to(new.signs_from)
    after = issue()
    assert jwt.get_unverified_header(after) == {"alg": algorithm, "typ": "at+jwt", "kid": new.kid}
    [jwk] = [jwk for jwk in client.get(JWKS_URL).json()["keys"] if jwk["kid"] == new.kid]
    assert (jwk["alg"], jwk["kty"]) == (algorithm, KEY_TYPES[algorithm])
    assert_authenticates(whoami, before, after)


def test_unknown_algorithm_is_refused(db):
    keys.signing_key()

    with pytest.raises(CommandError, match="HS256"):
        call_command("rotate_signing_key", "--algorithm", "HS256")

    assert SigningKey.objects.count() == 1


# -- --compromised --------------------------------------------------------------------------


@pytest.fixture
def refresh(token_request, oauth_client) -> Callable[[str], dict]:
    def do(refresh_token: str) -> dict:
        client_obj, secret = oauth_client
        response = token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client_obj.client_id, secret),
        )
        assert response.status_code == 200, response.content
        return response.json()

    return do


def test_compromised_stops_older_keys_and_clients_recover_by_refreshing(
    clock, client, login, whoami, refresh
):
    """Access tokens of the leaked key die at once; refresh tokens are not signed, so live on."""
    clock.move_to(T1)
    stolen = login()
    assert_authenticates(whoami, stolen["access_token"])  # the old key is now in the cache

    new, out = rotate("--compromised")

    assert_refused(whoami, stolen["access_token"])
    assert published_kids(client) == [new.kid]
    assert new.signs_from == T1
    renewed = refresh(stolen["refresh_token"])
    assert kid_of(renewed["access_token"]) == new.kid
    assert_authenticates(whoami, renewed["access_token"])
    told = (
        "Every process sharing the cache 'default' has been told."
        if shared_cache() is not None
        else "Other processes may use them for up to 60 s more: "
        "the cache 'default' is not shared between processes."
    )
    assert out.splitlines() == [
        f"New key {new.kid} (RS256), published now.",
        "It signs now.",
        "Older keys no longer verify: their tokens are refused from now on.",
        told,
    ]


def test_compromised_also_drops_a_key_waiting_to_sign(clock, client, issue, whoami):
    """A scheduled key not yet signing is older too: it must never sign nor verify."""
    first_kid = kid_of(issue())
    clock.move_to(T1)
    pending, _ = rotate()
    clock.move_to(T1 + 5 * MINUTE)

    new, _ = rotate("--compromised")

    assert published_kids(client) == [new.kid]
    fresh = issue()
    assert kid_of(fresh) == new.kid
    for kid in (first_kid, pending.kid):
        assert_refused(whoami, re_sign(fresh, private_half(kid)))
    clock.move_to(pending.signs_from)
    keys.clear_cache()
    assert kid_of(issue()) == new.kid


# -- Overlapping rotations ---------------------------------------------------------------------


def probe_instants(start: datetime, end: datetime, boundaries: list[datetime]) -> list[datetime]:
    """Every 30 s from ``start`` to ``end``, and one second around each boundary."""
    every = [
        start + step * timedelta(seconds=30) for step in range((end - start) // (30 * SECOND))
    ]
    around = [moment + delta for moment in boundaries for delta in (-SECOND, 0 * SECOND, SECOND)]
    return sorted(set(every + around))


@pytest.mark.parametrize("fresh_process", [True, False], ids=["fresh-process", "long-running"])
@pytest.mark.parametrize("second", ["scheduled", "immediately"])
def test_two_rotations_in_a_row_leave_no_gap(clock, issue, whoami, second, fresh_process):
    """The second rotation comes before the first new key signs: each key signs in turn.

    At every probed instant a token can be issued and verifies, as does the
    one from the instant before; all still verify at the end. With a fresh
    process at each instant (no key cache), the signer is
    exactly the scheduled one; a long-running process may lag by its key
    cache but never goes back to an older key.
    """
    tokens = [issue()]
    k1 = kid_of(tokens[0])
    clock.move_to(T1)
    k2, _ = rotate()
    t2 = T1 + 5 * MINUTE
    clock.move_to(t2)
    k3, _ = rotate(*(["--immediately"] if second == "immediately" else []))
    # The schedule: (from, kid), each key signing from its instant until the next one's.
    if second == "scheduled":
        schedule = [(T0, k1), (k2.signs_from, k2.kid), (k3.signs_from, k3.kid)]
        assert k3.signs_from == t2 + JWKS_MAX_AGE
        assert row(k2.kid).retired_at == k3.signs_from
        assert row(k1).retired_at == k2.signs_from
    else:
        # k3 takes over at once: k1 stops now, and the pending k2 never signs.
        schedule = [(T0, k1), (t2, k3.kid)]
        assert k3.signs_from == t2
        assert row(k1).retired_at == row(k2.kid).retired_at == t2

    def scheduled_kid(moment: datetime) -> str:
        return [kid for start, kid in schedule if start <= moment][-1]

    order = [kid for _, kid in schedule]
    signers = []
    for moment in probe_instants(T1, t2 + 25 * MINUTE, [start for start, _ in schedule[1:]]):
        clock.move_to(moment)
        if fresh_process:
            keys.clear_cache()
        token = issue()
        signers.append(kid_of(token))
        if fresh_process:
            assert signers[-1] == scheduled_kid(moment), moment
        assert signers[-1] in order[: order.index(scheduled_kid(moment)) + 1], moment
        assert_authenticates(whoami, tokens[-1], token)  # the previous signer's too
        tokens.append(token)

    assert [order.index(kid) for kid in signers] == sorted(order.index(kid) for kid in signers)
    assert set(signers) == set(order)
    assert_authenticates(whoami, *tokens)


def test_immediate_rotation_over_a_pending_one_records_when_the_old_key_stopped(clock, issue):
    """models.SigningKey: ``retired_at`` is "when a newer key took over signing"."""
    k1 = kid_of(issue())
    clock.move_to(T1)
    rotate()  # pending: signs at T1 + 15 min
    t2 = T1 + 5 * MINUTE
    clock.move_to(t2)

    new, out = rotate("--immediately")

    keys.clear_cache()
    assert kid_of(issue()) == new.kid  # so k1 stopped signing at t2
    assert f"Key {k1} (RS256) signs until {stamp(t2)} " in out
    assert row(k1).retired_at == t2


# -- Encryption at rest ---------------------------------------------------------------------


def plaintext_forms(kid: str) -> Iterator[str]:
    """Ways a private key could leak into a text column: PEM, JWK members, DER in base64."""
    private_key = private_half(kid).private_key
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    yield pem
    yield "".join(pem.splitlines()[1:-1])  # the base64 body alone
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    yield base64.urlsafe_b64encode(der).decode()
    algorithm = get_default_algorithms()[row(kid).algorithm]
    yield algorithm.to_jwk(private_key, as_dict=True)["d"]


def test_private_key_column_never_holds_plaintext_after_rotations(clock, db):
    keys.signing_key()
    rotate()
    rotate("--algorithm", "ES256")
    rotate("--algorithm", "EdDSA", "--immediately")
    rotate("--compromised")
    rows = SigningKey.objects.values_list("kid", "algorithm", "private_key_ciphertext")

    assert sorted(algorithm for _, algorithm, _ in rows) == [
        "ES256",
        "EdDSA",
        "RS256",
        "RS256",
        "RS256",
    ]
    for kid, _, stored in rows:
        assert re.fullmatch(r"v1:[A-Za-z0-9_-]+=*", stored), stored[:80]
        for form in plaintext_forms(kid):
            assert form not in stored
        sealed = base64.urlsafe_b64decode(stored.removeprefix("v1:"))
        assert keys.decrypt_private_key(stored, kid) not in sealed


# -- Rotation under concurrent authentication (PostgreSQL) ---------------------------------


#: Seconds after which a waiting test gives up: a guard against hanging, never a speed check.
GUARD = 30.0
ROTATIONS = 15
WORKERS = 4


class LiveApi:
    """HTTP calls to pytest-django's live server, one connection per request."""

    def __init__(self, url: str, client_id: str, secret: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.client_authorization = basic_auth(client_id, secret)

    def _call(self, method: str, path: str, headers: dict, body: str | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=GUARD)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def login(self) -> str:
        status, body = self._call(
            "POST",
            "/auth/token/",
            {"Content-Type": FORM, "Authorization": self.client_authorization},
            urlencode({"grant_type": "password", "username": "alice", "password": PASSWORD}),
        )
        assert status == 200, body
        return json.loads(body)["access_token"]

    def whoami(self, token: str) -> tuple[int, bytes]:
        return self._call("GET", "/api/whoami/", {"Authorization": f"Bearer {token}"})


class Board:
    """The tokens in play, the answers received, and how far each worker has got."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = list(tokens)
        self.answers: list[tuple[str, int, bytes]] = []
        self.errors: list[BaseException] = []
        self.covered = dict.fromkeys(range(WORKERS), 0)
        self.stop = threading.Event()
        self.changed = threading.Condition()

    def snapshot(self) -> list[str]:
        with self.changed:
            return list(self.tokens)

    def add(self, token: str) -> None:
        with self.changed:
            self.tokens.append(token)

    def round_done(self, worker: int, tokens: int, answers: list) -> None:
        with self.changed:
            self.answers.extend(answers)
            self.covered[worker] = tokens
            self.changed.notify_all()

    def wait_until_every_worker_used_all_tokens(self) -> bool:
        with self.changed:
            count = len(self.tokens)
            return self.changed.wait_for(
                lambda: self.errors or min(self.covered.values()) >= count, timeout=GUARD
            )


def authenticate_in_a_loop(api: LiveApi, board: Board, worker: int) -> None:
    """A worker thread: rounds of whoami over every token in play, until told to stop."""
    try:
        while not board.stop.is_set():
            tokens = board.snapshot()
            answers = [(token, *api.whoami(token)) for token in tokens]
            board.round_done(worker, len(tokens), answers)
    except BaseException as error:
        with board.changed:
            board.errors.append(error)
            board.changed.notify_all()
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rotations_under_concurrent_authentication(live_server, make_user, make_client):
    """Every whoami is answered 200 while keys rotate and new tokens are issued.

    The live server runs in this process, so each ``rotate()`` also clears the
    key cache its request threads are reading: the cache must stay coherent.
    """
    make_user("alice")
    client_obj, secret = make_client("busy", max_pairs_per_client=1000)
    api = LiveApi(live_server.url, client_obj.client_id, secret)
    board = Board([api.login() for _ in range(3)])
    workers = [
        threading.Thread(target=authenticate_in_a_loop, args=(api, board, index), daemon=True)
        for index in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    new_kids = []
    try:
        for _, algorithm in zip(range(ROTATIONS), cycle(ALGORITHMS)):
            new_kids.append(keys.rotate(algorithm, immediately=True).kid)
            token = api.login()
            assert kid_of(token) == new_kids[-1]
            board.add(token)
            assert board.wait_until_every_worker_used_all_tokens(), "guard: workers stalled"
            assert not board.errors, board.errors
    finally:
        board.stop.set()
        for worker in workers:
            worker.join(GUARD)

    print(f"{ROTATIONS} rotations, {WORKERS} workers, {len(board.answers)} whoami answers")
    assert not any(worker.is_alive() for worker in workers)
    assert not board.errors, board.errors
    failures = [
        (kid_of(token), status, body) for token, status, body in board.answers if status != 200
    ]
    assert not failures, failures[:5]
    answered = {token for token, _, _ in board.answers}
    assert answered == set(board.tokens)
    assert len(board.tokens) == 3 + ROTATIONS
    assert len(set(new_kids)) == ROTATIONS
