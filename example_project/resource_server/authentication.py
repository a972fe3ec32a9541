"""Verify this project's access tokens in another service, with nothing but the JWKS URL.

This is what a separate API (another Django project, or any service with a
JWT library) does to trust our access tokens without our database: fetch the
public keys from the JWKS, check the signature, ``typ``, ``iss``, ``aud`` and
expiry, and use the claims.

What it gives up: a revoked, evicted or logged-out pair keeps working here
until its access token expires (15 days by default), because only our
database knows it was revoked. A service that needs revocation at once asks
``POST /auth/token/introspect/`` (as a client with ``can_introspect``),
possibly caching the answer for a short while, or is configured with short
access-token lifetimes.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import jwt
from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

ACCEPTED_ALGORITHMS = ("RS256", "ES256", "EdDSA")


@dataclasses.dataclass(frozen=True)
class TokenUser:
    """The caller as the token describes it; there is no user table here."""

    id: str
    client_id: str
    scopes: frozenset[str]
    is_authenticated: bool = True
    is_active: bool = True

    @property
    def pk(self) -> str:
        return self.id


@lru_cache(maxsize=8)
def _jwk_client(jwks_url: str) -> jwt.PyJWKClient:
    # One client per process: it caches the keys, and refetches the JWKS when
    # a token names a kid it does not know yet (a rotation).
    return jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=900)


class JWKSAuthentication(BaseAuthentication):
    """DRF authentication for a resource server: bearer JWTs checked against a JWKS."""

    def __init__(self, *, jwks_url=None, issuer=None, audience=None, leeway: int = 30) -> None:
        self.jwks_url = jwks_url or settings.AUTH_SERVER_JWKS_URL
        self.issuer = issuer or settings.AUTH_SERVER_ISSUER
        self.audience = audience or getattr(settings, "AUTH_SERVER_AUDIENCE", None)
        self.leeway = leeway

    def authenticate(self, request):
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims = self.verify(token.strip())
        except (jwt.PyJWTError, KeyError) as error:
            raise exceptions.AuthenticationFailed(f"Invalid access token: {error}") from None
        user = TokenUser(
            id=claims["sub"],
            client_id=claims["client_id"],
            scopes=frozenset(claims.get("scope", "").split()),
        )
        return user, claims

    def verify(self, token: str) -> dict:
        header = jwt.get_unverified_header(token)
        if header.get("typ") not in ("at+jwt", "application/at+jwt"):
            raise jwt.InvalidTokenError("not an access token")
        signing_key = _jwk_client(self.jwks_url).get_signing_key_from_jwt(token)
        if signing_key.algorithm_name not in ACCEPTED_ALGORITHMS:
            raise jwt.InvalidAlgorithmError("unexpected algorithm")
        return jwt.decode(
            token,
            signing_key.key,
            algorithms=[signing_key.algorithm_name],  # the key's, never the header's
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
            options={
                "require": ["iss", "sub", "client_id", "jti", "iat", "exp"],
                "verify_aud": self.audience is not None,
            },
        )

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
