"""DRF authentication with access tokens (RFC 6750 bearer tokens).

Put ``token_lifecycle.authentication.BearerTokenAuthentication`` in
``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``. Two steps, each with its
own cache: the token's signature and claims (:mod:`.tokens`, remembered per
process), then whether its pair may still be used (:mod:`.validation`: a
revoked or evicted pair, a deactivated client or user is refused), which
costs no query on a warm cache and one on a cold one.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from functools import cached_property
from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from .clock import now as clock
from .conf import lifecycle_settings
from .credentials import REFRESH_TOKEN_PREFIX
from .models import Client
from .tokens import InvalidAccessToken, decode_access_token_cached, issuer_for
from .validation import validate_pair

logger = logging.getLogger(__name__)

REALM = "api"


class ServiceUnavailable(exceptions.APIException):
    """503 with ``Retry-After: 1``: the database could not be reached; retrying is safe."""

    status_code = 503
    default_detail = "The service is temporarily unavailable; retry later."
    default_code = "temporarily_unavailable"
    wait = 1  # DRF's exception handler turns this into Retry-After


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
    token is a 401 with an RFC 6750 ``invalid_token`` challenge.
    """

    keyword = "bearer"

    def authenticate(self, request):
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != self.keyword:
            return None
        token = token.strip()
        try:
            return self._authenticate(request, token)
        except InvalidAccessToken as error:
            # Remembered for authenticate_header, which DRF calls without the exception.
            request._bearer_error = str(error)
            raise exceptions.AuthenticationFailed(str(error)) from None
        except (OperationalError, InterfaceError) as error:
            # A cold cache needs the database; when it is down, say so, not 500.
            logger.warning("Database unavailable; answering 503.", exc_info=error)
            raise ServiceUnavailable() from None

    def _authenticate(self, request, token: str):
        if not token or " " in token:
            raise InvalidAccessToken("The Authorization header is malformed.")
        if len(token) > lifecycle_settings().max_bearer_token_bytes:
            raise InvalidAccessToken("The access token is too long.")
        if token.startswith(REFRESH_TOKEN_PREFIX):
            raise InvalidAccessToken("A refresh token cannot be used as an access token.")
        now = clock()
        claims = decode_access_token_cached(token, issuer=issuer_for(request), now=now)
        user, client = validate_pair(claims, now)
        return user, AccessToken(client=client, claims=claims)

    def authenticate_header(self, request) -> str:
        error = getattr(request, "_bearer_error", None)
        if error is None:
            return f'Bearer realm="{REALM}"'
        description = error.replace("\\", "").replace('"', "'")
        return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
