"""Hostile and malformed input: always a 4xx in the RFC shape, never a 500, never a write.

docs/http-api.md: "No input makes any endpoint answer 500". Each case is sent next to a
client, a user and an existing pair, and the token pairs are compared before
and after: a refusal must not issue, rotate or revoke anything.

Most token-endpoint cases carry valid HTTP Basic client credentials, so the
malformed part of the request is the only thing wrong with it: a success would
show up as a 200 and as a new row.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest
from conftest import FORM, basic_auth
from django.db import connection
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from token_lifecycle import keys
from token_lifecycle.models import TokenPair

TOKEN_URL = "/auth/token/"
WHOAMI = "/api/whoami/"
JSON = "application/json"
HUNDRED_KB = 100 * 1024
CLIENT_ID = b"@CLIENT_ID@"  # replaced with the real client id when sent
ON_POSTGRESQL = connection.vendor == "postgresql"


# -- Fixtures and helpers ---------------------------------------------------------


@pytest.fixture
def existing(login) -> dict:
    """A user, a client and one issued pair: the state no refusal may change."""
    return login()


def pairs_snapshot() -> list[tuple]:
    rows = TokenPair.objects.order_by("id").values_list(
        "id", "rotated_at", "revoked_at", "refresh_grace_ends_at"
    )
    return list(rows)


@pytest.fixture
def unchanged_database(existing):
    """Asserts after the test that no TokenPair row was added, removed or changed."""
    before = pairs_snapshot()
    assert len(before) == 1
    yield
    after = pairs_snapshot()
    assert TokenPair.objects.count() == len(before)
    assert after == before


def assert_oauth_error(response, status: int, error: str) -> None:
    """The RFC 6749 §5.2 shape with the expected status and code."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"].strip()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def json_object(**params) -> bytes:
    return json.dumps(params).encode()


def form_params(count: int) -> bytes:
    return b"&".join(b"p%d=1" % number for number in range(count))


def json_keys(count: int) -> bytes:
    return json.dumps({f"p{number}": "1" for number in range(count)}).encode()


@dataclass(frozen=True)
class Body:
    """A raw token-endpoint request; ``basic`` adds the client's valid Basic credentials."""

    content: bytes
    content_type: str = FORM
    basic: bool = True
    status: int = 400
    error: str = "invalid_request"


def case(case_id: str, *args, marks=(), **kwargs):
    return pytest.param(Body(*args, **kwargs), id=case_id, marks=marks)


@pytest.fixture
def send(client, oauth_client):
    """POST a :class:`Body` to the token endpoint as raw bytes."""
    client_obj, secret = oauth_client

    def post(body: Body, **extra):
        if body.basic:
            extra.setdefault("HTTP_AUTHORIZATION", basic_auth(client_obj.client_id, secret))
        content = body.content.replace(CLIENT_ID, client_obj.client_id.encode())
        return client.generic("POST", TOKEN_URL, content, content_type=body.content_type, **extra)

    return post


BINARY_GARBAGE = bytes(range(256)) * 4
VALID_GRANT = b"grant_type=client_credentials"


# -- Form bodies ------------------------------------------------------------------------

FORM_CASES = [
    case("non-utf8-value", b"grant_type=password&username=\xff\xfe&password=x"),
    case("non-utf8-name", b"\xff=1&grant_type=client_credentials"),
    case("latin1-value", "grant_type=password&username=é&password=x".encode("latin-1")),
    case("percent-ff", b"grant_type=password&username=%FF&password=x"),
    case("percent-ff-in-name", b"%FF=1&grant_type=client_credentials"),
    case("percent-overlong-utf8", b"grant_type=password&username=%C0%AF&password=x"),
    case("percent-encoded-surrogate", b"grant_type=password&username=%ED%A0%80&password=x"),
    case("nul-in-username", b"grant_type=password&username=alice%00&password=x"),
    case("nul-in-password", b"grant_type=password&username=alice&password=x%00y"),
    case("nul-in-grant-type", b"grant_type=client_credentials%00"),
    case("nul-in-refresh-token", b"grant_type=refresh_token&refresh_token=rt_abc%00def"),
    case(
        "nul-in-client-id",
        b"grant_type=client_credentials&client_id=%00&client_secret=x",
        basic=False,
    ),
    case(
        "nul-in-client-secret",
        b"grant_type=client_credentials&client_id=" + CLIENT_ID + b"&client_secret=cs_%00",
        basic=False,
    ),
    case("raw-nul-byte", VALID_GRANT + b"\x00"),
    case("value-too-long", b"grant_type=password&password=x&username=" + b"a" * 5000),
    case("33-parameters", form_params(33)),
    case("1000-parameters", form_params(1000)),
    case("binary-garbage", BINARY_GARBAGE),
    case("only-separators", b"&&&===&&;;"),
    case("repeated-grant", VALID_GRANT + b"&" + VALID_GRANT),
    case("over-the-size-limit", VALID_GRANT + b"&pad=" + b"a" * 20_000, status=413),
]


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize("body", FORM_CASES)
def test_malformed_form_body(send, body):
    assert_oauth_error(send(body), body.status, body.error)


# -- JSON bodies ---------------------------------------------------------------------------


def escaped(template: str) -> bytes:
    """A JSON text written by hand, so it can hold escapes json.dumps would not produce."""
    return template.encode()


JSON_CASES = [
    case("invalid-json", b'{"grant_type": "client_credentials",', JSON),
    case("trailing-data", b'{"grant_type": "client_credentials"} {}', JSON),
    case("single-quotes", b"{'grant_type': 'client_credentials'}", JSON),
    case("list", b'[["grant_type", "client_credentials"]]', JSON),
    case("empty-list", b"[]", JSON),
    case("string", b'"grant_type=client_credentials"', JSON),
    case("number", b"42", JSON),
    case("huge-number", b"1" + b"0" * 5000, JSON),
    case("infinity", b"1e999", JSON),
    case("nan", b"NaN", JSON),
    case("null", b"null", JSON),
    case("true", b"true", JSON),
    case("grant-type-int", json_object(grant_type=1), JSON),
    case("grant-type-float", json_object(grant_type=1.5), JSON),
    case("grant-type-list", json_object(grant_type=["client_credentials"]), JSON),
    case("grant-type-dict", json_object(grant_type={"client_credentials": True}), JSON),
    case("grant-type-true", json_object(grant_type=True), JSON),
    case("grant-type-false", json_object(grant_type=False), JSON),
    case(
        "username-list",
        json_object(grant_type="password", username=["alice"], password="x"),
        JSON,
    ),
    case(
        "operator-objects",
        json_object(grant_type="password", username={"$ne": None}, password={"$gt": ""}),
        JSON,
    ),
    case(
        "nested",
        json_object(grant_type="client_credentials", scope={"a": {"b": {"c": [1, [2, [3]]]}}}),
        JSON,
    ),
    case("client-id-int", json_object(grant_type="client_credentials", client_id=7), JSON),
    case("deeply-nested-lists", b"[" * 16_000, JSON),
    case("deeply-nested-objects", b'{"a":' * 3_000, JSON),
    case("deeply-nested-value", b'{"grant_type":' + b"[" * 15_000, JSON),
    case("100000-levels", b"[" * 100_000, JSON, status=413),
    case("non-utf8", b'{"grant_type": "client_credentials\xff"}', JSON),
    case("latin1", '{"grant_type": "password", "username": "é"}'.encode("latin-1"), JSON),
    case("binary-garbage", BINARY_GARBAGE, JSON),
    *(
        case(
            f"{encoding}-encoded",
            json_object(grant_type="client_credentials").decode().encode(encoding),
            JSON,
        )
        for encoding in ("utf-16", "utf-16-le", "utf-32")
    ),
    case("nul-in-grant-type", escaped('{"grant_type": "client_credentials\\u0000"}'), JSON),
    case(
        "nul-in-username",
        escaped('{"grant_type": "password", "username": "alice\\u0000", "password": "x"}'),
        JSON,
    ),
    case(
        "nul-in-password",
        escaped('{"grant_type": "password", "username": "alice", "password": "\\u0000"}'),
        JSON,
    ),
    case(
        "nul-in-refresh-token",
        escaped('{"grant_type": "refresh_token", "refresh_token": "rt_\\u0000"}'),
        JSON,
    ),
    case(
        "nul-in-client-id",
        escaped('{"grant_type": "client_credentials", "client_id": "\\u0000"}'),
        JSON,
        basic=False,
    ),
    case(
        "surrogate-in-grant-type",
        escaped('{"grant_type": "\\ud800"}'),
        JSON,
    ),
    case(
        "surrogate-in-username",
        escaped('{"grant_type": "password", "username": "\\ud800", "password": "x"}'),
        JSON,
    ),
    case(
        "surrogate-in-password",
        escaped('{"grant_type": "password", "username": "alice", "password": "\\udfff"}'),
        JSON,
    ),
    case(
        "surrogate-in-refresh-token",
        escaped('{"grant_type": "refresh_token", "refresh_token": "rt_\\ud800"}'),
        JSON,
    ),
    case(
        "surrogate-in-client-id",
        escaped('{"grant_type": "client_credentials", "client_id": "\\ud800"}'),
        JSON,
        basic=False,
    ),
    case(
        "surrogate-in-client-secret",
        escaped('{"grant_type": "client_credentials", "client_id": "@CLIENT_ID@", ')
        + escaped('"client_secret": "\\ud800"}'),
        JSON,
        basic=False,
    ),
    case("surrogate-key-with-non-string", escaped('{"\\ud800": 1}'), JSON),
    case("33-keys", json_keys(33), JSON),
    case("1000-keys", json_keys(1000), JSON),
    case("value-too-long", json_object(grant_type="password", username="a" * 5000), JSON),
    case(
        "over-the-size-limit",
        json_object(grant_type="client_credentials", pad="a" * 20_000),
        JSON,
        status=413,
    ),
]


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize("body", JSON_CASES)
def test_malformed_json_body(send, body):
    assert_oauth_error(send(body), body.status, body.error)


def test_deeply_nested_json_within_a_larger_size_limit(settings, send, unchanged_database):
    """With the size limit raised, 100000 levels reach the parser: a 400, not a RecursionError."""
    settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "MAX_REQUEST_BODY_BYTES": 1_000_000}

    for opener in (b"[", b'{"a":'):
        response = send(Body(opener * 100_000, JSON))

        assert_oauth_error(response, 400, "invalid_request")


# -- Content types, empty and oversized bodies ------------------------------------------------


def multipart_grant() -> bytes:
    return encode_multipart(BOUNDARY, {"grant_type": "client_credentials"})


CONTENT_TYPE_CASES = [
    case("text-plain", VALID_GRANT, "text/plain"),
    case("multipart", multipart_grant(), MULTIPART_CONTENT),
    case("octet-stream", VALID_GRANT, "application/octet-stream"),
    case("xml", b"<grant_type>client_credentials</grant_type>", "application/xml"),
    case("form-lookalike", VALID_GRANT, FORM + "x"),
    case("json-lookalike", json_object(grant_type="client_credentials"), "application/jsonx"),
    case("json-suffix", json_object(grant_type="client_credentials"), "application/merge+json"),
    case("garbage-content-type", VALID_GRANT, "\x01\x02;;;=="),
    case(
        "form-latin1-charset", b"grant_type=client_credentials&x=\xe9", FORM + "; charset=latin-1"
    ),
]


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize("body", CONTENT_TYPE_CASES)
def test_unsupported_content_type(send, body):
    """A body that would be a valid grant in a supported encoding is still refused."""
    assert_oauth_error(send(body), body.status, body.error)


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "body",
    [
        case("with-client-auth", b""),
        case("without-client-auth", b"", basic=False, status=401, error="invalid_client"),
        case("empty-json-object", b"{}", JSON),
    ],
)
def test_empty_body(send, body):
    assert_oauth_error(send(body), body.status, body.error)


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "content_length, status",
    [
        ("abc", 400),
        ("1.5", 400),
        ("0x10", 400),
        ("-1", 400),
        (" ", 400),
        ("10000000000", 413),
        ("9" * 400, 413),
    ],
    ids=["letters", "decimal", "hex", "negative", "blank", "declared-10GB", "400-digits"],
)
def test_content_length_header(send, content_length, status):
    response = send(Body(VALID_GRANT), CONTENT_LENGTH=content_length)

    assert_oauth_error(response, status, "invalid_request")


@pytest.mark.usefixtures("unchanged_database")
def test_body_larger_than_djangos_own_limit(send):
    """3 MB: above DATA_UPLOAD_MAX_MEMORY_SIZE too, still the RFC shape."""
    response = send(Body(VALID_GRANT + b"&pad=" + b"a" * 3_000_000))

    assert_oauth_error(response, 413, "invalid_request")


# -- Authorization headers on the token endpoint ---------------------------------------


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic " + "A" * HUNDRED_KB, id="basic-100kb-base64"),
        pytest.param(
            "Basic " + b64(b"a" * 50_000 + b":" + b"b" * 25_000), id="basic-100kb-credentials"
        ),
        pytest.param("Basic " + "!" * HUNDRED_KB, id="basic-100kb-garbage"),
        pytest.param("Bearer " + "x" * HUNDRED_KB, id="bearer-100kb"),
        pytest.param("Basic ****", id="basic-not-base64"),
        pytest.param("Basic =", id="basic-padding-only"),
        pytest.param("Basic ÿÿÿÿ", id="basic-non-ascii"),
        pytest.param("Basic " + b64(bytes(range(256))), id="basic-binary"),
        pytest.param("Basic " + b64(b"\x00:\x00"), id="basic-nul-bytes"),
        pytest.param("Basic " + b64(b"%00:secret"), id="basic-percent-nul-client-id"),
        pytest.param("Basic " + b64(b"%ED%A0%80:x"), id="basic-percent-surrogate"),
        pytest.param("Basic " + b64(b"%FF:x"), id="basic-percent-ff"),
        pytest.param("Basic  " + b64(b"a:b") + " extra", id="basic-extra-words"),
    ],
)
def test_hostile_authorization_on_token_endpoint(send, authorization):
    response = send(Body(VALID_GRANT), HTTP_AUTHORIZATION=authorization)

    assert_oauth_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")


# -- Wrong methods -----------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_token_endpoint(client, method):
    response = client.generic(method, TOKEN_URL, VALID_GRANT, content_type=FORM)

    assert_oauth_error(response, 405, "invalid_request")


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_token_endpoint_are_refused(client, method):
    response = client.generic(method, TOKEN_URL, VALID_GRANT, content_type=FORM)

    assert response.status_code == 405
    assert response["Cache-Control"] == "no-store"


# -- Bearer tokens on /api/whoami/ --------------------------------------------------------


def unsigned_jwt(header, payload=None) -> str:
    """A JWT-shaped string with a hand-written header (any JSON, or raw bytes)."""
    if payload is None:
        payload = {"sub": "1"}

    def encode(part) -> str:
        return b64url(part if isinstance(part, bytes) else json.dumps(part).encode())

    return f"{encode(header)}.{encode(payload)}.{b64url(b'signature')}"


def with_real_kid(header: dict) -> dict:
    return {"typ": "at+jwt", "alg": "RS256", "kid": keys.signing_key().kid, **header}


INVALID_TOKEN = 'Bearer realm="api", error="invalid_token"'


def assert_refused_bearer(response, *, challenge_error: bool = True) -> None:
    assert response.status_code == 401, response.content[:500]
    challenge = response["WWW-Authenticate"]
    if challenge_error:
        assert challenge.startswith(INVALID_TOKEN + ", error_description=")
    else:
        assert challenge == 'Bearer realm="api"'


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "token",
    [
        pytest.param("x" * HUNDRED_KB, id="100kb"),
        pytest.param("a.b." + "c" * HUNDRED_KB, id="100kb-three-segments"),
        pytest.param("\x00\x01\x02", id="control-bytes"),
        pytest.param("ÿÿÿ.ÿÿÿ.ÿÿÿ", id="non-ascii"),
        pytest.param("....", id="only-dots"),
        pytest.param(unsigned_jwt(b"not json"), id="header-not-json"),
        pytest.param(unsigned_jwt([1, 2]), id="header-a-list"),
        pytest.param(unsigned_jwt("at+jwt"), id="header-a-string"),
        pytest.param(unsigned_jwt({"typ": "at+jwt", "alg": "RS256", "kid": 5}), id="kid-int"),
        pytest.param(unsigned_jwt({"typ": "at+jwt", "alg": "RS256", "kid": ["a"]}), id="kid-list"),
        pytest.param(
            unsigned_jwt({"typ": "at+jwt", "alg": "RS256", "kid": "k" * 5000}), id="kid-5000"
        ),
        pytest.param(
            unsigned_jwt({"typ": "at+jwt", "alg": "RS256", "kid": "a'; DROP TABLE x; --"}),
            id="kid-sql",
        ),
    ],
)
def test_hostile_bearer_token(client, token):
    response = client.get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_refused_bearer(response)


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": ["RS256"]}, id="alg-list"),
        pytest.param({"alg": None}, id="alg-null"),
        pytest.param({"crit": ["exp"]}, id="crit"),
    ],
)
def test_hostile_header_with_the_real_kid(client, header):
    response = client.get(
        WHOAMI, HTTP_AUTHORIZATION=f"Bearer {unsigned_jwt(with_real_kid(header))}"
    )

    assert_refused_bearer(response)


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "typ",
    [pytest.param(["at+jwt"], id="list"), pytest.param({"at+jwt": 1}, id="dict")],
)
def test_unhashable_typ_header(client, typ):
    """Reachable without any key: the header is checked before the signature."""
    token = unsigned_jwt({"typ": typ, "alg": "RS256", "kid": "x"})

    response = client.get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_refused_bearer(response)


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "kid",
    [pytest.param("\x00", id="nul"), pytest.param("k\x00id", id="embedded-nul")],
)
def test_kid_with_a_nul_character(client, kid):
    token = unsigned_jwt({"typ": "at+jwt", "alg": "RS256", "kid": kid})

    response = client.get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_refused_bearer(response)


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "kid",
    [pytest.param("\ud800", id="lone-high"), pytest.param("a\udfffb", id="lone-low")],
)
def test_kid_with_a_lone_surrogate(client, kid):
    escaped_kid = kid.encode("unicode_escape")  # "\\ud800": JSON can carry it, UTF-8 cannot
    header = b'{"typ": "at+jwt", "alg": "RS256", "kid": "%s"}' % escaped_kid
    token = unsigned_jwt(header)

    response = client.get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_refused_bearer(response)


@pytest.mark.usefixtures("unchanged_database")
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic " + "A" * HUNDRED_KB, id="basic-100kb"),
        pytest.param("Basic ****", id="basic-garbage"),
        pytest.param("X" * HUNDRED_KB, id="no-scheme-100kb"),
        pytest.param("Bearer" + "x" * HUNDRED_KB, id="bearer-without-space"),
    ],
)
def test_other_hostile_authorization_on_whoami(client, authorization):
    """Not a bearer credential at all: the bare challenge, no error code."""
    response = client.get(WHOAMI, HTTP_AUTHORIZATION=authorization)

    assert_refused_bearer(response, challenge_error=False)
