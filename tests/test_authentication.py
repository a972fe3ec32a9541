"""``BearerTokenAuthentication`` (RFC 6750) through ``GET /api/whoami/`` and directly.

Access-token expiry at its exact boundary is tested in ``test_lifecycle.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from conftest import basic_auth
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import freeze_time
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from token_lifecycle import keys, services
from token_lifecycle.authentication import BearerTokenAuthentication
from token_lifecycle.models import SigningKey, TokenPair
from token_lifecycle.rules import RevokeReason

WHOAMI = "/api/whoami/"
NO_CREDENTIALS_CHALLENGE = 'Bearer realm="api"'
INVALID_TOKEN_CHALLENGE = re.compile(
    r'Bearer realm="api", error="invalid_token", error_description="[^"\\]+"'
)


# -- Helpers ------------------------------------------------------------------


def assert_invalid_token(response) -> None:
    """401 with an RFC 6750 §3 ``invalid_token`` challenge."""
    assert response.status_code == 401, response.content
    assert INVALID_TOKEN_CHALLENGE.fullmatch(response["WWW-Authenticate"]), response[
        "WWW-Authenticate"
    ]


def assert_no_credentials(response) -> None:
    """401 with the bare challenge: no error code when no bearer token was presented."""
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == NO_CREDENTIALS_CHALLENGE


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64url(json.dumps(value).encode())


def header_and_claims(token: str) -> tuple[dict, dict]:
    """The header and claims of a real token, to forge variations of it."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.get_unverified_header(token), claims


def sign_with_real_key(claims: dict, **header) -> str:
    """Sign with the app's own private key: only the claim or header checks can refuse it."""
    key = keys.signing_key()
    header = {"typ": "at+jwt", "kid": key.kid, **header}
    header = {name: value for name, value in header.items() if value is not None}
    algorithm = header.pop("alg", key.algorithm)
    return jwt.encode(claims, key.private_key, algorithm=algorithm, headers=header)


def hs256(header: dict, claims: dict, secret: bytes) -> str:
    """HMAC-signed by hand: PyJWT refuses to use a public key as an HMAC secret."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def drf_request(authorization: str | None = None) -> Request:
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return Request(APIRequestFactory().get(WHOAMI, **headers))


@pytest.fixture
def issued(login) -> dict:
    """A password login of alice through the default client: the token response."""
    return login()


def pair_of(token_response: dict) -> TokenPair:
    claims = jwt.decode(token_response["access_token"], options={"verify_signature": False})
    return TokenPair.objects.get(pk=claims["jti"])


# -- Success -------------------------------------------------------------------


def test_whoami_with_a_valid_access_token(whoami, issued, oauth_client, user):
    response = whoami(issued["access_token"])

    assert response.status_code == 200, response.content
    _, claims = header_and_claims(issued["access_token"])
    assert response.json() == {
        "username": "alice",
        "client_id": oauth_client[0].client_id,
        "pair_id": claims["jti"],
    }


def test_client_credentials_token_authenticates_as_the_owner(token_request, oauth_client, whoami):
    client_obj, secret = oauth_client
    body = token_request(
        {"grant_type": "client_credentials"}, auth=(client_obj.client_id, secret)
    ).json()

    response = whoami(body["access_token"])

    assert response.status_code == 200
    assert response.json()["username"] == client_obj.owner.username


def test_the_scheme_name_is_case_insensitive(client, issued):
    """RFC 9110 §11.1: authentication scheme names are case-insensitive."""
    response = client.get(WHOAMI, HTTP_AUTHORIZATION=f"bearer {issued['access_token']}")

    assert response.status_code == 200


def test_request_auth_exposes_pair_client_and_claims(issued, oauth_client, user):
    request = drf_request(f"Bearer {issued['access_token']}")

    authenticated_user, auth = BearerTokenAuthentication().authenticate(request)

    _, claims = header_and_claims(issued["access_token"])
    assert authenticated_user == user
    assert auth.pair_id == uuid.UUID(claims["jti"])
    assert auth.client == oauth_client[0]
    assert auth.client_id == oauth_client[0].client_id
    assert auth.claims == claims
    assert auth.claims["sub"] == str(user.pk)
    assert auth.scopes == frozenset()


def test_request_auth_scopes(make_client, login):
    partner = make_client("scoped", scope="read write")
    body = login(client_creds=(partner[0].client_id, partner[1]))

    _, auth = BearerTokenAuthentication().authenticate(
        drf_request(f"Bearer {body['access_token']}")
    )

    assert auth.scopes == {"read", "write"}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dXNlcjpwYXNz", "Token abc", "Bearerabc"],
    ids=["absent", "empty", "basic", "token-scheme", "no-space"],
)
def test_other_schemes_are_left_to_other_authentication_classes(db, authorization):
    """``None`` lets the next class in DEFAULT_AUTHENTICATION_CLASSES try."""
    request = drf_request(authorization)

    assert BearerTokenAuthentication().authenticate(request) is None
    assert BearerTokenAuthentication().authenticate_header(request) == NO_CREDENTIALS_CHALLENGE


def test_a_refused_token_sets_the_challenge_error(db):
    request = drf_request("Bearer not-a-jwt")
    authentication = BearerTokenAuthentication()

    with pytest.raises(AuthenticationFailed):
        authentication.authenticate(request)
    assert INVALID_TOKEN_CHALLENGE.fullmatch(authentication.authenticate_header(request))


# -- Challenges ----------------------------------------------------------------


def test_no_authorization_header(db, client):
    response = client.get(WHOAMI)

    assert_no_credentials(response)


def test_basic_credentials_are_not_a_bearer_token(client, oauth_client):
    """Even a valid client's Basic credentials do not authenticate an API call."""
    client_obj, secret = oauth_client

    response = client.get(WHOAMI, HTTP_AUTHORIZATION=basic_auth(client_obj.client_id, secret))

    assert_no_credentials(response)


def test_an_access_token_under_another_scheme_is_not_used(client, issued):
    response = client.get(WHOAMI, HTTP_AUTHORIZATION=f"Token {issued['access_token']}")

    assert_no_credentials(response)


@pytest.mark.parametrize(
    "token",
    ["", "   ", "not-a-jwt", "a.b.c", "a.b", "eyJ.eyJ.sig", "two words"],
    ids=["empty", "blank", "opaque", "three-junk-segments", "two-segments", "bad-b64", "space"],
)
def test_malformed_bearer_token(db, client, token):
    response = client.get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_invalid_token(response)


def test_refresh_token_as_bearer_token(whoami, issued):
    assert_invalid_token(whoami(issued["refresh_token"]))


def test_refresh_token_as_bearer_token_with_its_prefix_removed(whoami, issued):
    assert_invalid_token(whoami(issued["refresh_token"].removeprefix("rt_")))


def test_access_token_as_refresh_token(token_request, oauth_client, issued):
    client_obj, secret = oauth_client

    response = token_request(
        {"grant_type": "refresh_token", "refresh_token": issued["access_token"]},
        auth=(client_obj.client_id, secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_expired_access_token(login, whoami):
    """Well past expiry here; the exact boundary is covered in test_lifecycle.py."""
    start = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    with freeze_time(start) as frozen:
        body = login()
        frozen.move_to(start + timedelta(days=20))

        response = whoami(body["access_token"])

    assert_invalid_token(response)


# -- Revocation takes effect at once --------------------------------------------


def test_revoked_pair(whoami, login):
    revoked, other = login(), login()
    assert whoami(revoked["access_token"]).status_code == 200

    assert services.revoke_pair(pair_of(revoked), RevokeReason.ADMIN)

    assert_invalid_token(whoami(revoked["access_token"]))
    assert whoami(other["access_token"]).status_code == 200


def test_deactivated_client(whoami, login, make_client, oauth_client):
    other_client = make_client("other")
    token = login()["access_token"]
    other_token = login(client_creds=(other_client[0].client_id, other_client[1]))["access_token"]
    assert whoami(token).status_code == 200

    client_obj = oauth_client[0]
    client_obj.is_active = False
    client_obj.save()

    assert_invalid_token(whoami(token))
    assert whoami(other_token).status_code == 200


def test_deactivated_user(whoami, issued, user, make_user, login):
    make_user("bob")
    bob_token = login(username="bob")["access_token"]
    assert whoami(issued["access_token"]).status_code == 200

    user.is_active = False
    user.save()

    assert_invalid_token(whoami(issued["access_token"]))
    assert whoami(bob_token).status_code == 200


def test_deleted_pair(whoami, issued):
    """A purged pair's access token does not come back to life."""
    pair_of(issued).delete()

    assert_invalid_token(whoami(issued["access_token"]))


# -- Forged tokens ------------------------------------------------------------------


def public_key_as_bytes(kid: str, form: str) -> bytes:
    """The published public key in a form an attacker might try as an HMAC secret."""
    if form == "jwk-json":
        return json.dumps(SigningKey.objects.get(kid=kid).public_jwk).encode()
    pem_format = {
        "pem-spki": serialization.PublicFormat.SubjectPublicKeyInfo,
        "pem-pkcs1": serialization.PublicFormat.PKCS1,
    }[form]
    public_key = keys.verification_key(kid).public_key
    return public_key.public_bytes(serialization.Encoding.PEM, pem_format)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token(whoami, issued, alg):
    header, claims = header_and_claims(issued["access_token"])
    forged = f"{segment({**header, 'alg': alg})}.{segment(claims)}."

    assert_invalid_token(whoami(forged))


@pytest.mark.parametrize("form", ["pem-spki", "pem-pkcs1", "jwk-json"])
def test_hmac_signed_with_the_public_key(whoami, issued, form):
    """The classic algorithm confusion: HS256 keyed with the published public key."""
    header, claims = header_and_claims(issued["access_token"])
    secret = public_key_as_bytes(header["kid"], form)

    forged = hs256({**header, "alg": "HS256"}, claims, secret)

    assert_invalid_token(whoami(forged))


def test_tampered_payload(whoami, issued, make_user):
    """Another user's id in the claims, the original signature kept."""
    mallory = make_user("mallory")
    signed_header, _, signature = issued["access_token"].split(".")
    _, claims = header_and_claims(issued["access_token"])
    tampered = f"{signed_header}.{segment({**claims, 'sub': str(mallory.pk)})}.{signature}"

    assert_invalid_token(whoami(tampered))


def test_tampered_signature(whoami, issued):
    head, payload, signature = issued["access_token"].split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    assert_invalid_token(whoami(f"{head}.{payload}.{flipped}"))


@pytest.fixture
def attacker_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_signed_by_an_unknown_key(whoami, issued, attacker_key):
    _, claims = header_and_claims(issued["access_token"])
    forged = jwt.encode(
        claims, attacker_key, algorithm="RS256", headers={"typ": "at+jwt", "kid": "attacker"}
    )

    assert_invalid_token(whoami(forged))


def test_signed_by_another_key_under_the_real_kid(whoami, issued, attacker_key):
    header, claims = header_and_claims(issued["access_token"])
    forged = jwt.encode(
        claims, attacker_key, algorithm="RS256", headers={"typ": "at+jwt", "kid": header["kid"]}
    )

    assert_invalid_token(whoami(forged))


@pytest.mark.parametrize(
    "header_change",
    [
        pytest.param({"kid": None}, id="missing-kid"),
        pytest.param({"kid": ""}, id="empty-kid"),
        pytest.param({"typ": "JWT"}, id="typ-JWT"),
        pytest.param({"typ": ""}, id="missing-typ"),
        pytest.param({"typ": "rt+jwt"}, id="other-typ"),
        pytest.param({"alg": "RS512"}, id="alg-not-the-keys"),
        pytest.param({"alg": "PS256"}, id="alg-pss"),
    ],
)
def test_real_key_but_wrong_header(whoami, issued, header_change):
    """Correctly signed, so only the header checks can refuse these."""
    _, claims = header_and_claims(issued["access_token"])

    forged = sign_with_real_key(claims, **header_change)

    assert_invalid_token(whoami(forged))


@pytest.mark.parametrize(
    "claim_change",
    [
        pytest.param({"iss": "https://evil.example/auth"}, id="other-issuer"),
        pytest.param({"iss": None}, id="missing-issuer"),
        pytest.param({"jti": None}, id="missing-jti"),
        pytest.param({"jti": "not-a-uuid"}, id="jti-not-a-uuid"),
        pytest.param({"jti": str(uuid.uuid4())}, id="jti-of-no-pair"),
        pytest.param({"client_id": "someone-else"}, id="other-client-id"),
        pytest.param({"client_id": None}, id="missing-client-id"),
        pytest.param({"sub": "999999"}, id="other-subject"),
        pytest.param({"sub": 1}, id="subject-not-a-string"),
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"exp": "9999999999"}, id="exp-as-string"),
    ],
)
def test_real_key_but_wrong_claims(whoami, issued, claim_change):
    _, claims = header_and_claims(issued["access_token"])
    claims = {**claims, **claim_change}
    claims = {name: value for name, value in claims.items() if value is not None}

    forged = sign_with_real_key(claims)

    assert_invalid_token(whoami(forged))


def test_another_pairs_id_in_a_validly_signed_token(whoami, login, make_user):
    """The pair a token names must belong to the token's subject."""
    make_user("bob")
    alice_pair = pair_of(login())
    bob_token = login(username="bob")["access_token"]
    _, claims = header_and_claims(bob_token)

    forged = sign_with_real_key({**claims, "jti": str(alice_pair.pk)})

    assert_invalid_token(whoami(forged))
