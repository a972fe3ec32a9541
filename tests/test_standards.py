"""What other libraries check: our tokens, metadata and JWKS through PyJWT and Authlib.

- RFC 9068 §2.2: an access token carries ``aud``. Without ``AUDIENCE`` it is
  the issuer (the APIs of this deployment), so PyJWT's audience check and
  Authlib's ``JWTBearerTokenValidator`` accept our tokens with default
  settings; introspection reports the same ``aud``.
- RFC 8414: the metadata passes Authlib's ``AuthorizationServerMetadata``
  validation in full, every REQUIRED member present (``response_types_supported``
  since the authorization endpoint exists).
- RFC 7517 §4.3: each JWK carries ``use`` and not ``key_ops``, also for keys
  stored before this was so.

Authlib's validators insist on https, so these requests are made as https.
"""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from conftest import PASSWORD
from joserfc.jwk import KeySet
from jwt.algorithms import get_default_algorithms

from token_lifecycle import keys
from token_lifecycle.models import SigningKey

JWKS_URL = "/auth/.well-known/jwks.json"
METADATA_URL = "/auth/.well-known/oauth-authorization-server"
ROOT_METADATA_URL = "/.well-known/oauth-authorization-server/auth"
INTROSPECT_URL = "/auth/token/introspect/"
ISSUER = "https://testserver/auth"
ALGORITHMS = ["RS256", "ES256", "EdDSA"]


@pytest.fixture
def https_login(token_request, oauth_client, user):
    """A password login made over https, so that the derived issuer is ``ISSUER``."""

    def do() -> dict:
        client_obj, secret = oauth_client
        response = token_request(
            {"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=(client_obj.client_id, secret),
            secure=True,
        )
        assert response.status_code == 200, response.content
        return response.json()

    return do


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def re_signed(token: str, **claims) -> str:
    """``token`` with ``claims`` changed (None removes one), signed with our own key."""
    key = keys.signing_key()
    body = {
        name: value for name, value in {**claims_of(token), **claims}.items() if value is not None
    }
    header = jwt.get_unverified_header(token)
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
    signature = get_default_algorithms()[key.algorithm].sign(
        signing_input.encode(), key.private_key
    )
    return f"{signing_input}.{b64url(signature)}"


def whoami_status(client, token: str) -> int:
    return client.get(
        "/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}", secure=True
    ).status_code


class Validator(JWTBearerTokenValidator):
    """A resource server built on Authlib, given our JWKS document."""

    def __init__(self, jwks: dict, **options) -> None:
        super().__init__(**options)
        self.jwks = jwks

    def get_jwks(self) -> KeySet:
        return KeySet.import_key_set(self.jwks)


def authlib_accepts(token: str, jwks: dict, *, resource_server: str = ISSUER) -> dict:
    validator = Validator(jwks, issuer=ISSUER, resource_server=resource_server)
    claims = validator.authenticate_token(token)
    validator.validate_token(claims, scopes=None, request=None)
    return dict(claims)


# -- RFC 9068 §2.2: aud by default ----------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pyjwt_audience_check_accepts_our_tokens_with_default_settings(
    client, lifecycle, https_login, algorithm
):
    lifecycle(SIGNING_ALGORITHM=algorithm)
    token = https_login()["access_token"]
    jwks = client.get(JWKS_URL, secure=True).json()
    jwk = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]

    claims = jwt.decode(
        token,
        jwk.key,
        algorithms=[jwk.algorithm_name],
        issuer=ISSUER,
        audience=ISSUER,
        options={"require": ["aud", "iss", "exp"]},
    )

    assert claims["aud"] == claims["iss"] == ISSUER
    with pytest.raises(jwt.InvalidAudienceError):  # control: the check is made
        jwt.decode(token, jwk.key, algorithms=[jwk.algorithm_name], audience="https://other/")


# joserfc, under Authlib, refuses "EdDSA" unless asked (docs/tokens.md, choosing an algorithm).
@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_authlib_jwt_bearer_token_validator_accepts_our_tokens_with_default_settings(
    client, lifecycle, https_login, algorithm
):
    lifecycle(SIGNING_ALGORITHM=algorithm)
    token = https_login()["access_token"]
    jwks = client.get(JWKS_URL, secure=True).json()

    claims = authlib_accepts(token, jwks)

    assert claims["aud"] == ISSUER
    with pytest.raises(InvalidTokenError):  # control: another resource server refuses it
        authlib_accepts(token, jwks, resource_server="https://other.example/")


def test_the_audience_setting_replaces_the_default(client, lifecycle, https_login):
    lifecycle(AUDIENCE="https://api.example.com")
    token = https_login()["access_token"]
    jwks = client.get(JWKS_URL, secure=True).json()

    claims = authlib_accepts(token, jwks, resource_server="https://api.example.com")

    assert claims["aud"] == "https://api.example.com"
    assert whoami_status(client, token) == 200


@pytest.mark.parametrize("audience", [None, "https://api.example.com"], ids=["default", "setting"])
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_introspection_reports_the_tokens_audience(
    lifecycle, oauth_client, https_login, oauth_post, audience, kind
):
    lifecycle(AUDIENCE=audience)
    tokens = https_login()
    client_obj, secret = oauth_client

    answer = oauth_post(
        INTROSPECT_URL, {"token": tokens[kind]}, auth=(client_obj.client_id, secret), secure=True
    ).json()

    assert answer["active"] is True
    assert answer["aud"] == claims_of(tokens["access_token"])["aud"] == (audience or ISSUER)


@pytest.mark.parametrize(
    ("aud", "status"),
    [
        pytest.param(ISSUER, 200, id="the-issuer"),
        pytest.param([ISSUER, "https://other.example/"], 200, id="list-holding-the-issuer"),
        pytest.param("https://other.example/", 401, id="another-audience"),
        pytest.param(ISSUER + "/", 401, id="near-miss"),
        pytest.param("", 401, id="empty"),
        pytest.param(None, 200, id="missing-as-before-this-version"),
    ],
)
def test_our_own_verification_checks_the_default_audience(client, https_login, aud, status):
    """Signed with our key, so only ``aud`` differs; a token without it predates the default."""
    token = re_signed(https_login()["access_token"], aud=aud)

    assert whoami_status(client, token) == status


# -- RFC 8414: the metadata --------------------------------------------------------------


@pytest.mark.parametrize("path", [METADATA_URL, ROOT_METADATA_URL])
def test_metadata_passes_authlib_validation(client, db, path):
    metadata = client.get(path, secure=True).json()

    AuthorizationServerMetadata(metadata).validate()  # every member, REQUIRED ones included

    assert metadata["issuer"] == ISSUER
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_endpoint"] == f"{ISSUER}/authorize/"
    with pytest.raises(ValueError, match="issuer"):  # control: the validator does refuse
        AuthorizationServerMetadata({**metadata, "issuer": "http://insecure.example"}).validate()
    without = {k: v for k, v in metadata.items() if k != "response_types_supported"}
    with pytest.raises(ValueError, match="response_types_supported"):
        AuthorizationServerMetadata(without).validate()


def test_metadata_with_the_issuer_setting_passes_authlib_validation(client, lifecycle, db):
    lifecycle(ISSUER="https://id.example.com/auth")
    metadata = client.get(METADATA_URL, secure=True).json()

    AuthorizationServerMetadata(metadata).validate()

    assert metadata["issuer"] == "https://id.example.com/auth"


# -- RFC 7517 §4.3: use or key_ops, not both -------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_published_jwk_carries_use_and_not_key_ops(client, lifecycle, db, algorithm):
    lifecycle(SIGNING_ALGORITHM=algorithm)
    keys.signing_key()

    [jwk] = client.get(JWKS_URL).json()["keys"]

    assert jwk["use"] == "sig"
    assert "key_ops" not in jwk
    assert "key_ops" not in SigningKey.objects.get().public_jwk  # stored so from now on


def test_a_key_stored_with_key_ops_is_published_with_use_only(client, https_login):
    """An RSA key created before: PyJWT's to_jwk had added key_ops next to our use."""
    token = https_login()["access_token"]
    row = SigningKey.objects.get()
    row.public_jwk = {**row.public_jwk, "key_ops": ["verify"]}
    row.save()

    jwks = client.get(JWKS_URL, secure=True).json()

    [jwk] = jwks["keys"]
    assert "key_ops" not in jwk
    assert (jwk["use"], jwk["kid"], jwk["kty"]) == ("sig", row.kid, "RSA")
    assert authlib_accepts(token, jwks)["jti"] == claims_of(token)["jti"]
