"""Discovery (JWKS, RFC 8414 metadata) and the access-token checks a forger must get past.

docs/tokens.md: "Any service can verify [an access token] from the JWKS alone", so a
token from the token endpoint is verified here with PyJWT given nothing but
the JWKS document. The forgeries complete those of ``test_authentication.py``:
most are signed with the app's own private key, so only the check under test
can refuse them, and each has a control that the same construction is accepted
when the checked value is right.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import jwt
import pytest
from conftest import FORM
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from freezegun import freeze_time
from jwt.algorithms import get_default_algorithms

from token_lifecycle import keys
from token_lifecycle.models import SigningKey

JWKS_URL = "/auth/.well-known/jwks.json"
METADATA_URL = "/auth/.well-known/oauth-authorization-server"
#: RFC 8414 §3: the issuer's path ("/auth") inserted after the well-known prefix.
ROOT_METADATA_URL = "/.well-known/oauth-authorization-server/auth"
ISSUER = "http://testserver/auth"
ALGORITHMS = ["RS256", "ES256", "EdDSA"]
KEY_TYPES = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
#: RFC 7518 §6.2.2 / §6.3.2 / RFC 8037 §2: members that only a private JWK has.
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
AUDIENCE = "https://api.example.com"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
LEEWAY = 30  # seconds: the LEEWAY default


# -- Helpers ------------------------------------------------------------------


@pytest.fixture
def clock():
    with freeze_time(T0) as frozen:
        yield frozen


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64url(json.dumps(value).encode())


def header_of(token: str) -> dict:
    return jwt.get_unverified_header(token)


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def sign(claims: dict, key: keys.LoadedKey | None = None, **header) -> str:
    """A JWT signed by ``key`` (the current signing key by default) with its own algorithm.

    The header says whatever ``header`` overrides (``alg`` included: the
    signature is still made with the key's real algorithm); a None value
    removes a member, and so does a None claim.
    """
    key = key or keys.signing_key()
    header = {"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid, **header}
    header = {name: value for name, value in header.items() if value is not None}
    claims = {name: value for name, value in claims.items() if value is not None}
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = get_default_algorithms()[key.algorithm].sign(
        signing_input.encode(), key.private_key
    )
    return f"{signing_input}.{b64url(signature)}"


def assert_invalid_token(response) -> None:
    """401 with an RFC 6750 ``invalid_token`` challenge."""
    assert response.status_code == 401, response.content
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def assert_accepted(response) -> None:
    assert response.status_code == 200, (response.status_code, response.content)


@pytest.fixture
def issued(login) -> dict:
    """A password login of alice: the token response."""
    return login()


# -- JWKS -----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_jwks_publishes_public_members_only(client, lifecycle, db, algorithm):
    """A private member in the JWKS would hand out the signing key."""
    lifecycle(SIGNING_ALGORITHM=algorithm)
    key = keys.signing_key()

    response = client.get(JWKS_URL)

    assert response.status_code == 200
    [jwk] = response.json()["keys"]
    assert not PRIVATE_MEMBERS & set(jwk), jwk
    assert jwk["kid"] == key.kid
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert jwk["kty"] == KEY_TYPES[algorithm]


def test_jwks_lists_every_published_key_each_public(client, db):
    """After rotations to each algorithm, all keys are listed, none with a private member."""
    keys.signing_key()
    keys.rotate("ES256")
    keys.rotate("EdDSA")

    jwks = client.get(JWKS_URL).json()["keys"]

    assert {jwk["kid"] for jwk in jwks} == set(SigningKey.objects.values_list("kid", flat=True))
    assert sorted(jwk["alg"] for jwk in jwks) == sorted(ALGORITHMS)
    for jwk in jwks:
        assert not PRIVATE_MEMBERS & set(jwk), jwk
        assert {"kid", "alg", "use", "kty"} <= set(jwk)


@pytest.mark.parametrize(
    ("max_age", "expected"),
    [(None, 900), (timedelta(minutes=5), 300), (timedelta(0), 0)],
    ids=["default-15-min", "5-min", "zero"],
)
def test_jwks_cache_control_is_jwks_max_age(client, lifecycle, db, max_age, expected):
    """Verifiers cache the JWKS this long: the rotation delay relies on it."""
    if max_age is not None:
        lifecycle(JWKS_MAX_AGE=max_age)
    keys.signing_key()

    response = client.get(JWKS_URL)

    assert response["Cache-Control"] == f"public, max-age={expected}"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic Zm9vOmJhcg=="],
    ids=["anonymous", "garbage-bearer", "bad-basic"],
)
def test_jwks_needs_no_authentication(client, db, authorization):
    """A bad credential must not turn a public document into a 401."""
    keys.signing_key()
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = client.get(JWKS_URL, **headers)

    assert response.status_code == 200
    assert len(response.json()["keys"]) == 1


def test_jwks_is_also_served_at_the_site_root(client, db):
    keys.signing_key()

    assert client.get("/.well-known/jwks.json").json() == client.get(JWKS_URL).json()


# -- Verifying with the JWKS alone ----------------------------------------------------


def verify_with_jwks(token: str, jwks: dict, **options) -> dict:
    """What a resource server does: the key (and so the algorithm) chosen by kid in the JWKS."""
    jwk = jwt.PyJWKSet.from_dict(jwks)[header_of(token)["kid"]]
    return jwt.decode(
        token,
        jwk.key,
        algorithms=[jwk.algorithm_name],
        issuer=ISSUER,
        audience=ISSUER,  # the default audience: this deployment's issuer
        options={"require": ["iss", "sub", "jti", "iat", "exp", "aud"]},
        **options,
    )


@pytest.mark.parametrize("how", ["setting", "rotation"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_token_verifies_with_the_jwks_alone(
    client, lifecycle, login, whoami, user, algorithm, how
):
    """docs/tokens.md: any service verifies access tokens from the JWKS alone, for every
    algorithm."""
    if how == "setting":
        lifecycle(SIGNING_ALGORITHM=algorithm)
    else:
        login()  # a first key (RS256) signs, then is replaced at once
        keys.rotate(algorithm, immediately=True)
    token = login()["access_token"]
    jwks = client.get(JWKS_URL).json()

    claims = verify_with_jwks(token, jwks)

    assert header_of(token)["alg"] == algorithm
    assert header_of(token)["typ"] == "at+jwt"
    assert claims["sub"] == str(user.pk)
    assert_accepted(whoami(token))


def test_jwks_verification_needs_the_kid_of_the_token(client, login):
    """Control for the test above: another published key does not verify the token."""
    token = login()["access_token"]
    keys.rotate("RS256")  # published, not signing yet
    jwks = client.get(JWKS_URL).json()
    other = next(jwk for jwk in jwks["keys"] if jwk["kid"] != header_of(token)["kid"])

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token, jwt.PyJWK(other).key, algorithms=["RS256"], issuer=ISSUER, audience=ISSUER
        )
    assert verify_with_jwks(token, jwks)["iss"] == ISSUER


# -- RFC 8414 metadata -----------------------------------------------------------------


ENDPOINTS = {
    "authorization_endpoint": "authorize",
    "token_endpoint": "token",
    "revocation_endpoint": "revoke",
    "introspection_endpoint": "introspect",
    "jwks_uri": "jwks",
}
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def test_metadata_document(client, issued):
    """RFC 8414 §2: the issuer is the tokens' ``iss``; what the server supports is listed."""
    response = client.get(METADATA_URL)

    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == claims_of(issued["access_token"])["iss"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/token/"
    assert metadata["revocation_endpoint"] == f"{ISSUER}/token/revoke/"
    assert metadata["introspection_endpoint"] == f"{ISSUER}/token/introspect/"
    assert metadata["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert metadata["authorization_endpoint"] == f"{ISSUER}/authorize/"
    assert sorted(metadata["grant_types_supported"]) == [
        "authorization_code",
        "client_credentials",
        "password",
        "refresh_token",
    ]
    for name in ("token", "revocation", "introspection"):
        assert metadata[f"{name}_endpoint_auth_methods_supported"] == AUTH_METHODS
    assert metadata["access_token_signing_alg_values_supported"] == ["RS256"]
    # The code flow (docs/code-flow.md): PKCE with S256 only, iss in every response.
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True


def test_metadata_endpoints_are_absolute_urls_that_resolve(client, db):
    metadata = client.get(METADATA_URL).json()

    for member, url_name in ENDPOINTS.items():
        url = urlsplit(metadata[member])
        assert (url.scheme, url.netloc) == ("http", "testserver"), metadata[member]
        assert resolve(url.path).view_name == f"token_lifecycle:{url_name}"


def test_metadata_endpoints_answer(client, db):
    """The advertised URLs are live: JWKS served, OAuth endpoints asking for a client."""
    metadata = client.get(METADATA_URL).json()

    assert client.get(metadata["jwks_uri"]).status_code == 200
    # No client named: the authorization endpoint's 400 page, never a redirect.
    assert client.get(metadata["authorization_endpoint"]).status_code == 400
    for member in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        response = client.post(metadata[member], "", content_type=FORM)
        assert response.status_code == 401, (member, response.content)
        assert response.json()["error"] == "invalid_client"


def test_metadata_issuer_follows_the_issuer_setting(client, lifecycle, login):
    """With ``ISSUER`` set, the metadata and the tokens agree on it, whatever the host."""
    lifecycle(ISSUER="https://id.example.com/auth")
    token = login()["access_token"]

    metadata = client.get(METADATA_URL).json()

    assert metadata["issuer"] == claims_of(token)["iss"] == "https://id.example.com/auth"


def test_metadata_lists_the_algorithms_of_published_keys(client, login):
    """A key of another algorithm, published ahead of signing, is already announced."""
    login()
    keys.rotate("ES256")
    keys.rotate("EdDSA")

    metadata = client.get(METADATA_URL).json()

    assert metadata["access_token_signing_alg_values_supported"] == ["ES256", "EdDSA", "RS256"]


def test_metadata_needs_no_authentication(client, db):
    response = client.get(METADATA_URL, HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 200


@pytest.mark.parametrize("path", [ROOT_METADATA_URL, ROOT_METADATA_URL + "/"], ids=["", "slash"])
def test_metadata_at_the_site_root_with_the_issuer_path(client, db, path):
    """RFC 8414 §3: clients starting from the host name insert the issuer's path."""
    response = client.get(path)

    assert response.status_code == 200
    assert response.json() == client.get(METADATA_URL).json()
    assert response.json()["issuer"] == ISSUER


@pytest.mark.parametrize(
    "issuer_path",
    ["other", "authx", "auth/token", "api", "auth/.well-known/jwks.json"],
)
def test_metadata_at_the_site_root_for_another_issuer(client, db, issuer_path):
    """RFC 8414 §3.3: the document must be about the issuer its URL names; else 404."""
    response = client.get(f"/.well-known/oauth-authorization-server/{issuer_path}")

    assert response.status_code == 404


# -- Forgeries: audience -----------------------------------------------------------------


@pytest.fixture
def with_audience(lifecycle):
    lifecycle(AUDIENCE=AUDIENCE)


def test_token_carries_and_passes_the_configured_audience(with_audience, issued, whoami):
    assert claims_of(issued["access_token"])["aud"] == AUDIENCE
    assert_accepted(whoami(issued["access_token"]))


@pytest.mark.parametrize(
    "aud",
    [AUDIENCE, [AUDIENCE]],
    ids=["string", "list"],
)
def test_re_signed_token_with_the_right_audience_is_accepted(with_audience, issued, whoami, aud):
    """Control for the refusals below: the forging itself is not what they refuse."""
    forged = sign({**claims_of(issued["access_token"]), "aud": aud})

    assert_accepted(whoami(forged))


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param("https://other.example.com", id="other-audience"),
        pytest.param(["https://other.example.com"], id="other-audience-list"),
        pytest.param(AUDIENCE + "/", id="near-miss"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
    ],
)
def test_wrong_audience_is_refused(with_audience, issued, whoami, aud):
    """A token meant for another API must not work here (RFC 9068 §4)."""
    forged = sign({**claims_of(issued["access_token"]), "aud": aud})

    assert_invalid_token(whoami(forged))


# -- Forgeries: time claims -----------------------------------------------------------------


def now_ts() -> int:
    return int(T0.timestamp())


@pytest.mark.parametrize(
    ("exp_offset", "accepted"),
    [(-3600, False), (-1, False), (0, False), (1, True)],
    ids=["an-hour-ago", "one-second-ago", "exactly-now", "in-one-second"],
)
def test_exp_claim_is_enforced_without_leeway(clock, issued, whoami, exp_offset, accepted):
    """The pair itself is valid for 15 days: only the token's own ``exp`` refuses these.

    Expiry is exclusive and the leeway never extends it (docs/lifecycle.md).
    """
    forged = sign({**claims_of(issued["access_token"]), "exp": now_ts() + exp_offset})

    response = whoami(forged)

    if accepted:
        assert_accepted(response)
    else:
        assert_invalid_token(response)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(LEEWAY, True), (LEEWAY + 1, False), (3600, False)],
    ids=["at-leeway", "leeway-plus-one", "an-hour-ahead"],
)
def test_future_iat_or_nbf_beyond_leeway_is_refused(
    clock, issued, whoami, claim, offset, accepted
):
    """Another server's clock may be ahead by LEEWAY, no more."""
    forged = sign({**claims_of(issued["access_token"]), claim: now_ts() + offset})

    response = whoami(forged)

    if accepted:
        assert_accepted(response)
    else:
        assert_invalid_token(response)


def test_leeway_setting_is_the_bound(clock, lifecycle, issued, whoami):
    """With LEEWAY 0 an ``iat`` one second ahead is refused, the present accepted."""
    lifecycle(LEEWAY=timedelta(0))
    claims = claims_of(issued["access_token"])

    assert_invalid_token(whoami(sign({**claims, "iat": now_ts() + 1})))
    assert_accepted(whoami(sign({**claims, "iat": now_ts()})))


# -- Forgeries: keys and header -----------------------------------------------------------------


def test_token_of_a_retired_key_past_its_verify_until_is_refused(clock, login, whoami):
    """Correctly signed by the old key, about a live pair: refused once the key stops verifying."""
    old_key = keys.signing_key()
    keys.rotate(immediately=True)
    verify_until = SigningKey.objects.get(kid=old_key.kid).verify_until
    clock.move_to(verify_until - SECOND)
    fresh = login()["access_token"]  # signed by the new key, a live pair
    by_old_key = sign(claims_of(fresh), old_key)
    assert_accepted(whoami(by_old_key))

    clock.move_to(verify_until)

    assert_invalid_token(whoami(by_old_key))
    assert_accepted(whoami(fresh))


@pytest.mark.parametrize(
    ("key_algorithm", "header_algorithm"),
    [("RS256", "ES256"), ("RS256", "EdDSA"), ("ES256", "RS256"), ("EdDSA", "ES256")],
    ids=["RS256-says-ES256", "RS256-says-EdDSA", "ES256-says-RS256", "EdDSA-says-ES256"],
)
def test_header_algorithm_other_than_the_keys_is_refused(
    lifecycle, login, whoami, key_algorithm, header_algorithm
):
    """The key fixes the algorithm; a header naming another one is a forgery attempt."""
    lifecycle(SIGNING_ALGORITHM=key_algorithm)
    claims = claims_of(login()["access_token"])
    assert_accepted(whoami(sign(claims)))

    assert_invalid_token(whoami(sign(claims, alg=header_algorithm)))


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "..\\..\\windows\\win.ini",
        "/etc/passwd",
        "kid' OR '1'='1",
        "a" * 65,
        "kid\u0000",
        "kïd",
    ],
    ids=[
        "path-traversal",
        "encoded-traversal",
        "backslash-traversal",
        "absolute-path",
        "sql-quote",
        "too-long",
        "nul",
        "non-ascii",
    ],
)
def test_ill_formed_kid_is_refused_before_any_key_lookup(issued, whoami, kid):
    """A kid that is not a thumbprint never reaches the database (or a file system)."""
    forged = sign(claims_of(issued["access_token"]), kid=kid)

    with CaptureQueriesContext(connection) as queries:
        response = whoami(forged)

    assert_invalid_token(response)
    assert not [q for q in queries.captured_queries if "signingkey" in q["sql"].lower()]


def test_kid_of_a_real_key_with_traversal_appended_is_refused(issued, whoami):
    kid = header_of(issued["access_token"])["kid"]

    forged = sign(claims_of(issued["access_token"]), kid=f"{kid}/../{kid}")

    assert_invalid_token(whoami(forged))


def test_twenty_kilobyte_claim_is_refused(issued, whoami):
    """A correctly signed but oversized token is refused, not decoded, and never a 500."""
    forged = sign({**claims_of(issued["access_token"]), "padding": "x" * 20 * 1024})

    assert_invalid_token(whoami(forged))
