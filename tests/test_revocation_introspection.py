"""``POST /auth/token/revoke/`` (RFC 7009) and ``POST /auth/token/introspect/`` (RFC 7662).

docs/http-api.md and §7: revocation kills the whole pair holding the token (access and
refresh together) and nothing else; it answers the same empty 200 whether or
not anything was revoked, so a caller learns nothing about tokens that are not
its own. Introspection answers ``{"active": false}`` and nothing more for
anything but a usable token the caller may see; a client sees its own tokens,
a client with ``can_introspect`` (a resource server) sees every client's. Both
endpoints need client authentication, ignore ``token_type_hint`` for the
answer, and send ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from base64 import urlsafe_b64encode
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import jwt
import pytest
from conftest import FORM, PASSWORD, basic_auth
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import freeze_time

from token_lifecycle import cache, credentials, keys, services, signals
from token_lifecycle.models import Client, TokenPair
from token_lifecycle.rules import RevokeReason

REVOKE_URL = "/auth/token/revoke/"
INTROSPECT_URL = "/auth/token/introspect/"
ISSUER = "http://testserver/auth"

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ACCESS_LIFETIME = 15 * DAY
REFRESH_LIFETIME = 30 * DAY
GRACE = 6 * HOUR

INACTIVE = {"active": False}
KINDS = ("access_token", "refresh_token")

ENDPOINTS = pytest.mark.parametrize(
    "url", [REVOKE_URL, INTROSPECT_URL], ids=["revoke", "introspect"]
)
STYLES = pytest.mark.parametrize("style", ["basic", "body"])
ENCODINGS = pytest.mark.parametrize("encoding", ["form", "json"])
EACH_KIND = pytest.mark.parametrize("kind", KINDS)


def _hint_cases():
    """Every hint for every kind of token: right, wrong, unknown and none (RFC 7009 §2.1)."""
    for kind in KINDS:
        for hint in (None, *KINDS, "foo"):
            if hint is None:
                label = "no-hint"
            elif hint == kind:
                label = "right-hint"
            elif hint in KINDS:
                label = "wrong-hint"
            else:
                label = "unknown-hint-foo"
            yield pytest.param(kind, hint, id=f"{kind}-{label}")


EVERY_HINT = pytest.mark.parametrize(("kind", "hint"), list(_hint_cases()))

#: Strings that name no pair. Each must get an empty 200 from revocation and
#: ``{"active": false}`` from introspection, never an error that tells them apart.
UNKNOWN_TOKENS = [
    pytest.param(credentials.new_refresh_token(), id="unknown-refresh-token"),
    pytest.param("rt_", id="refresh-prefix-only"),
    pytest.param("not a token", id="plain-text"),
    pytest.param("a.b.c", id="three-dotted-parts"),
    pytest.param("eyJhbGciOiJSUzI1NiJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl", id="jwt-shaped-garbage"),
    pytest.param(str(uuid.uuid4()), id="a-uuid"),
    pytest.param("токен 🙂", id="non-ascii"),
    pytest.param("\x01\x02\x7f\t", id="control-characters"),
    pytest.param(
        jwt.encode({"jti": str(uuid.uuid4())}, "a shared secret of at least 32 bytes"),
        id="foreign-hs256-jwt",
    ),
]


# -- Helpers ------------------------------------------------------------------


def creds(client_and_secret) -> tuple[str, str | None]:
    client_obj, secret = client_and_secret
    return client_obj.client_id, secret


def claims_of(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def pair_of(tokens: dict) -> TokenPair:
    """The pair a token response belongs to, fresh from the database."""
    return TokenPair.objects.get(pk=claims_of(tokens["access_token"])["jti"])


def token_params(token, hint: str | None = None) -> dict:
    params = {"token": token}
    if hint is not None:
        params["token_type_hint"] = hint
    return params


def assert_no_store(response) -> None:
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"


def assert_revocation_ok(response) -> None:
    """RFC 7009 §2.2: 200 with no content, whatever happened to the token."""
    assert response.status_code == 200, response.content
    assert response.content == b""
    assert_no_store(response)


def introspection_of(response) -> dict:
    """RFC 7662 §2.2: 200 with a JSON object."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert_no_store(response)
    return response.json()


def assert_oauth_error(response, status: int, error: str) -> dict:
    """The RFC 6749 §5.2 shape; a 401 carries a Basic challenge (docs/http-api.md)."""
    assert response.status_code == status, response.content
    assert_no_store(response)
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Basic")
    return body


def grant_error(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["error"]


def b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64url(json.dumps(value).encode())


def forge(how: str, carrier: str, victim: str) -> str:
    """A JWT naming ``victim``'s pair that this app did not sign.

    ``carrier`` is a real access token of the same client whose header (and,
    for ``tampered-payload``, signature) the forgery reuses.
    """
    header = jwt.get_unverified_header(carrier)
    claims = claims_of(victim)
    if how == "alg-none":
        return f"{segment({**header, 'alg': 'none'})}.{segment(claims)}."
    if how == "tampered-payload":
        carrier_header, _, carrier_signature = carrier.split(".")
        return f"{carrier_header}.{segment(claims)}.{carrier_signature}"
    if how == "signed-by-another-key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, other, algorithm="RS256", headers=header)
    if how == "hs256-with-the-public-key":
        public_pem = keys.signing_key().public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{segment({**header, 'alg': 'HS256'})}.{segment(claims)}"
        signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature)}"
    raise AssertionError(how)


FORGERIES = pytest.mark.parametrize(
    "how", ["alg-none", "tampered-payload", "signed-by-another-key", "hs256-with-the-public-key"]
)


# -- Fixtures -----------------------------------------------------------------

_OWN = object()  # "authenticate as oauth_client"


@pytest.fixture
def clock():
    with freeze_time(T0) as frozen:
        yield frozen


@pytest.fixture
def revoke(oauth_post, oauth_client):
    def do(token: str, *, hint: str | None = None, auth=_OWN, **options):
        auth = creds(oauth_client) if auth is _OWN else auth
        options.setdefault("style", "basic")
        return oauth_post(REVOKE_URL, token_params(token, hint), auth=auth, **options)

    return do


@pytest.fixture
def introspect(oauth_post, oauth_client):
    def do(token: str, *, hint: str | None = None, auth=_OWN, **options):
        auth = creds(oauth_client) if auth is _OWN else auth
        options.setdefault("style", "basic")
        return oauth_post(INTROSPECT_URL, token_params(token, hint), auth=auth, **options)

    return do


@pytest.fixture
def refresh(token_request, oauth_client):
    """Use a refresh token at ``/auth/token/``; returns the response."""

    def do(refresh_token: str, *, auth=None):
        return token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=auth or creds(oauth_client),
        )

    return do


@pytest.fixture
def refreshed(refresh):
    """Refresh successfully; returns the new token response."""

    def do(refresh_token: str, *, auth=None) -> dict:
        response = refresh(refresh_token, auth=auth)
        assert response.status_code == 200, response.content
        return response.json()

    return do


@pytest.fixture
def assert_dead(whoami, refresh):
    """Both tokens of the pair are refused where they are used, and the row says why."""

    def check(tokens: dict, *, auth=None, reason=RevokeReason.REVOCATION_ENDPOINT) -> None:
        assert whoami(tokens["access_token"]).status_code == 401
        assert grant_error(refresh(tokens["refresh_token"], auth=auth)) == "invalid_grant"
        pair = pair_of(tokens)
        assert pair.revoked_at is not None
        assert pair.revoke_reason == reason

    return check


@pytest.fixture
def assert_alive(whoami, refresh):
    """The pair is not revoked and its access token works; ``refresh_too`` also rotates it."""

    def check(tokens: dict, *, auth=None, refresh_too: bool = False) -> None:
        pair = pair_of(tokens)
        assert pair.revoked_at is None, pair.revoke_reason
        response = whoami(tokens["access_token"])
        assert response.status_code == 200, response.content
        assert response.json()["pair_id"] == str(pair.pk)
        if refresh_too:
            assert refresh(tokens["refresh_token"], auth=auth).status_code == 200

    return check


@pytest.fixture
def other_client(make_client):
    """A second confidential client of the same owner."""
    return make_client("other")


@pytest.fixture
def resource_server(make_client):
    """A client allowed to introspect every client's tokens (RFC 7662 §4)."""
    return make_client("resource-server", can_introspect=True)


@pytest.fixture
def revoked_events():
    """Every ``pair_revoked`` sent during the test, as kwargs."""
    events: list[dict] = []

    def handler(sender, **kwargs):
        kwargs.pop("signal", None)
        events.append(kwargs)

    signals.pair_revoked.connect(handler)
    yield events
    signals.pair_revoked.disconnect(handler)


# == Revocation (RFC 7009) =====================================================


class TestRevocationRevokesThePair:
    @EVERY_HINT
    def test_either_token_revokes_both(self, login, revoke, assert_dead, kind, hint):
        """docs/lifecycle.md rule 4: a pair lives and dies as one; the hint changes nothing."""
        tokens = login()

        assert_revocation_ok(revoke(tokens[kind], hint=hint))

        assert_dead(tokens)

    @STYLES
    @ENCODINGS
    def test_every_authentication_style_and_encoding(
        self, login, revoke, assert_dead, style, encoding
    ):
        """RFC 6749 §2.3.1: Basic or body credentials; docs/http-api.md: form or JSON bodies."""
        tokens = login()

        assert_revocation_ok(revoke(tokens["access_token"], style=style, encoding=encoding))

        assert_dead(tokens)

    @STYLES
    def test_a_public_client_authenticates_with_its_client_id(
        self, make_client, login, revoke, assert_dead, style
    ):
        """RFC 7009 §2.1: public clients send their client_id only."""
        public = make_client("mobile", public=True)
        tokens = login(client_creds=creds(public))

        assert_revocation_ok(revoke(tokens["refresh_token"], auth=creds(public), style=style))

        assert_dead(tokens, auth=creds(public))

    def test_a_client_credentials_pair(self, token_request, oauth_client, revoke, assert_dead):
        """A pair acting as the client's owner is revoked the same way."""
        tokens = token_request({"grant_type": "client_credentials"}, auth=creds(oauth_client))
        tokens = tokens.json()

        assert_revocation_ok(revoke(tokens["access_token"]))

        assert_dead(tokens)

    def test_an_expired_access_token_still_revokes_its_pair(
        self, clock, login, revoke, refresh, introspect, whoami
    ):
        """The refresh token outlives the access token: revoking by the latter must reach it."""
        tokens = login()
        clock.move_to(T0 + ACCESS_LIFETIME + HOUR)
        assert whoami(tokens["access_token"]).status_code == 401  # expired...
        assert introspection_of(introspect(tokens["refresh_token"]))["active"] is True  # ...alive

        assert_revocation_ok(revoke(tokens["access_token"]))

        assert grant_error(refresh(tokens["refresh_token"])) == "invalid_grant"
        assert pair_of(tokens).revoke_reason == RevokeReason.REVOCATION_ENDPOINT

    def test_a_used_refresh_token_inside_its_grace_window(
        self, clock, login, refreshed, revoke, assert_dead, assert_alive
    ):
        """The old refresh token is still usable during the grace window, so it can revoke."""
        parent = login()
        clock.tick(HOUR)
        child = refreshed(parent["refresh_token"])

        assert_revocation_ok(revoke(parent["refresh_token"]))

        assert_dead(parent)
        assert_alive(child)

    def test_an_expired_access_token_signed_by_a_rotated_key(
        self, clock, login, revoke, refresh, introspect
    ):
        """A routine key rotation must not make a client's revocation silently ineffective."""
        tokens = login()
        clock.tick(SECOND)
        keys.rotate(immediately=True)  # routine rotation, not --compromised
        clock.move_to(T0 + ACCESS_LIFETIME + 5 * DAY)  # the old key no longer verifies...
        assert introspection_of(introspect(tokens["refresh_token"]))["active"] is True  # ...alive

        assert_revocation_ok(revoke(tokens["access_token"]))

        assert grant_error(refresh(tokens["refresh_token"])) == "invalid_grant"


class TestRevocationReachesOnlyThatPair:
    @EACH_KIND
    @pytest.mark.parametrize("target", ["parent", "child"])
    def test_not_the_rest_of_its_family(
        self, clock, login, refreshed, revoke, assert_dead, assert_alive, kind, target
    ):
        """docs/lifecycle.md: the pair holding the token, not its family (unlike reuse
        detection)."""
        parent = login()
        clock.tick(HOUR)
        child = refreshed(parent["refresh_token"])
        revoked, spared = (parent, child) if target == "parent" else (child, parent)

        assert_revocation_ok(revoke(revoked[kind]))

        assert_dead(revoked)
        # The parent's refresh token is still inside its grace window: it works too.
        assert_alive(spared, refresh_too=True)
        assert TokenPair.objects.filter(revoked_at__isnull=False).count() == 1

    @EACH_KIND
    def test_not_the_users_other_pairs(
        self, login, make_user, other_client, revoke, assert_dead, assert_alive, kind
    ):
        """Other sessions of the same user, through this or another client, and other users."""
        make_user("bob")
        target = login()
        same_client = login()
        through_other = login(client_creds=creds(other_client))
        bob = login(username="bob")

        assert_revocation_ok(revoke(target[kind]))

        assert_dead(target)
        assert_alive(same_client, refresh_too=True)
        assert_alive(through_other, auth=creds(other_client), refresh_too=True)
        assert_alive(bob, refresh_too=True)


class TestRevocationOfTokensItCannotRevoke:
    """RFC 7009 §2.2: an invalid token is no error; the answer is the same empty 200."""

    @pytest.mark.parametrize("token", UNKNOWN_TOKENS)
    def test_unknown_or_garbage_token(self, login, revoke, assert_alive, token):
        """No 400 for a malformed token: it would tell the caller something."""
        tokens = login()

        assert_revocation_ok(revoke(token))

        assert_alive(tokens)

    def test_access_token_of_a_purged_pair(self, login, revoke):
        """Validly signed, but its pair is gone: nothing to revoke, nothing to report."""
        tokens = login()
        pair_of(tokens).delete()

        assert_revocation_ok(revoke(tokens["access_token"]))

        assert not TokenPair.objects.exists()

    @FORGERIES
    def test_forged_jwt_naming_a_real_pair(self, login, revoke, assert_alive, how):
        """Only our signature makes a JWT name a pair (docs/tokens.md: never ``none``, never
        HMAC)."""
        victim = login()
        carrier = login()

        assert_revocation_ok(revoke(forge(how, carrier["access_token"], victim["access_token"])))

        assert_alive(victim, refresh_too=True)
        assert_alive(carrier)

    @EVERY_HINT
    def test_already_revoked_token(self, login, revoke, assert_dead, kind, hint):
        """Idempotent: a second revocation succeeds and keeps the first reason."""
        tokens = login()
        services.revoke_pair(pair_of(tokens), RevokeReason.ADMIN)
        revoked_at = pair_of(tokens).revoked_at

        assert_revocation_ok(revoke(tokens[kind], hint=hint))

        assert_dead(tokens, reason=RevokeReason.ADMIN)
        assert pair_of(tokens).revoked_at == revoked_at

    @EVERY_HINT
    @pytest.mark.parametrize("revoker", ["ordinary-client", "resource-server"])
    def test_another_clients_token_is_left_untouched(
        self,
        login,
        oauth_client,
        other_client,
        resource_server,
        revoke,
        assert_alive,
        kind,
        hint,
        revoker,
    ):
        """docs/lifecycle.md: same 200 as an unknown token; even can_introspect grants no
        revocation."""
        theirs = login(client_creds=creds(other_client))
        auth = creds(resource_server if revoker == "resource-server" else oauth_client)
        unknown = revoke(credentials.new_refresh_token(), hint=hint, auth=auth)

        response = revoke(theirs[kind], hint=hint, auth=auth)

        assert_revocation_ok(response)
        assert response.content == unknown.content
        assert dict(response.items()) == dict(unknown.items())
        assert_alive(theirs, auth=creds(other_client), refresh_too=True)


class TestRevocationSignal:
    def test_pair_revoked_is_sent_once_after_commit(
        self, login, oauth_client, user, revoke, revoked_events, django_capture_on_commit_callbacks
    ):
        """docs/commands-and-signals.md: once per revoked pair, after commit; a repeat
        revocation sends nothing."""
        tokens = login()
        pair = pair_of(tokens)

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert_revocation_ok(revoke(tokens["access_token"]))
            assert revoked_events == []  # not before the transaction commits
        assert len(callbacks) >= 1
        assert revoked_events == [
            {
                "pair_id": pair.pk,
                "client_pk": oauth_client[0].pk,
                "user_pk": user.pk,
                "reason": RevokeReason.REVOCATION_ENDPOINT,
            }
        ]

        with django_capture_on_commit_callbacks(execute=True):
            assert_revocation_ok(revoke(tokens["refresh_token"]))
            assert_revocation_ok(revoke(tokens["access_token"]))
        assert len(revoked_events) == 1

    def test_nothing_is_sent_when_nothing_is_revoked(
        self, login, other_client, revoke, revoked_events, django_capture_on_commit_callbacks
    ):
        """Another client's token and an unknown one revoke nothing, so signal nothing."""
        theirs = login(client_creds=creds(other_client))
        with django_capture_on_commit_callbacks(execute=True):
            assert_revocation_ok(revoke(theirs["access_token"]))
            assert_revocation_ok(revoke(theirs["refresh_token"]))
            assert_revocation_ok(revoke(credentials.new_refresh_token()))
        assert revoked_events == []


# == Introspection (RFC 7662) ==================================================


def expected_introspection(tokens: dict, kind: str, *, client_id: str, username: str) -> dict:
    """The full RFC 7662 answer for an active token, from the JWT and its pair."""
    claims = claims_of(tokens["access_token"])
    pair = pair_of(tokens)
    body = {
        "active": True,
        "token_use": kind,
        "client_id": client_id,
        "username": username,
        "sub": str(pair.user_id),
        "iss": ISSUER,
        "jti": str(pair.pk),
        "iat": claims["iat"],
        "aud": claims["aud"],  # the access token's, for both kinds
    }
    if kind == "access_token":
        body.update(token_type="Bearer", exp=claims["exp"])
    else:
        body["exp"] = int(pair.refresh_expires_at.timestamp())
    if pair.scope:
        body["scope"] = pair.scope
    return body


def without_token_type(body: dict) -> dict:
    """A refresh token's ``token_type`` is left to the implementation (RFC 7662 §2.2)."""
    return {name: value for name, value in body.items() if name != "token_type"}


class TestActiveTokens:
    @pytest.mark.parametrize("scope", ["read write", ""], ids=["with-scope", "without-scope"])
    @pytest.mark.parametrize("grant", ["password", "client_credentials"])
    def test_access_token(self, clock, make_client, token_request, user, introspect, grant, scope):
        """Every member of the answer agrees with the JWT; ``scope`` only when there is one."""
        partner = make_client("scoped", scope=scope)
        params = {"grant_type": grant}
        if grant == "password":
            params.update(username="alice", password=PASSWORD)
        tokens = token_request(params, auth=creds(partner)).json()
        username = "alice" if grant == "password" else partner[0].owner.username

        body = introspection_of(introspect(tokens["access_token"], auth=creds(partner)))

        claims = claims_of(tokens["access_token"])
        assert body == expected_introspection(
            tokens, "access_token", client_id=partner[0].client_id, username=username
        )
        assert body["jti"] == claims["jti"] == str(pair_of(tokens).pk)
        assert body["exp"] == claims["exp"] == int((T0 + ACCESS_LIFETIME).timestamp())
        assert body["iat"] == int(T0.timestamp())
        assert body["sub"] == claims["sub"]
        assert body["iss"] == claims["iss"]
        assert ("scope" in body) == bool(scope)

    def test_refresh_token_before_its_first_use(self, clock, login, oauth_client, introspect):
        """Unused, it lives until its own expiry."""
        tokens = login()

        body = introspection_of(introspect(tokens["refresh_token"]))

        assert without_token_type(body) == expected_introspection(
            tokens, "refresh_token", client_id=oauth_client[0].client_id, username="alice"
        )
        assert body["exp"] == int((T0 + REFRESH_LIFETIME).timestamp())
        # docs/tokens.md: a refresh token is never accepted as a bearer token; do not say it
        # is one.
        assert body.get("token_type") != "Bearer"

    @pytest.mark.parametrize(
        ("lifetimes", "first_use", "expected_end"),
        [
            pytest.param({}, DAY, DAY + GRACE, id="grace-ends-before-expiry"),
            pytest.param(
                {"refresh_token_lifetime": HOUR, "refresh_grace_period": 59 * MINUTE},
                30 * MINUTE,
                HOUR,
                id="expiry-before-grace-end",
            ),
        ],
    )
    def test_refresh_token_after_its_first_use(
        self, clock, make_client, login, refreshed, introspect, lifetimes, first_use, expected_end
    ):
        """``exp`` is min(refresh expiry, grace end), and a second use does not extend it."""
        partner = make_client("partner-2", **lifetimes)
        tokens = login(client_creds=creds(partner))
        clock.move_to(T0 + first_use)
        refreshed(tokens["refresh_token"], auth=creds(partner))
        clock.tick(MINUTE)
        refreshed(tokens["refresh_token"], auth=creds(partner))  # still inside the window

        body = introspection_of(introspect(tokens["refresh_token"], auth=creds(partner)))

        assert body["active"] is True
        assert body["token_use"] == "refresh_token"
        assert body["exp"] == int((T0 + expected_end).timestamp())
        assert body["jti"] == str(pair_of(tokens).pk)

    def test_the_child_of_a_refresh_has_its_own_answer(self, clock, login, refreshed, introspect):
        """A refresh's new pair is introspected with its own id and fresh lifetimes."""
        parent = login()
        clock.move_to(T0 + DAY)
        child = refreshed(parent["refresh_token"])

        access = introspection_of(introspect(child["access_token"]))
        refresh_body = introspection_of(introspect(child["refresh_token"]))

        assert access["jti"] == refresh_body["jti"] == claims_of(child["access_token"])["jti"]
        assert access["jti"] != claims_of(parent["access_token"])["jti"]
        assert access["iat"] == refresh_body["iat"] == int((T0 + DAY).timestamp())
        assert access["exp"] == int((T0 + DAY + ACCESS_LIFETIME).timestamp())
        assert refresh_body["exp"] == int((T0 + DAY + REFRESH_LIFETIME).timestamp())

    @EVERY_HINT
    def test_the_hint_does_not_change_the_answer(self, login, introspect, kind, hint):
        """RFC 7662 §2.1: the hint may speed up the lookup, never change the result."""
        tokens = login()
        baseline = introspection_of(introspect(tokens[kind]))
        assert baseline["active"] is True

        assert introspection_of(introspect(tokens[kind], hint=hint)) == baseline

    @STYLES
    @ENCODINGS
    def test_every_authentication_style_and_encoding(self, login, introspect, style, encoding):
        """RFC 6749 §2.3.1: Basic or body credentials; docs/http-api.md: form or JSON bodies."""
        tokens = login()

        body = introspection_of(introspect(tokens["access_token"], style=style, encoding=encoding))

        assert body["active"] is True
        assert body["jti"] == claims_of(tokens["access_token"])["jti"]

    @EACH_KIND
    def test_a_resource_server_sees_other_clients_tokens(
        self, login, oauth_client, resource_server, introspect, kind
    ):
        """``can_introspect``: the answer names the client the token was issued to."""
        tokens = login()

        body = introspection_of(introspect(tokens[kind], auth=creds(resource_server)))

        expected = expected_introspection(
            tokens, kind, client_id=oauth_client[0].client_id, username="alice"
        )
        assert without_token_type(body) == without_token_type(expected)
        assert body["client_id"] != resource_server[0].client_id

    def test_introspection_changes_nothing(self, login, introspect, assert_alive):
        """Looking at a refresh token is not using it: no rotation, no grace window."""
        tokens = login()
        before = pair_of(tokens)

        introspection_of(introspect(tokens["refresh_token"]))
        introspection_of(introspect(tokens["access_token"]))

        after = pair_of(tokens)
        assert (after.rotated_at, after.refresh_grace_ends_at) == (None, None)
        assert after.live_until == before.live_until
        assert TokenPair.objects.count() == 1
        assert_alive(tokens, refresh_too=True)


class TestInactiveTokens:
    """RFC 7662 §2.2: anything but an active token is ``{"active": false}``, and only that."""

    @pytest.mark.parametrize("token", UNKNOWN_TOKENS)
    @pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
    def test_unknown_or_garbage_token(self, db, oauth_client, introspect, token, hint):
        """Never an error that would tell a malformed token from an unknown one."""
        assert introspection_of(introspect(token, hint=hint)) == INACTIVE

    def test_access_token_of_a_purged_pair(self, login, introspect):
        tokens = login()
        pair_of(tokens).delete()

        assert introspection_of(introspect(tokens["access_token"])) == INACTIVE
        assert introspection_of(introspect(tokens["refresh_token"])) == INACTIVE

    @FORGERIES
    def test_forged_jwt_naming_a_real_pair(self, login, introspect, resource_server, how):
        """Only our signature makes a JWT name a pair, for a resource server too."""
        victim = login()
        forged = forge(how, login()["access_token"], victim["access_token"])

        assert introspection_of(introspect(forged)) == INACTIVE
        assert introspection_of(introspect(forged, auth=creds(resource_server))) == INACTIVE

    @EACH_KIND
    @pytest.mark.parametrize("how", ["revocation-endpoint", "admin", "reuse-detected"])
    def test_revoked_pair(self, clock, login, revoke, refresh, introspect, kind, how):
        """Whatever revoked the pair, both of its tokens are inactive."""
        tokens = login()
        if how == "revocation-endpoint":
            assert_revocation_ok(revoke(tokens["access_token"]))
        elif how == "admin":
            services.revoke_pair(pair_of(tokens), RevokeReason.ADMIN)
        else:
            clock.tick(HOUR)
            assert refresh(tokens["refresh_token"]).status_code == 200
            clock.tick(GRACE)
            assert grant_error(refresh(tokens["refresh_token"])) == "invalid_grant"
        assert pair_of(tokens).revoked_at is not None

        assert introspection_of(introspect(tokens[kind])) == INACTIVE

    def test_access_token_at_its_expiry(self, clock, login, introspect):
        """docs/lifecycle.md: expiry is exclusive; the pair itself lives on through its refresh
        token."""
        tokens = login()
        clock.move_to(T0 + ACCESS_LIFETIME - SECOND)
        assert introspection_of(introspect(tokens["access_token"]))["active"] is True

        clock.move_to(T0 + ACCESS_LIFETIME)

        assert introspection_of(introspect(tokens["access_token"])) == INACTIVE
        assert introspection_of(introspect(tokens["refresh_token"]))["active"] is True

    def test_refresh_token_at_its_expiry(self, clock, login, introspect):
        """Exclusive expiry: active one second before, inactive at the instant."""
        tokens = login()
        clock.move_to(T0 + REFRESH_LIFETIME - SECOND)
        assert introspection_of(introspect(tokens["refresh_token"]))["active"] is True

        clock.move_to(T0 + REFRESH_LIFETIME)

        assert introspection_of(introspect(tokens["refresh_token"])) == INACTIVE

    def test_refresh_token_at_the_end_of_its_grace_window(
        self, clock, login, refreshed, introspect
    ):
        """The grace end is exclusive; introspecting never triggers reuse detection."""
        tokens = login()
        clock.move_to(T0 + DAY)
        child = refreshed(tokens["refresh_token"])
        clock.move_to(T0 + DAY + GRACE - SECOND)
        assert introspection_of(introspect(tokens["refresh_token"]))["active"] is True

        clock.move_to(T0 + DAY + GRACE)

        assert introspection_of(introspect(tokens["refresh_token"])) == INACTIVE
        # The parent's access token and the child are untouched.
        assert introspection_of(introspect(tokens["access_token"]))["active"] is True
        assert introspection_of(introspect(child["refresh_token"]))["active"] is True
        assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()

    @EACH_KIND
    @pytest.mark.parametrize("how", ["save", "queryset-update"])
    def test_deactivated_client(self, login, oauth_client, resource_server, introspect, kind, how):
        """docs/lifecycle.md rule 4: a deactivated client's tokens stop working at once."""
        tokens = login()
        deactivate(oauth_client[0], how)

        assert introspection_of(introspect(tokens[kind], auth=creds(resource_server))) == INACTIVE

    @EACH_KIND
    @pytest.mark.parametrize("how", ["save", "queryset-update"])
    @pytest.mark.parametrize("caller", ["own-client", "resource-server"])
    def test_deactivated_user(
        self, login, user, oauth_client, resource_server, introspect, kind, how, caller
    ):
        """docs/lifecycle.md: refused at once on a cold path, with or without signals."""
        tokens = login()
        deactivate(user, how)
        auth = creds(resource_server if caller == "resource-server" else oauth_client)

        assert introspection_of(introspect(tokens[kind], auth=auth)) == INACTIVE

    @EVERY_HINT
    def test_another_clients_token_without_can_introspect(
        self, login, other_client, introspect, kind, hint
    ):
        """RFC 7662 §4: no token scanning across clients; the pair itself is left alone."""
        theirs = login(client_creds=creds(other_client))

        assert introspection_of(introspect(theirs[kind], hint=hint)) == INACTIVE
        assert introspection_of(introspect(theirs[kind], auth=creds(other_client)))["active"]


def deactivate(obj, how: str) -> None:
    """Deactivate a client or user by ``save()`` (signals fire) or ``update()`` (they do not)."""
    if how == "save":
        obj.is_active = False
        obj.save()
    else:
        type(obj)._default_manager.filter(pk=obj.pk).update(is_active=False)


# == Both endpoints: client authentication and malformed requests =============


def failing_auth(case: str, oauth_client, make_client) -> tuple[tuple | None, str]:
    """Credentials that must not authenticate, and how to send them."""
    client_id, secret = creds(oauth_client)
    if case == "no-client-authentication":
        return None, "basic"
    if case == "wrong-secret-basic":
        return (client_id, secret + "x"), "basic"
    if case == "wrong-secret-body":
        return (client_id, secret + "x"), "body"
    if case == "no-secret-for-a-confidential-client":
        return (client_id, None), "body"
    if case == "unknown-client":
        return ("no-such-client", secret), "basic"
    if case == "another-clients-secret":
        return (client_id, make_client("other")[1]), "basic"
    if case == "deactivated-client":
        # update() leaves the pairs unrevoked (the assertion below is about the
        # endpoint); it also bypasses the cache invalidation a save() does, so
        # that is done here (README: changes behind the app's back).
        Client.objects.filter(pk=oauth_client[0].pk).update(is_active=False)
        cache.forget_client(client_id)
        return (client_id, secret), "basic"
    raise AssertionError(case)


AUTH_FAILURES = pytest.mark.parametrize(
    "case",
    [
        "no-client-authentication",
        "wrong-secret-basic",
        "wrong-secret-body",
        "no-secret-for-a-confidential-client",
        "unknown-client",
        "another-clients-secret",
        "deactivated-client",
    ],
)


@ENDPOINTS
@AUTH_FAILURES
@ENCODINGS
def test_client_authentication_is_required(
    login, oauth_client, make_client, oauth_post, url, case, encoding
):
    """docs/lifecycle.md and RFC 6749 §5.2: 401 invalid_client with a Basic challenge, token
    untouched."""
    tokens = login()
    auth, style = failing_auth(case, oauth_client, make_client)

    response = oauth_post(
        url, {"token": tokens["access_token"]}, auth=auth, style=style, encoding=encoding
    )

    body = assert_oauth_error(response, 401, "invalid_client")
    assert "active" not in body
    assert pair_of(tokens).revoked_at is None


@ENDPOINTS
@pytest.mark.parametrize(
    ("params", "encoding"),
    [
        pytest.param({}, "form", id="empty-body"),
        pytest.param({"token": ""}, "form", id="empty-token-form"),
        pytest.param({"token_type_hint": "access_token"}, "form", id="hint-only"),
        pytest.param({}, "json", id="empty-json-object"),
        pytest.param({"token": ""}, "json", id="empty-token-json"),
        pytest.param({"token": None}, "json", id="null-token"),
        pytest.param({"token": 12345}, "json", id="token-not-a-string"),
    ],
)
def test_missing_token_is_invalid_request(oauth_client, oauth_post, url, params, encoding):
    """RFC 7009 §2.1 / RFC 7662 §2.1: ``token`` is REQUIRED."""
    response = oauth_post(url, params, auth=creds(oauth_client), encoding=encoding)

    assert_oauth_error(response, 400, "invalid_request")


@ENDPOINTS
def test_both_authentication_methods_at_once_is_invalid_request(
    login, oauth_client, oauth_post, client, url
):
    """RFC 6749 §2.3: a client must not use more than one authentication method.

    A body ``client_id`` naming the same client is no second method (docs/http-api.md).
    """
    tokens = login()
    client_id, secret = creds(oauth_client)
    body = urlencode(
        {"token": tokens["access_token"], "client_id": client_id, "client_secret": secret}
    )

    response = client.post(
        url, body, content_type=FORM, HTTP_AUTHORIZATION=basic_auth(client_id, secret)
    )

    assert_oauth_error(response, 400, "invalid_request")
    assert pair_of(tokens).revoked_at is None


@ENDPOINTS
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_allowed(db, client, url, method):
    """Even a refused method is answered with ``no-store``."""
    response = getattr(client, method)(url)

    assert response.status_code == 405
    assert "POST" in response["Allow"]
    assert_no_store(response)
