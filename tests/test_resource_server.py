"""The resource-server example: another service verifies our tokens from the JWKS alone.

It also shows the trade-off the README documents: such a service does not see
a revocation until the token expires, unless it asks the introspection endpoint.
"""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlencode

import jwt
import pytest
from conftest import PASSWORD
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIRequestFactory

from example_project.resource_server import authentication
from example_project.resource_server.authentication import JWKSAuthentication
from token_lifecycle import clock, keys, services
from token_lifecycle.models import SigningKey, TokenPair
from token_lifecycle.rules import RevokeReason

pytestmark = pytest.mark.django_db(transaction=True)


def post_form(url: str, params: dict) -> dict:
    request = urllib.request.Request(url, data=urlencode(params).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


class AuthServer:
    """The example project served live, with one confidential client and user alice."""

    def __init__(self, url: str, client_id: str, secret: str) -> None:
        self.url = url
        self.credentials = {"client_id": client_id, "client_secret": secret}

    def login(self) -> dict:
        params = {"grant_type": "password", "username": "alice", "password": PASSWORD}
        return post_form(f"{self.url}/auth/token/", {**params, **self.credentials})

    def introspect(self, token: str) -> dict:
        return post_form(
            f"{self.url}/auth/token/introspect/", {"token": token, **self.credentials}
        )

    def resource_auth(self, issuer: str | None = None) -> JWKSAuthentication:
        """The example's authentication class, pointed at this server's JWKS."""
        return JWKSAuthentication(
            jwks_url=f"{self.url}/auth/.well-known/jwks.json", issuer=issuer or f"{self.url}/auth"
        )


@pytest.fixture
def auth_server(live_server, oauth_client, user):
    authentication._jwk_client.cache_clear()  # JWKS clients are cached per URL
    client, secret = oauth_client
    yield AuthServer(live_server.url, client.client_id, secret)
    authentication._jwk_client.cache_clear()


def bearer(token: str):
    return APIRequestFactory().get("/api/resource/", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_token_verifies_with_only_the_jwks(auth_server, user, oauth_client):
    pair = auth_server.login()
    token_user, claims = auth_server.resource_auth().authenticate(bearer(pair["access_token"]))
    assert token_user.id == str(user.pk)
    assert token_user.client_id == oauth_client[0].client_id
    assert claims["jti"] == str(TokenPair.objects.get().pk)


def test_rotation_reaches_a_resource_server_through_its_jwks_cache(auth_server):
    """Why a rotation publishes the new key ``JWKS_MAX_AGE`` before it signs.

    PyJWKClient refetches for an unknown kid at most every 30 s, so a key that
    signed at once could be refused for that long. Published ahead, the key is
    in the resource server's JWKS (refetched within JWKS_MAX_AGE) before any
    token carries it. The passage of JWKS_MAX_AGE is simulated by moving the
    new key's start, since the live server runs on the real clock.
    """
    old_token = auth_server.login()["access_token"]
    new_key = keys.rotate()  # published now, signs in JWKS_MAX_AGE
    assert jwt.get_unverified_header(auth_server.login()["access_token"])["kid"] != new_key.kid

    authentication._jwk_client.cache_clear()  # the resource server's cache expired...
    resource_auth = auth_server.resource_auth()
    resource_auth.authenticate(bearer(old_token))  # ...and it fetched the JWKS again

    now = clock.now()  # the app's whole-second clock
    SigningKey.objects.filter(pk=new_key.pk).update(signs_from=now)
    SigningKey.objects.exclude(pk=new_key.pk).update(retired_at=now)
    keys.clear_cache()
    new_token = auth_server.login()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid
    token_user, _ = resource_auth.authenticate(bearer(new_token))  # no refetch needed
    assert token_user.is_authenticated
    assert resource_auth.authenticate(bearer(old_token))[0].is_authenticated


@pytest.mark.parametrize("which", ["refresh-token", "tampered", "not-a-jwt"])
def test_refresh_and_forged_tokens_are_refused(auth_server, which):
    pair = auth_server.login()
    header, payload, signature = pair["access_token"].split(".")
    token = {
        "refresh-token": pair["refresh_token"],
        "tampered": f"{header}.{payload[:-2]}AA.{signature}",
        "not-a-jwt": "not-a-jwt",
    }[which]
    with pytest.raises(AuthenticationFailed):
        auth_server.resource_auth().authenticate(bearer(token))


def test_wrong_issuer_is_refused(auth_server):
    token = auth_server.login()["access_token"]
    with pytest.raises(AuthenticationFailed):
        auth_server.resource_auth(issuer="https://elsewhere/auth").authenticate(bearer(token))


def test_revocation_is_seen_only_through_introspection(auth_server):
    """The documented trade-off: without our database, no revocation before expiry."""
    pair = auth_server.login()
    services.revoke_pair(TokenPair.objects.get(), RevokeReason.LOGOUT)
    token_user, _ = auth_server.resource_auth().authenticate(bearer(pair["access_token"]))
    assert token_user.is_authenticated  # still accepted by the resource server...
    assert auth_server.introspect(pair["access_token"]) == {"active": False}  # ...not by us
