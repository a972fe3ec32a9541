"""DRF authentication with access tokens (RFC 6750 bearer tokens).

Put ``token_lifecycle.authentication.BearerTokenAuthentication`` in
``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``. A request goes through
four steps, each a method a project can override:

1. :meth:`~BearerTokenAuthentication.get_header`: the credentials of an
   ``Authorization: Bearer`` header, or None to let other classes try;
2. :meth:`~BearerTokenAuthentication.get_raw_token`: the token, checked for
   shape and size before any work is spent on it;
3. :meth:`~BearerTokenAuthentication.get_validated_token`: its claims, once
   signature, type, issuer, audience and expiry are checked (no query;
   remembered per process, :mod:`token_lifecycle.keys.access_tokens`);
4. :meth:`~BearerTokenAuthentication.get_user`: the user and client of its
   pair, if the pair may still be used (:mod:`token_lifecycle.cache`: no query
   on a warm cache, one on a cold one). A revoked or evicted pair, a
   deactivated client or user is refused.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from functools import cached_property
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .. import cache, clock, rfc6750
from ..conf import lifecycle_settings
from ..credentials import REFRESH_TOKEN_PREFIX
from ..issuer import issuer_for
from ..keys import InvalidAccessToken, verify_access_token
from ..models import Client
from ..outage import DATABASE_ERRORS, as_unavailable


@dataclasses.dataclass(frozen=True)
class AccessToken:
    """What ``request.auth`` holds for a request authenticated by an access token."""

    client: Client
    claims: dict[str, Any]

    @cached_property
    def pair_id(self) -> uuid.UUID:
        return uuid.UUID(self.claims["jti"])

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @cached_property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.claims.get("scope", "").split())


class BearerTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <access token>``.

    Requests without a bearer header are left to the other authentication
    classes (``None``); a bearer header that does not hold a usable access
    token is a 401 with an RFC 6750 ``invalid_token`` challenge, and a
    database outage on a cold cache is a 503.
    """

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, AccessToken] | None:
        credentials = self.get_header(request)
        if credentials is None:
            return None
        now = clock.now()  # one instant for both checks
        try:
            claims = self.get_validated_token(request, self.get_raw_token(credentials), now)
            user, client = self.get_user(claims, now)
        except InvalidAccessToken as error:
            # Remembered for authenticate_header, which DRF calls without the exception.
            request._bearer_error = str(error)
            raise exceptions.AuthenticationFailed(str(error)) from None
        except DATABASE_ERRORS as error:
            raise as_unavailable(error) from None
        return user, AccessToken(client=client, claims=claims)

    def get_header(self, request: Request) -> str | None:
        """What follows ``Bearer`` in the Authorization header; None for any other scheme."""
        return rfc6750.credentials(request.META.get("HTTP_AUTHORIZATION", ""), self.keyword)

    def get_raw_token(self, credentials: str) -> str:
        """The access token in the header's credentials, or :class:`InvalidAccessToken`."""
        token = rfc6750.bearer_token(credentials, lifecycle_settings().max_bearer_token_bytes)
        if token.startswith(REFRESH_TOKEN_PREFIX):
            raise InvalidAccessToken("A refresh token cannot be used as an access token.")
        return token

    def get_validated_token(self, request: Request, token: str, now: datetime) -> dict[str, Any]:
        """The token's claims, its signature, type, issuer, audience and expiry checked."""
        return verify_access_token(token, issuer=issuer_for(request), now=now)

    def get_user(self, claims: dict[str, Any], now: datetime) -> tuple[Any, Client]:
        """The ``(user, client)`` of the token's pair, if the pair may still be used."""
        return cache.validate_pair(claims, now)

    def authenticate_header(self, request: Request) -> str:
        error = getattr(request, "_bearer_error", None)
        if error is None:
            return rfc6750.challenge()
        return rfc6750.challenge("invalid_token", error)
