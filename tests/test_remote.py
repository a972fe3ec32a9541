"""``token_lifecycle.remote`` against a fake authorization server that can misbehave on demand.

The fake serves RFC 8414 metadata, a JWKS and an introspection endpoint over
real HTTP (a thread on a free port), and signs tokens with keys of its own, so
that every bad answer the issue lists can be produced: a lying metadata
issuer, a key of the wrong type, introspection garbage, slowness and 500s,
redirects, tokens for another audience, expired ones, unknown kids. Each
must come out as 401 or 503 in the RFC 6750 shape, never a 500 and never an
accepted token.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from freezegun import freeze_time
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from token_lifecycle.permissions import HasScope
from token_lifecycle.remote import RemoteTokenAuthentication, TokenUser, discovery
from token_lifecycle.remote.introspection import cache_key
from token_lifecycle.remote.settings import remote_settings

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID, CLIENT_SECRET = "resource-server", "s3cret:with/odd&chars"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KID, EC_KID = "rsa-key-1", "ec-key-1"


def public_jwk(key: Any, kid: str, alg: str, converter=RSAAlgorithm) -> dict:
    jwk = converter.to_jwk(key.public_key(), as_dict=True)
    jwk.pop("key_ops", None)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class FakeAuthorizationServer:
    """An issuer at ``http://127.0.0.1:PORT/auth`` whose every answer a test can change."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.keys = [public_jwk(RSA_KEY, RSA_KID, "RS256")]
        self.jwks_cache_control = "public, max-age=900"
        self.metadata_issuer: str | None = None  # None: the true issuer
        self.rfc_metadata_missing = False
        #: "active", "inactive", "500", "garbage", "slow", "list", "no-active",
        #: "other-token", "redirect": what the introspection endpoint answers.
        self.introspection = "active"
        self.introspected: list[dict] = []
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                server.answer_get(self)

            def do_POST(self) -> None:
                server.hits[self.path] += 1
                length = int(self.headers.get("Content-Length", 0))
                server.answer_post(self, self.rfile.read(length))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.issuer = f"{self.base}/auth"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def send(handler, status: int, body: Any, headers: dict | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(raw)

    def metadata(self) -> dict:
        return {
            "issuer": self.metadata_issuer or self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "introspection_endpoint": f"{self.issuer}/introspect",
            "token_endpoint": f"{self.issuer}/token",
        }

    def answer_get(self, handler) -> None:
        if handler.path == "/.well-known/oauth-authorization-server/auth":
            if self.rfc_metadata_missing:
                return self.send(handler, 404, {"detail": "not here"})
            return self.send(handler, 200, self.metadata())
        if handler.path == "/auth/.well-known/oauth-authorization-server":
            return self.send(handler, 200, self.metadata())
        if handler.path == "/auth/jwks":
            headers = {"Cache-Control": self.jwks_cache_control}
            return self.send(handler, 200, {"keys": self.keys}, headers)
        if handler.path == "/elsewhere":
            return self.send(handler, 200, {"active": True})
        self.send(handler, 404, {"detail": "no such page"})

    def answer_post(self, handler, body: bytes) -> None:
        expected = base64.b64encode(b"resource-server:s3cret%3Awith%2Fodd%26chars").decode()
        if handler.headers.get("Authorization") != f"Basic {expected}":
            return self.send(handler, 401, {"error": "invalid_client"})
        form = {name: values[-1] for name, values in parse_qs(body.decode()).items()}
        self.introspected.append(form)
        if self.delay:
            time.sleep(self.delay)
        claims = jwt.decode(form["token"], options={"verify_signature": False})
        active = {
            "active": True,
            "sub": claims["sub"],
            "client_id": claims["client_id"],
            "jti": claims["jti"],
            "username": "alice",
            "scope": claims.get("scope", ""),
            "exp": claims["exp"],
            "extra": "not kept",
        }
        behaviour = self.introspection
        if behaviour == "active":
            return self.send(handler, 200, active)
        if behaviour == "inactive":
            return self.send(handler, 200, {"active": False})
        if behaviour == "500":
            return self.send(handler, 500, b"<h1>Server Error</h1>")
        if behaviour == "garbage":
            return self.send(handler, 200, b"\x00\xffnot json at all")
        if behaviour == "list":
            return self.send(handler, 200, [{"active": True}])
        if behaviour == "no-active":
            return self.send(handler, 200, {"sub": claims["sub"]})
        if behaviour == "string-active":
            return self.send(handler, 200, {**active, "active": "true"})
        if behaviour == "other-token":
            return self.send(handler, 200, {**active, "sub": "someone-else"})
        if behaviour == "redirect":
            return self.send(handler, 302, {}, {"Location": f"{self.base}/elsewhere"})
        raise AssertionError(behaviour)

    def token(
        self,
        *,
        key: Any = RSA_KEY,
        algorithm: str = "RS256",
        kid: str = RSA_KID,
        typ: str = "at+jwt",
        lifetime: int = 900,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "42",
            "client_id": "mobile-app",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + lifetime,
            "aud": self.issuer,
            "scope": "read reports",
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, key, algorithm=algorithm, headers={"typ": typ, "kid": kid})


@pytest.fixture
def auth_server(settings):
    server = FakeAuthorizationServer()
    settings.TOKEN_LIFECYCLE_REMOTE = {
        "ISSUER": server.issuer,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "TIMEOUT_SECONDS": 0.5,
        "RETRY_AFTER": 7,
    }
    discovery.forget()
    yield server
    discovery.forget()
    server.stop()


@pytest.fixture
def remote(settings):
    """Change some ``TOKEN_LIFECYCLE_REMOTE`` keys for one test."""

    def configure(**values: Any) -> None:
        settings.TOKEN_LIFECYCLE_REMOTE = {**settings.TOKEN_LIFECYCLE_REMOTE, **values}

    return configure


class Resource(APIView):
    authentication_classes = [RemoteTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        user = request.user
        return Response(
            {
                "type": type(user).__name__,
                "id": user.id,
                "pk": user.pk,
                "username": user.username,
                "client_id": user.client_id,
                "scopes": sorted(user.scopes),
                "jti": request.auth["jti"],
            }
        )


class Reports(Resource):
    permission_classes = [IsAuthenticated, HasScope]
    required_scopes = ["reports"]


class Admin(Resource):
    permission_classes = [HasScope.of("admin", "read")]


def call(token: str | None = None, view=Resource, header: str | None = None):
    headers = {}
    if header is not None:
        headers["HTTP_AUTHORIZATION"] = header
    elif token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    response = view.as_view()(APIRequestFactory().get("/resource/", **headers))
    response.render()
    return response


def assert_invalid_token(response, description: str | None = None) -> None:
    assert response.status_code == 401, response.content
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="invalid_token"'), challenge
    if description is not None:
        assert description in challenge


def assert_unavailable(response, retry_after: int = 7) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(retry_after)
    assert response["WWW-Authenticate"].startswith(
        'Bearer realm="api", error="temporarily_unavailable"'
    )


# -- The happy path -------------------------------------------------------------


def test_a_valid_active_token_is_accepted_with_a_claims_based_user(auth_server):
    token = auth_server.token()
    response = call(token)
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["type"] == "TokenUser"
    assert body["id"] == body["pk"] == "42"
    assert body["username"] == "alice"  # from the introspection answer
    assert body["client_id"] == "mobile-app"
    assert body["scopes"] == ["read", "reports"]
    assert auth_server.introspected[0]["token"] == token
    assert auth_server.introspected[0]["token_type_hint"] == "access_token"


def test_the_claims_user_behaves_like_a_django_user():
    user = TokenUser(id="42", username="alice", client_id="app", scopes=frozenset({"read"}))
    assert user.is_authenticated and user.is_active and not user.is_anonymous
    assert not user.is_staff and not user.has_perm("app.change_thing")
    assert user.get_username() == str(user) == "alice"


def test_get_user_is_the_hook_for_a_local_user(auth_server):
    class LocalUser:
        is_authenticated = True

        def __init__(self, username: str) -> None:
            self.username = username

    class Mapped(RemoteTokenAuthentication):
        def get_user(self, claims, introspection):
            return LocalUser(f"local-{introspection['username']}-{claims['sub']}")

    class View(APIView):
        authentication_classes = [Mapped]

        def get(self, request):
            return Response({"user": request.user.username, "aud": request.auth["aud"]})

    response = call(auth_server.token(), view=View)
    assert json.loads(response.content) == {"user": "local-alice-42", "aud": auth_server.issuer}


def test_introspection_answers_are_cached_under_a_digest_of_the_token(auth_server):
    token = auth_server.token()
    assert call(token).status_code == 200
    assert call(token).status_code == 200
    assert len(auth_server.introspected) == 1  # the second request asked nobody
    key = cache_key(token, auth_server.issuer)
    assert token not in key and token.split(".")[1] not in key
    cached = cache.get(key)
    assert cached["active"] is True and "extra" not in cached  # only RFC 7662 members kept


def test_metadata_and_jwks_are_fetched_once_while_fresh(auth_server):
    for _ in range(3):
        assert call(auth_server.token()).status_code == 200
    assert auth_server.hits["/.well-known/oauth-authorization-server/auth"] == 1
    assert auth_server.hits["/auth/jwks"] == 1


def test_metadata_falls_back_to_the_path_appended_to_the_issuer(auth_server):
    auth_server.rfc_metadata_missing = True
    assert call(auth_server.token()).status_code == 200
    assert auth_server.hits["/auth/.well-known/oauth-authorization-server"] == 1


def test_no_bearer_header_is_left_to_other_classes_and_gets_the_bare_challenge(auth_server):
    response = call(header="Basic dXNlcjpwYXNz")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert call().status_code == 401


# -- Tokens refused (401) -------------------------------------------------------


@pytest.mark.parametrize(
    "header, description",
    [
        ("Bearer ", "malformed"),
        ("Bearer two words", "malformed"),
        ("Bearer not-a-jwt", "malformed"),
        ("Bearer " + "a" * 9000, "too long"),
        ("Bearer rt_opaque-refresh-token", "malformed"),
    ],
)
def test_malformed_credentials_are_refused(auth_server, header, description):
    assert_invalid_token(call(header=header), description)
    assert not auth_server.introspected


@pytest.mark.parametrize(
    "make, description",
    [
        (lambda s: s.token(aud="https://another-api.example.com"), "another audience"),
        (lambda s: s.token(aud=["https://a.example.com", "https://b.example.com"]), "audience"),
        (lambda s: s.token(aud=None), "malformed"),
        (lambda s: s.token(iss="https://impostor.example.com/auth"), "another issuer"),
        (lambda s: s.token(lifetime=-1), "expired"),
        (lambda s: s.token(iat=int(time.time()) + 120), "not valid yet"),
        (lambda s: s.token(nbf=int(time.time()) + 120), "not valid yet"),
        (lambda s: s.token(typ="JWT"), "not an access token"),
        (lambda s: s.token(kid="../../etc/passwd"), "key id"),
        (lambda s: s.token(jti=None), "malformed"),
        (lambda s: s.token(exp="tomorrow"), "malformed"),
        (lambda s: s.token(sub=42), "malformed"),
        # The public key as an HMAC secret: the header's algorithm is never trusted.
        (
            lambda s: jwt.api_jws.PyJWS().encode(
                json.dumps({"sub": "42"}).encode(),
                key=b"any-secret-of-32-bytes-or-more-here",
                algorithm="HS256",
                headers={"typ": "at+jwt", "kid": RSA_KID},
            ),
            "algorithm does not match",
        ),
        (lambda s: s.token(key=EC_KEY, algorithm="ES256"), "algorithm does not match"),
    ],
)
def test_bad_tokens_are_refused_without_asking_the_server(auth_server, make, description):
    assert_invalid_token(call(make(auth_server)), description)
    assert not auth_server.introspected


def test_a_tampered_token_is_refused(auth_server):
    header, payload, signature = auth_server.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "==="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "1"}).encode()).rstrip(b"=")
    assert_invalid_token(call(f"{header}.{forged.decode()}.{signature}"), "signature")


def test_leeway_forgives_a_slightly_early_iat_only(auth_server):
    assert call(auth_server.token(iat=int(time.time()) + 20)).status_code == 200


def test_expiry_is_exclusive_and_no_leeway_extends_it(auth_server):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    token = auth_server.token(iat=int(now.timestamp()) - 60, exp=int(now.timestamp()) + 5)
    with freeze_time(now + timedelta(seconds=4)):
        assert call(token).status_code == 200
    with freeze_time(now + timedelta(seconds=5)):
        assert_invalid_token(call(token), "expired")


def test_an_inactive_token_is_refused_and_the_answer_kept(auth_server):
    auth_server.introspection = "inactive"
    token = auth_server.token()
    assert_invalid_token(call(token), "no longer active")
    assert_invalid_token(call(token), "no longer active")
    assert len(auth_server.introspected) == 1


def test_a_revocation_is_seen_once_the_cached_answer_expires_not_before(auth_server, remote):
    remote(CACHE_SECONDS=1)
    token = auth_server.token()
    assert call(token).status_code == 200
    auth_server.introspection = "inactive"  # revoked on the authorization server
    assert call(token).status_code == 200  # within the bound: the cached answer
    time.sleep(1.1)
    assert_invalid_token(call(token), "no longer active")


def test_cache_seconds_zero_asks_every_time(auth_server, remote):
    remote(CACHE_SECONDS=0)
    token = auth_server.token()
    assert call(token).status_code == 200
    auth_server.introspection = "inactive"
    assert_invalid_token(call(token))
    assert len(auth_server.introspected) == 2


def test_an_answer_is_not_kept_past_the_tokens_expiry(auth_server):
    token = auth_server.token(lifetime=2)
    assert call(token).status_code == 200
    time.sleep(2.1)
    auth_server.introspection = "active"
    assert_invalid_token(call(token), "expired")  # the local check, before any cache
    assert cache.get(cache_key(token, auth_server.issuer)) is None


# -- Keys -----------------------------------------------------------------------


def test_a_jwk_of_the_wrong_type_for_its_algorithm_is_refused_cleanly(auth_server, caplog):
    # An EC key labelled RS256: loading it as RSA would fail deep in PyJWT.
    auth_server.keys = [public_jwk(EC_KEY, RSA_KID, "RS256", converter=ECAlgorithm)]
    with caplog.at_level(logging.WARNING):
        assert_invalid_token(call(auth_server.token()), "unknown key")
    assert "needs a RSA key" in caplog.text


@pytest.mark.parametrize(
    "jwk",
    [
        {**public_jwk(RSA_KEY, RSA_KID, "RS256"), "alg": "HS256"},
        {**public_jwk(RSA_KEY, RSA_KID, "RS256"), "alg": "none"},
        {**public_jwk(RSA_KEY, RSA_KID, "RS256"), "use": "enc"},
        {**public_jwk(RSA_KEY, RSA_KID, "RS256"), "n": "!!not base64!!"},
        {**public_jwk(RSA_KEY, RSA_KID, "RS256"), "alg": None},
        {**public_jwk(EC_KEY, RSA_KID, "ES256", converter=ECAlgorithm), "crv": "P-384"},
        {
            "kty": "RSA",
            "kid": RSA_KID,
            "alg": "RS256",
            **{
                name: value
                for name, value in RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True).items()
                if name not in ("kid", "alg", "kty")
            },
        },
        "not an object",
    ],
    ids=["hs256", "none", "enc", "bad-n", "no-alg", "wrong-curve", "private", "string"],
)
def test_jwks_entries_that_are_not_our_signing_keys_are_ignored(auth_server, jwk):
    auth_server.keys = [jwk]
    assert_invalid_token(call(auth_server.token()), "unknown key")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_small_rsa_key_is_refused(auth_server):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    auth_server.keys = [public_jwk(weak, "weak", "RS256")]
    assert_invalid_token(call(auth_server.token(key=weak, kid="weak")), "unknown key")


def test_an_es256_key_verifies_es256_tokens(auth_server):
    auth_server.keys.append(public_jwk(EC_KEY, EC_KID, "ES256", converter=ECAlgorithm))
    token = auth_server.token(key=EC_KEY, algorithm="ES256", kid=EC_KID)
    assert call(token).status_code == 200


class FakeMonotonic:
    """``time`` for the discovery module, whose clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def moved_clock(monkeypatch):
    fake = FakeMonotonic()
    monkeypatch.setattr(discovery, "time", fake)
    return fake


def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_30_seconds(auth_server, moved_clock):
    assert call(auth_server.token()).status_code == 200
    assert auth_server.hits["/auth/jwks"] == 1
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    auth_server.keys.append(public_jwk(new_key, "rotated", "RS256"))
    rotated = auth_server.token(key=new_key, kid="rotated")
    assert call(rotated).status_code == 200  # refetched at once: a rotation needs no restart
    assert auth_server.hits["/auth/jwks"] == 2

    assert_invalid_token(call(auth_server.token(kid="made-up-0")), "unknown key")
    assert auth_server.hits["/auth/jwks"] == 2  # the last refetch was just now
    moved_clock.now += 30
    for kid in ("made-up-1", "made-up-2", "made-up-3"):
        assert_invalid_token(call(auth_server.token(kid=kid)), "unknown key")
    assert auth_server.hits["/auth/jwks"] == 3  # one refetch for the three made-up kids
    moved_clock.now += 29
    assert_invalid_token(call(auth_server.token(kid="made-up-4")), "unknown key")
    assert auth_server.hits["/auth/jwks"] == 3
    moved_clock.now += 1
    assert_invalid_token(call(auth_server.token(kid="made-up-5")), "unknown key")
    assert auth_server.hits["/auth/jwks"] == 4


@pytest.mark.parametrize(
    "cache_control, reused_for",
    [
        ("public, max-age=120", 120),
        ("no-store", discovery.MIN_CACHE_SECONDS),
        ("max-age=0", discovery.MIN_CACHE_SECONDS),
        ("public, max-age=999999", discovery.MAX_CACHE_SECONDS),
        ("", discovery.DEFAULT_CACHE_SECONDS),
        ("max-age=soon", discovery.DEFAULT_CACHE_SECONDS),
    ],
)
def test_the_jwks_is_reused_as_its_cache_control_says_within_bounds(
    auth_server, moved_clock, cache_control, reused_for
):
    auth_server.jwks_cache_control = cache_control
    assert call(auth_server.token()).status_code == 200
    moved_clock.now += reused_for - 0.5
    assert call(auth_server.token()).status_code == 200
    assert auth_server.hits["/auth/jwks"] == 1
    moved_clock.now += 1
    assert call(auth_server.token()).status_code == 200
    assert auth_server.hits["/auth/jwks"] == 2


# -- The authorization server misbehaving (503) ----------------------------------


def test_metadata_naming_another_issuer_is_not_used(auth_server, caplog):
    auth_server.metadata_issuer = "https://impostor.example.com/auth"
    with caplog.at_level(logging.ERROR):
        assert_unavailable(call(auth_server.token()))
    assert "not ISSUER" in caplog.text
    assert auth_server.hits["/auth/jwks"] == 0  # nothing it names was fetched
    assert not auth_server.introspected


@pytest.mark.parametrize(
    "behaviour",
    ["500", "garbage", "list", "no-active", "string-active", "other-token", "redirect"],
)
def test_a_bad_introspection_answer_is_a_503_never_cached(auth_server, behaviour):
    auth_server.introspection = behaviour
    token = auth_server.token()
    assert_unavailable(call(token))
    assert_unavailable(call(token))
    assert len(auth_server.introspected) == 2  # the failure was not kept
    assert auth_server.hits["/elsewhere"] == 0  # a redirect is not followed
    auth_server.introspection = "active"
    assert call(token).status_code == 200


def test_a_slow_introspection_endpoint_times_out_as_a_503(auth_server):
    auth_server.delay = 2.0  # the timeout is 0.5 s
    started = time.monotonic()
    assert_unavailable(call(auth_server.token()))
    assert time.monotonic() - started < 1.9


def test_wrong_introspection_credentials_are_a_503(auth_server, remote):
    remote(CLIENT_SECRET="wrong")
    assert_unavailable(call(auth_server.token()))


def test_when_the_server_is_down_cached_tokens_serve_and_new_ones_get_503(auth_server):
    cached = auth_server.token()
    assert call(cached).status_code == 200
    auth_server.stop()
    assert call(cached).status_code == 200
    response = call(auth_server.token())
    assert_unavailable(response)
    assert json.loads(response.content) == {
        "detail": "The authorization server is unavailable; retry later."
    }


def test_a_server_never_reached_is_a_503(settings):
    settings.TOKEN_LIFECYCLE_REMOTE = {
        "ISSUER": "http://127.0.0.1:9/auth",  # discard port: nothing listens
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
    }
    discovery.forget()
    token = jwt.encode(
        {"sub": "1"}, RSA_KEY, algorithm="RS256", headers={"typ": "at+jwt", "kid": RSA_KID}
    )
    assert_unavailable(call(token), retry_after=5)
    discovery.forget()


def test_tokens_and_secrets_stay_out_of_logs_and_answers(auth_server, caplog):
    token = auth_server.token()
    with caplog.at_level(logging.DEBUG):
        for behaviour in ("500", "garbage", "redirect", "inactive"):
            auth_server.introspection = behaviour
            response = call(token)
            assert token not in response.content.decode()
            assert token not in response["WWW-Authenticate"]
    for secret in (token, token.split(".")[2], CLIENT_SECRET):
        assert secret not in caplog.text


# -- HasScope -------------------------------------------------------------------


def test_has_scope_allows_a_token_with_the_scope(auth_server):
    assert call(auth_server.token(scope="reports"), view=Reports).status_code == 200


def test_has_scope_refuses_a_token_without_it_with_an_insufficient_scope_challenge(auth_server):
    response = call(auth_server.token(scope="read"), view=Reports)
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", error_description="The access token '
        'does not grant the scope this resource needs.", scope="reports"'
    )


def test_has_scope_of_requires_every_scope(auth_server):
    assert call(auth_server.token(scope="read"), view=Admin).status_code == 403
    assert call(auth_server.token(scope="admin read"), view=Admin).status_code == 200


def test_has_scope_without_credentials_is_a_401(auth_server):
    response = call(view=Reports)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_has_scope_on_a_view_naming_no_scope_refuses(auth_server):
    class Forgotten(Resource):
        permission_classes = [HasScope]

    assert call(auth_server.token(), view=Forgotten).status_code == 403


# -- Settings and isolation -------------------------------------------------------


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "TOKEN_LIFECYCLE_REMOTE is not set"),
        ([], "must be a dict"),
        ({"CLIENT_ID": "x", "CLIENT_SECRET": "hunter2-secret"}, "['ISSUER'] is required"),
        (
            {"ISSUER": "ftp://auth", "CLIENT_ID": "x", "CLIENT_SECRET": "hunter2-secret"},
            "['ISSUER'] must be an http(s) URL",
        ),
        (
            {"ISSUER": "https://a/auth?x=1", "CLIENT_ID": "x", "CLIENT_SECRET": "hunter2-secret"},
            "no query or fragment",
        ),
        (
            {
                "ISSUER": "https://a/auth",
                "CLIENT_ID": "x",
                "CLIENT_SECRET": "hunter2-secret",
                "CACHE_SECONDS": 301,
            },
            "['CACHE_SECONDS'] must be from 0 to 300",
        ),
        (
            {
                "ISSUER": "https://a/auth",
                "CLIENT_ID": "x",
                "CLIENT_SECRET": "hunter2-secret",
                "TIMEOUT_SECONDS": 0,
            },
            "['TIMEOUT_SECONDS'] must be a number",
        ),
        (
            {
                "ISSUER": "https://a/auth",
                "CLIENT_ID": "x",
                "CLIENT_SECRET": "hunter2-secret",
                "LEEWAY": 30,
            },
            "['LEEWAY'] must be a datetime.timedelta",
        ),
        (
            {
                "ISSUER": "https://a/auth",
                "CLIENT_ID": "x",
                "CLIENT_SECRET": "hunter2-secret",
                "CACHE_ALIAS": "x",
            },
            "['CACHE_ALIAS'] names no cache",
        ),
        (
            {"ISSUER": "https://a/auth", "CLIENT_ID": "", "CLIENT_SECRET": "hunter2-secret"},
            "['CLIENT_ID'] must be a non-empty string",
        ),
        (
            {
                "ISSUER": "https://a/auth",
                "CLIENT_ID": "x",
                "CLIENT_SECRET": "hunter2-secret",
                "TIMEOUT": 2,
            },
            "['TIMEOUT'] is not a known setting",
        ),
    ],
)
def test_settings_are_validated_with_messages_naming_the_key(settings, value, message):
    settings.TOKEN_LIFECYCLE_REMOTE = value
    with pytest.raises(ImproperlyConfigured) as error:
        remote_settings()
    assert message in str(error.value)
    if isinstance(value, dict) and "CLIENT_SECRET" in value:
        assert value["CLIENT_SECRET"] not in str(error.value).replace("CLIENT_SECRET", "")


def test_defaults(settings):
    settings.TOKEN_LIFECYCLE_REMOTE = {
        "ISSUER": "https://a/auth",
        "CLIENT_ID": "x",
        "CLIENT_SECRET": "hunter2-secret",
    }
    configured = remote_settings()
    assert configured.cache_seconds == 300 and configured.cache_alias == "default"
    assert configured.timeout_seconds == 2.0 and configured.leeway == timedelta(seconds=30)
    assert configured.expected_audience == "https://a/auth"


def test_key_types_cover_every_algorithm_the_server_signs_with():
    from token_lifecycle.conf import SIGNING_ALGORITHMS

    assert set(discovery.KEY_TYPES) == set(SIGNING_ALGORITHMS)


def test_importing_the_remote_package_touches_no_model():
    code = (
        "import sys, django; django.setup();"
        "import token_lifecycle.remote, token_lifecycle.permissions;"
        "from django.conf import settings;"
        "from django.urls import resolve; resolve('/api/resource/');"
        "assert 'token_lifecycle.models' not in sys.modules, 'models imported';"
        "assert not any(app.startswith('token_lifecycle') for app in settings.INSTALLED_APPS);"
        "print('ok')"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.resource_server.settings",
        "RESOURCE_SERVER_CLIENT_ID": "id",
        "RESOURCE_SERVER_CLIENT_SECRET": "secret",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_a_remembered_token_is_refused_once_its_key_leaves_the_jwks(auth_server, moved_clock):
    token = auth_server.token()
    assert call(token).status_code == 200
    auth_server.keys = []  # withdrawn (a compromised key)
    moved_clock.now += 901  # the JWKS copy expires (max-age=900)
    assert_invalid_token(call(token), "unknown key")
