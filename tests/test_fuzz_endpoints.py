"""Hostile input, generated: every endpoint against hypothesis-made requests.

``test_malformed_input.py`` and ``test_authentication.py`` hold the hand-written
cases; this module throws generated ones at every endpoint of docs/http-api.md (and the
example project's ``/api/whoami/``):

- bodies: random bytes, random JSON values, JSON objects and form bodies whose
  keys mix the real parameter names with random ones (repeated, huge, nested,
  non-UTF-8, NUL, lone surrogates), under valid, invalid and random content
  types;
- headers: random ``Authorization`` schemes and values, random bearer strings,
  Basic with random base64, the real client id with a random secret, mutations
  of real tokens, random client addresses;
- forged JWTs: base64url segments whose header picks a wrong ``alg`` (``none``,
  HMAC, RS512, ES512, PS256...), a ``kid`` that is a path, a URL, NUL,
  non-ASCII or very long, huge, nested or non-ASCII claims, signed with a random
  key of each type, HMAC'd with the public key, or signed with the app's own
  key around claims that name no pair.

Properties (docs/http-api.md): no request gets a 5xx. The OAuth endpoints answer a 4xx
in the RFC 6749 §5.2 shape (401 with a Basic challenge, 429 ``slow_down`` with
Retry-After) or one of their 200 shapes; the bearer endpoints answer 401 with
an RFC 6750 Bearer challenge (``error="invalid_token"`` when a bearer token was
presented); the discovery documents answer 200. A refused request changes no
TokenPair, Client or SigningKey row.

The password-failure limits stay on (10/min per username, 50/min per address):
each example comes from a random address, and a 429 ``slow_down`` is one of
the accepted refusals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import quote_plus, urlencode

import jwt
import pytest
from conftest import FORM, PASSWORD, basic_auth
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from token_lifecycle import keys
from token_lifecycle.models import Client, SigningKey, TokenPair
from token_lifecycle.reasons import RefreshRefusal

JSON = "application/json"
TOKEN_URL = "/auth/token/"
REVOKE_URL = "/auth/token/revoke/"
INTROSPECT_URL = "/auth/token/introspect/"
OAUTH_ENDPOINTS = [TOKEN_URL, REVOKE_URL, INTROSPECT_URL]
BEARER_ENDPOINTS = [
    ("GET", "/auth/pairs/"),
    ("POST", "/auth/logout/"),
    ("POST", "/auth/logout-all/"),
    ("GET", "/api/whoami/"),
]
DISCOVERY_ENDPOINTS = [
    "/auth/.well-known/jwks.json",
    "/auth/.well-known/oauth-authorization-server",
]
OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "slow_down",
}
PARAMETER_NAMES = [
    "grant_type",
    "client_id",
    "client_secret",
    "username",
    "password",
    "refresh_token",
    "scope",
    "token",
    "token_type_hint",
    "access_token",
    "code",
    "redirect_uri",
]

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz(examples: int):
    return settings(FUZZ, max_examples=examples)


# -- The world a request is sent into ---------------------------------------------------------


@dataclass
class World:
    """Real credentials the strategies mix into hostile requests."""

    client_id: str
    secret: str
    public_client_id: str
    scoped_client_id: str
    scoped_secret: str
    username: str
    user_pk: int
    access_token: str
    refresh_token: str
    pair_id: str
    kid: str
    algorithm: str
    issuer: str = "http://testserver/auth"
    strategies: Strategies = field(init=False)

    def __post_init__(self) -> None:
        self.strategies = Strategies(self)


@pytest.fixture
def world(login, oauth_client, make_client, user) -> World:
    client, secret = oauth_client
    public, _ = make_client("mobile", public=True)
    scoped, scoped_secret = make_client("scoped", scope="read write")
    issued = login()
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    key = keys.signing_key()
    return World(
        client_id=client.client_id,
        secret=secret,
        public_client_id=public.client_id,
        scoped_client_id=scoped.client_id,
        scoped_secret=scoped_secret,
        username=user.get_username(),
        user_pk=user.pk,
        access_token=issued["access_token"],
        refresh_token=issued["refresh_token"],
        pair_id=claims["jti"],
        kid=key.kid,
        algorithm=key.algorithm,
    )


def snapshot() -> tuple:
    """Every TokenPair, Client and SigningKey row, all columns."""
    return tuple(
        list(model.objects.order_by("pk").values_list())
        for model in (TokenPair, Client, SigningKey)
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    content_type: str = FORM
    headers: dict = field(default_factory=dict)

    def send(self, client):
        return client.generic(
            self.method, self.path, self.body, content_type=self.content_type, **self.headers
        )


# -- Random keys, one of each type -------------------------------------------------------------


@cache
def random_keys() -> dict:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec256": ec.generate_private_key(ec.SECP256R1()),
        "ec521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


ALGORITHMS = jwt.algorithms.get_default_algorithms()
#: (signer, algorithm that computes the signature); the header's alg is drawn separately.
SIGNERS = [
    ("none", None),
    ("garbage", None),
    ("hmac-random", "HS256"),
    ("hmac-public-pem", "HS256"),
    ("hmac-public-jwk", "HS512"),
    ("rsa", "RS256"),
    ("rsa", "RS512"),
    ("rsa", "PS256"),
    ("ec256", "ES256"),
    ("ec521", "ES512"),
    ("ed25519", "EdDSA"),
    ("real", None),  # the app's own key: only the claims can be wrong
]
WRONG_ALGS = [
    "none",
    "None",
    "NONE",
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS512",
    "EdDSA",
    "ES256K",
    "",
]
HOSTILE_KIDS = [
    "../../etc/passwd",
    "../../../../../../dev/null",
    "..%2F..%2Fetc%2Fpasswd",
    "/etc/passwd",
    "http://attacker.example/jwks.json",
    "https://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "\x00",
    "kid\x00.pem",
    "' OR '1'='1",
    "é",
    "鍵🔑",
    "\uff21\uff22\uff23",  # fullwidth ABC
]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signature(signer: str, algorithm: str | None, signing_input: bytes, world: World, noise):
    if signer == "none":
        return b""
    if signer == "garbage":
        return noise
    if signer == "real":
        key = keys.signing_key()
        return ALGORITHMS[key.algorithm].sign(signing_input, key.private_key)
    if signer == "hmac-random":
        return hmac.new(noise or b"k", signing_input, hashlib.sha256).digest()
    public_key = keys.verification_key(world.kid).public_key
    if signer == "hmac-public-pem":
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hmac.new(pem, signing_input, hashlib.sha256).digest()
    if signer == "hmac-public-jwk":
        jwk = SigningKey.objects.get(kid=world.kid).public_jwk
        return hmac.new(json.dumps(jwk).encode(), signing_input, hashlib.sha512).digest()
    return ALGORITHMS[algorithm].sign(signing_input, random_keys()[signer])


# -- Strategies --------------------------------------------------------------------------------

LATIN1 = st.characters(max_codepoint=255)
#: What a WSGI server can hand over in a header: latin-1, no line breaks.
HEADER_TEXT = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=60)
#: Any code point, lone surrogates included (JSON can carry them, UTF-8 cannot).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
TEXT = st.text(max_size=40)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


def repeated(chars: str, low: int, high: int):
    """A long string, built rather than generated (generating 20 KB per example is slow)."""
    return st.builds(
        lambda char, count: char * count, st.sampled_from(chars), st.integers(low, high)
    )


def nested(depth_low: int, depth_high: int, *, closed: bool | None = None):
    """JSON text nested ``depth`` levels deep, closed or not (``None``: either)."""

    def build(opener: str, depth: int, is_closed: bool) -> str:
        closer = {"[": "]", '{"a":': "}"}[opener]
        return opener * depth + ("1" + closer * depth if is_closed else "")

    return st.builds(
        build,
        st.sampled_from(["[", '{"a":']),
        st.integers(depth_low, depth_high),
        st.booleans() if closed is None else st.just(closed),
    )


def encode_json(value, ensure_ascii: bool, allow_nan: bool = True) -> bytes:
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=allow_nan).encode(
        "utf-8", "surrogatepass"
    )


def json_object_text(pairs: list[tuple[str, object]], ensure_ascii: bool) -> bytes:
    """A JSON object written by hand, so that a key may repeat."""

    def dump(value) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii)

    members = (f"{dump(key)}:{dump(value)}" for key, value in pairs)
    return ("{" + ",".join(members) + "}").encode("utf-8", "surrogatepass")


def reencode(utf8: bytes, codec: str) -> bytes:
    return utf8.decode("utf-8", "surrogatepass").encode(codec, "surrogatepass")


def percent(text: str) -> bytes:
    return quote_plus(text, errors="surrogatepass").encode()


class Strategies:
    """The strategies of one test's world (real ids, secrets and tokens mixed in)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.jwts = self._jwts()
        self.mutated_tokens = self._mutated_tokens()
        self.values = self._values(with_real_tokens=True)
        self.json_values = st.one_of(
            self.values, JSON_VALUES, nested(1, 50, closed=True).map(json.loads)
        )
        self.names = st.one_of(st.sampled_from(PARAMETER_NAMES), ANY_TEXT)

    def _real_values(self, *, with_real_tokens: bool):
        world = self.world
        real = [world.client_id, world.secret, world.public_client_id, world.username, PASSWORD]
        if with_real_tokens:
            real.append(world.refresh_token)
        return st.sampled_from(
            [
                *real,
                *("client_credentials", "password", "refresh_token", "access_token", "rt_"),
                *("read", "write", "read write", "admin", "read\u3000write", " "),
            ]
        )

    def _values(self, *, with_real_tokens: bool, clean: bool = False):
        """A parameter value: real values, tokens, and (unless ``clean``) random text with
        lone surrogates and NULs, and values over the length limit."""
        real = self._real_values(with_real_tokens=with_real_tokens)
        tokens = [self.jwts, self.mutated_tokens]
        if with_real_tokens:
            tokens.append(st.just(self.world.access_token))
        if clean:
            text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
            return st.one_of(real, real, real, text.filter(bool), *tokens)
        return st.one_of(ANY_TEXT, real, *tokens, repeated("aé\x00%=&+鍵", 1000, 6000))

    def values_for(self, path: str, *, clean: bool = False):
        """Parameter values for ``path``; never a real token for the revocation endpoint,
        whose 200 must then mean that nothing changed."""
        return self._values(with_real_tokens=path != REVOKE_URL, clean=clean)

    # Forged and mutated tokens ---------------------------------------------------------------

    def _jwts(self):
        world = self.world
        times = st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.integers(min_value=1_600_000_000, max_value=2_000_000_000),
            st.floats(allow_nan=True),
            st.booleans(),
            ANY_TEXT,
            st.none(),
        )
        omit = st.just(None)

        @st.composite
        def forged(draw) -> str:
            signer, algorithm = draw(st.sampled_from(SIGNERS))
            if signer == "real":
                alg = draw(st.sampled_from([world.algorithm, world.algorithm, *WRONG_ALGS]))
            elif algorithm:
                alg = draw(st.sampled_from([algorithm, *WRONG_ALGS]))
            else:
                alg = draw(st.sampled_from(WRONG_ALGS))
            header = {
                "alg": draw(st.one_of(st.just(alg), st.just(alg), JSON_VALUES, omit)),
                "typ": draw(
                    st.sampled_from(["at+jwt", "application/at+jwt", "JWT", "AT+JWT"])
                    | ANY_TEXT
                    | omit
                ),
                "kid": draw(
                    st.one_of(
                        st.just(world.kid),
                        st.sampled_from(HOSTILE_KIDS),
                        repeated("k/.é\x00", 65, 5000),
                        ANY_TEXT,
                        JSON_VALUES,
                        omit,
                    )
                ),
            }
            header = {name: value for name, value in header.items() if value is not None}
            header.update(
                draw(
                    st.dictionaries(
                        st.sampled_from(["jku", "x5u", "jwk", "x5c", "crit", "cty", "b64", "zip"])
                        | ANY_TEXT,
                        JSON_VALUES,
                        max_size=2,
                    )
                )
            )
            # A real key never signs a pair that exists: that token would simply be valid.
            pair_ids = st.uuids().map(str) | ANY_TEXT | st.integers()
            if signer != "real":
                pair_ids = pair_ids | st.just(world.pair_id)
            claims = {
                "iss": draw(st.one_of(st.just(world.issuer), ANY_TEXT, JSON_VALUES, omit)),
                "sub": draw(st.one_of(st.just(str(world.user_pk)), ANY_TEXT, st.integers(), omit)),
                "client_id": draw(st.one_of(st.just(world.client_id), ANY_TEXT, omit)),
                "jti": draw(pair_ids | omit),
                "iat": draw(times),
                "exp": draw(times),
                "nbf": draw(times),
                "aud": draw(ANY_TEXT | st.lists(ANY_TEXT, max_size=2) | omit),
                "scope": draw(ANY_TEXT | omit),
            }
            claims = {name: value for name, value in claims.items() if value is not None}
            claims.update(
                draw(
                    st.dictionaries(
                        ANY_TEXT,
                        JSON_VALUES
                        | repeated("xé鍵\x00", 100, 6000)
                        | nested(1, 200, closed=True).map(json.loads),
                        max_size=3,
                    )
                )
            )
            ensure_ascii = draw(st.booleans())
            header_json = encode_json(header, ensure_ascii)
            payload = draw(
                st.one_of(
                    st.just(encode_json(claims, ensure_ascii)),
                    st.just(encode_json(claims, ensure_ascii)),
                    JSON_VALUES.map(lambda value: encode_json(value, ensure_ascii)),
                    st.binary(max_size=40),
                )
            )
            signing_input = f"{b64url(header_json)}.{b64url(payload)}".encode()
            noise = draw(st.binary(max_size=300))
            signed = signature(signer, algorithm, signing_input, world, noise)
            token = f"{signing_input.decode()}.{b64url(signed)}"
            shape = draw(st.sampled_from(["jws"] * 6 + ["extra-segment", "no-signature", "jwe"]))
            if shape == "extra-segment":
                token += "." + b64url(noise)
            elif shape == "no-signature":
                token = signing_input.decode() + "."
            elif shape == "jwe":
                token = ".".join([b64url(header_json), "", b64url(noise), b64url(payload), ""])
            return token

        return forged()

    def _mutated_tokens(self):
        """Real tokens made invalid: a changed signing input, a cut, an added segment."""
        world = self.world

        @st.composite
        def mutated(draw) -> str:
            token = draw(st.sampled_from([world.access_token, world.refresh_token]))
            if token.count(".") == 2:
                header, payload, signed = token.split(".")
                how = draw(st.sampled_from(["header", "payload", "cut", "segment", "swap"]))
                if how == "cut":
                    return token[: draw(st.integers(0, len(token) - len(signed) - 1))]
                if how == "segment":
                    return f"{token}.{draw(st.text('ABCabc123-_', min_size=1, max_size=8))}"
                if how == "swap":
                    return f"{payload}.{header}.{signed}"
                part = header if how == "header" else payload
                index = draw(st.integers(0, len(part) - 1))
                replacement = draw(
                    st.sampled_from("AQgw-_xé\x00").filter(lambda c: c != part[index])
                )
                changed = part[:index] + replacement + part[index + 1 :]
                return ".".join(
                    [changed, payload, signed] if how == "header" else [header, changed, signed]
                )
            index = draw(st.integers(len("rt_"), len(token) - 1))
            replacement = draw(st.sampled_from("AQgw-_").filter(lambda c: c != token[index]))
            return token[:index] + replacement + token[index + 1 :]

        return mutated()

    # Bodies and content types -----------------------------------------------------------------

    def form_bodies(self, values=None):
        values = self.values if values is None else values
        key = st.one_of(st.sampled_from(PARAMETER_NAMES).map(str.encode), self.names.map(percent))
        value = st.one_of(
            values.map(percent),
            values.map(lambda text: text.encode("utf-8", "surrogatepass")),
            st.binary(max_size=30),
        )
        pair = st.one_of(
            st.builds(lambda k, v: k + b"=" + v, key, value),
            key,  # a name without "="
            st.builds(lambda k, v: k + b"=" + v, st.just(b"grant_type"), value),
        )
        separator = st.sampled_from([b"&", b"&", b"&", b";", b"&&", b"=&"])
        return st.builds(
            lambda pairs, sep: sep.join(pairs), st.lists(pair, max_size=40), separator
        )

    def json_bodies(self, values=None):
        values = self.json_values if values is None else values
        ensure_ascii = st.booleans()
        objects = st.builds(
            json_object_text,
            st.lists(st.tuples(self.names, values), max_size=40),
            ensure_ascii,
        )
        return st.one_of(
            objects,
            objects,
            st.builds(encode_json, JSON_VALUES, ensure_ascii),
            nested(1, 20_000).map(str.encode),
            st.builds(reencode, objects, st.sampled_from(["utf-16", "utf-16-le", "utf-32"])),
        )

    def plausible_params(self, path: str):
        """Well-formed parameters (unique names, string values, those the grant or endpoint
        requires present, often real), so that examples get past parsing into client
        authentication, the grants, revocation and introspection."""
        world = self.world
        values = self.values_for(path, clean=True)
        optional = {name: values for name in PARAMETER_NAMES}
        if path != TOKEN_URL:
            optional.pop("token")
            optional["token_type_hint"] = st.sampled_from(["access_token", "refresh_token"])
            tokens = values if path == REVOKE_URL else values | self.real_tokens()
            return st.fixed_dictionaries({"token": tokens}, optional=optional)
        by_grant = {
            "client_credentials": {},
            "password": {
                "username": st.just(world.username) | values,
                "password": st.just(PASSWORD) | values,
            },
            "refresh_token": {"refresh_token": self.real_tokens() | values},
        }
        return st.sampled_from(sorted(by_grant)).flatmap(
            lambda grant: st.fixed_dictionaries(
                {"grant_type": st.just(grant), **by_grant[grant]},
                optional={
                    name: strategy
                    for name, strategy in optional.items()
                    if name not in by_grant[grant] and name != "grant_type"
                },
            )
        )

    def real_tokens(self):
        return st.sampled_from([self.world.access_token, self.world.refresh_token])

    def bodies(self, values=None):
        return st.one_of(
            self.form_bodies(values),
            self.json_bodies(),
            st.binary(max_size=500),
            repeated("a=&é", 10_000, 40_000).map(lambda text: text.encode()),
            st.just(b""),
        )

    @staticmethod
    def content_types():
        valid = st.sampled_from(
            [
                FORM,
                JSON,
                f"{FORM}; charset=utf-8",
                f"{JSON}; charset=UTF-8",
                f'{FORM};charset="utf-8"',
                "Application/JSON",
                f"{FORM}; charset=utf8",
            ]
        )
        invalid = st.sampled_from(
            [
                "text/plain",
                "multipart/form-data; boundary=xyz",
                "application/octet-stream",
                "application/xml",
                f"{JSON}; charset=latin-1",
                f"{FORM}; charset=utf-16",
                "application/merge-patch+json",
                "",
            ]
        )
        with_parameters = st.builds(
            lambda base, params: base + "".join(f"; {name}={value}" for name, value in params),
            st.sampled_from([FORM, JSON]),
            st.lists(st.tuples(HEADER_TEXT, HEADER_TEXT), min_size=1, max_size=3),
        )
        return st.one_of(valid, valid, invalid, with_parameters, HEADER_TEXT)

    # Headers ----------------------------------------------------------------------------------

    def authorizations(self, *, for_bearer: bool):
        world = self.world
        schemes = (
            st.sampled_from(
                [
                    "Basic",
                    "basic",
                    "BASIC",
                    "Bearer",
                    "bearer",
                    "BEARER",
                    "Digest",
                    "Token",
                    "DPoP",
                ]
            )
            | HEADER_TEXT
        )
        separators = st.sampled_from([" ", " ", " ", "  ", "\t", "", " \x00"])
        random_basic = st.builds(
            lambda raw: "Basic " + base64.b64encode(raw).decode(), st.binary(max_size=80)
        )
        basic_pairs = st.builds(
            lambda client_id, secret: basic_auth(client_id, secret),
            st.one_of(st.just(world.client_id), st.just(world.public_client_id), TEXT),
            st.one_of(st.just(world.secret), st.just(""), TEXT),
        )
        credentials = st.one_of(
            HEADER_TEXT,
            st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),
            self.jwts,
            self.mutated_tokens,
            st.just(world.refresh_token),
            repeated("A=.!", 8000, 100_000),
        )
        if not for_bearer:
            credentials = credentials | st.just(world.access_token)
        return st.one_of(
            st.builds(lambda s, sep, c: f"{s}{sep}{c}", schemes, separators, credentials),
            random_basic,
            basic_pairs,
            self.jwts.map(lambda token: f"Bearer {token}"),
        )

    @staticmethod
    def client_addresses():
        return st.ip_addresses().map(str)

    def extra_headers(self, *, for_bearer: bool):
        """Authorization (or none), a random client address, maybe a forwarded-for header."""
        return st.fixed_dictionaries(
            {"REMOTE_ADDR": self.client_addresses()},
            optional={
                "HTTP_AUTHORIZATION": self.authorizations(for_bearer=for_bearer),
                "HTTP_X_FORWARDED_FOR": HEADER_TEXT,
            },
        )

    def valid_client_auth(self):
        """Real client credentials, as Basic or in the body, so that a body reaches the grants."""
        world = self.world
        return st.sampled_from(
            [
                ("basic", (world.client_id, world.secret)),
                ("basic", (world.scoped_client_id, world.scoped_secret)),
                ("body", {"client_id": world.client_id, "client_secret": world.secret}),
                ("body", {"client_id": world.public_client_id}),
                ("none", None),
            ]
        )


# -- Assertions ---------------------------------------------------------------------------------


def outcome(response) -> None:
    """Counted in ``--hypothesis-show-statistics``: which answers the examples reached."""
    label = str(response.status_code)
    if response.get("Content-Type", "").startswith("application/json") and response.content:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            label += f" {body['error']}"
    event(label)


def assert_not_server_error(response, request: Request) -> None:
    assert response.status_code < 500, (response.status_code, request, response.content[:500])


def assert_oauth_answer(response, path: str, request: Request) -> None:
    """A 200 shape of the endpoint or an RFC 6749 §5.2 error."""
    assert_not_server_error(response, request)
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"
    if response.status_code == 200:
        if path == TOKEN_URL:
            body = response.json()
            assert {"access_token", "token_type", "expires_in", "refresh_token"} <= set(body)
            assert body["token_type"] == "Bearer"
        elif path == REVOKE_URL:
            assert response.content == b""
        else:
            body = response.json()
            assert isinstance(body.get("active"), bool), body
            if not body["active"]:
                assert body == {"active": False}
        return
    assert response.status_code in (400, 401, 413, 429), (response.status_code, request)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    # RFC 6749 §5.2 allows extra members: a refused refresh says why (test_refusal_reasons.py).
    assert set(body) - {"reason"} == {"error", "error_description"}, body
    if "reason" in body:
        assert body["error"] == "invalid_grant", body
        assert body["reason"] in {reason.value for reason in RefreshRefusal}, body
    assert body["error"] in OAUTH_ERRORS, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    if response.status_code == 401:
        assert body["error"] == "invalid_client"
        assert response["WWW-Authenticate"] == 'Basic realm="api"'
    if response.status_code == 413:
        assert body["error"] == "invalid_request"
    if response.status_code == 429:
        assert body["error"] == "slow_down"
        assert int(response["Retry-After"]) >= 1


def assert_bearer_refusal(response, request: Request) -> None:
    """401 with an RFC 6750 §3 challenge; ``invalid_token`` when a bearer token was sent."""
    assert_not_server_error(response, request)
    assert response.status_code == 401, (response.status_code, request, response.content[:300])
    challenge = response["WWW-Authenticate"]
    authorization = request.headers.get("HTTP_AUTHORIZATION", "")
    scheme, _, _ = authorization.partition(" ")
    if scheme.lower() == "bearer":
        assert challenge.startswith(
            'Bearer realm="api", error="invalid_token", error_description='
        ), challenge
    else:
        assert challenge == 'Bearer realm="api"', challenge
    if response["Content-Type"].startswith("application/json"):
        assert set(response.json()) == {"detail"}


def format_override(query: list[tuple[str, str]]) -> str | None:
    """DRF's ``?format=`` override: an unknown format is a 404, before authentication."""
    values = [value for name, value in query if name == "format"]
    return values[-1] if values and values[-1] not in ("", "json") else None


def assert_unchanged(before: tuple, request: Request, response) -> None:
    assert snapshot() == before, (
        "a refused request changed the database",
        request,
        response.status_code,
        response.content[:300],
    )


# -- OAuth endpoints: bodies and content types --------------------------------------------------


@pytest.fixture
def fuzz_client(client):
    """Django's test client: an exception in a view fails the example with its traceback."""
    return client


@pytest.mark.parametrize("path", OAUTH_ENDPOINTS, ids=["token", "revoke", "introspect"])
@fuzz(examples=120)
@given(data=st.data())
def test_oauth_endpoint_bodies(fuzz_client, world, path, data):
    """Random bodies under random content types, most with real client credentials."""
    strategies = world.strategies
    how, credentials = data.draw(strategies.valid_client_auth(), label="client_auth")
    headers = {"REMOTE_ADDR": data.draw(strategies.client_addresses(), label="address")}
    if how == "basic":
        headers["HTTP_AUTHORIZATION"] = basic_auth(*credentials)
    if data.draw(st.booleans(), label="well-formed"):
        params = data.draw(strategies.plausible_params(path), label="params")
        if how != "none":
            params.pop("client_id", None)
            params.pop("client_secret", None)
        if how == "body":
            params.update(credentials)
        if data.draw(st.booleans(), label="as JSON"):
            body, content_type = encode_json(params, data.draw(st.booleans())), JSON
        else:
            body, content_type = urlencode(params, errors="surrogatepass").encode(), FORM
    else:
        body = data.draw(strategies.bodies(strategies.values_for(path)), label="body")
        content_type = data.draw(strategies.content_types(), label="content_type")
        if how == "body" and content_type.split(";")[0].strip().lower() == FORM:
            prefix = urlencode(credentials).encode()
            body = prefix + (b"&" + body if body else b"")
    request = Request("POST", path, body, content_type, headers)
    before = snapshot()

    response = request.send(fuzz_client)
    outcome(response)

    assert_oauth_answer(response, path, request)
    if response.status_code != 200 or path != TOKEN_URL:
        assert_unchanged(before, request, response)


@pytest.mark.parametrize("path", OAUTH_ENDPOINTS, ids=["token", "revoke", "introspect"])
@fuzz(examples=80)
@given(data=st.data())
def test_oauth_endpoint_headers(fuzz_client, world, path, data):
    """Random Authorization headers (schemes, Basic, bearer strings) on a plausible body."""
    strategies = world.strategies
    grant = data.draw(
        st.sampled_from(
            [
                b"grant_type=client_credentials",
                b"grant_type=password&username=alice&password=wrong",
                b"grant_type=refresh_token&refresh_token=rt_unknown",
                b"token=rt_unknown",
            ]
        )
        | strategies.form_bodies(strategies.values_for(path)),
        label="body",
    )
    headers = data.draw(strategies.extra_headers(for_bearer=False), label="headers")
    request = Request("POST", path, grant, FORM, headers)
    before = snapshot()

    response = request.send(fuzz_client)
    outcome(response)

    assert_oauth_answer(response, path, request)
    if response.status_code != 200 or path != TOKEN_URL:
        assert_unchanged(before, request, response)


@pytest.mark.parametrize(
    "path, parameter",
    [(TOKEN_URL, "refresh_token"), (REVOKE_URL, "token"), (INTROSPECT_URL, "token")],
    ids=["token", "revoke", "introspect"],
)
@fuzz(examples=80)
@given(data=st.data())
def test_forged_jwts_as_oauth_parameters(fuzz_client, world, path, parameter, data):
    """A forged JWT where a refresh token or a token to revoke or introspect belongs."""
    token = data.draw(world.strategies.jwts | world.strategies.mutated_tokens, label="token")
    encoding = data.draw(st.sampled_from(["form", "json"]), label="encoding")
    params = {parameter: token}
    if path == TOKEN_URL:
        params["grant_type"] = "refresh_token"
    if encoding == "json":
        body, content_type = encode_json(params, ensure_ascii=True), JSON
    else:
        body, content_type = urlencode(params, errors="surrogatepass").encode(), FORM
    headers = {"HTTP_AUTHORIZATION": basic_auth(world.client_id, world.secret)}
    request = Request("POST", path, body, content_type, headers)
    before = snapshot()

    response = request.send(fuzz_client)
    outcome(response)

    assert_oauth_answer(response, path, request)
    if path == TOKEN_URL:  # never a pair; 413 for the largest forgeries
        assert response.status_code in (400, 413), response.content[:300]
        assert response.json()["error"] in ("invalid_grant", "invalid_request")
    elif path == INTROSPECT_URL and response.status_code == 200:
        assert response.json() == {"active": False}
    assert_unchanged(before, request, response)


# -- Bearer endpoints ----------------------------------------------------------------------------


BEARER_IDS = ["pairs", "logout", "logout-all", "whoami"]


@pytest.mark.parametrize("method, path", BEARER_ENDPOINTS, ids=BEARER_IDS)
@fuzz(examples=80)
@given(data=st.data())
def test_bearer_endpoints_refuse_forged_jwts(fuzz_client, world, method, path, data):
    token = data.draw(world.strategies.jwts, label="token")
    request = Request(method, path, headers={"HTTP_AUTHORIZATION": f"Bearer {token}"})
    before = snapshot()

    response = request.send(fuzz_client)
    outcome(response)

    assert_bearer_refusal(response, request)
    assert_unchanged(before, request, response)


@pytest.mark.parametrize("method, path", BEARER_ENDPOINTS, ids=BEARER_IDS)
@fuzz(examples=80)
@given(data=st.data())
def test_bearer_endpoints_refuse_hostile_requests(fuzz_client, world, method, path, data):
    """Random Authorization headers, bodies, content types and query strings (a real access
    token in the query string, RFC 6750 §2.3, authenticates nobody)."""
    strategies = world.strategies
    headers = data.draw(strategies.extra_headers(for_bearer=True), label="headers")
    query = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["access_token", "token", "format"]) | ANY_TEXT,
                st.just(world.access_token) | ANY_TEXT,
            ),
            max_size=3,
        ),
        label="query",
    )
    method = data.draw(st.sampled_from([method, method, method, "OPTIONS", "PUT", "DELETE"]))
    body = data.draw(strategies.bodies() | st.just(b""), label="body")
    content_type = data.draw(strategies.content_types(), label="content_type")
    url = path + ("?" + urlencode(query, errors="surrogatepass") if query else "")
    request = Request(method, url, body, content_type, headers)
    before = snapshot()

    response = request.send(fuzz_client)
    outcome(response)

    if format_override(query) and response.status_code == 404:
        pass  # DRF's ?format= (unless Django decoded the query string with the body's charset)
    else:
        assert_bearer_refusal(response, request)
    assert_unchanged(before, request, response)


# -- Discovery documents ------------------------------------------------------------------------


@pytest.mark.parametrize("path", DISCOVERY_ENDPOINTS, ids=["jwks", "metadata"])
@fuzz(examples=40)
@given(data=st.data())
def test_discovery_documents_ignore_hostile_requests(fuzz_client, world, path, data):
    strategies = world.strategies
    headers = data.draw(strategies.extra_headers(for_bearer=False), label="headers")
    body = data.draw(strategies.bodies() | st.just(b""), label="body")
    content_type = data.draw(strategies.content_types(), label="content_type")
    query = data.draw(st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=3), label="query")
    url = path + ("?" + urlencode(query, errors="surrogatepass") if query else "")
    request = Request("GET", url, body, content_type, headers)
    before = snapshot()

    response = request.send(fuzz_client)
    outcome(response)

    assert_not_server_error(response, request)
    if format_override(query) and response.status_code == 404:
        return
    assert response.status_code == 200, (response.status_code, request)
    body = response.json()
    if path.endswith("jwks.json"):
        assert [key["kid"] for key in body["keys"]] == [world.kid]
        assert all("d" not in key for key in body["keys"])
    else:
        assert body["issuer"] == world.issuer
    assert_unchanged(before, request, response)


def test_the_world_fixture_holds_working_credentials(world, whoami):
    """The strategies' real values are real: a fuzz run that never reaches them proves little."""
    assert whoami(world.access_token).status_code == 200
    assert get_user_model().objects.get(pk=world.user_pk).check_password(PASSWORD)
