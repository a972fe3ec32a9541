"""``RemoteTokenAuthentication``: DRF authentication for another service that trusts our tokens.

A request goes through steps a service can override, as on the authorization
server (:class:`token_lifecycle.authentication.BearerTokenAuthentication`):

1. :meth:`~RemoteTokenAuthentication.get_header`: the credentials of an
   ``Authorization: Bearer`` header, or None to let other classes try;
2. :meth:`~RemoteTokenAuthentication.get_raw_token`: the token, checked for
   shape and size before any work is spent on it;
3. :meth:`~RemoteTokenAuthentication.get_validated_token`: its claims, the
   signature checked against the JWKS, and ``typ``, ``iss``, ``aud`` and expiry;
4. :meth:`~RemoteTokenAuthentication.get_introspection`: whether the
   authorization server still holds it active (cached for ``CACHE_SECONDS``);
5. :meth:`~RemoteTokenAuthentication.get_user`: ``request.user``, by default a
   :class:`TokenUser` built from the claims. Override it to map to a local user.

``request.auth`` is the verified claims (a dict). A bad token is a 401 with an
RFC 6750 ``invalid_token`` challenge; an authorization server that cannot be
asked is a 503 with ``Retry-After``, never a 500 and never an accepted token.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .. import rfc6750
from .discovery import authorization_server
from .errors import AuthorizationServerUnavailable, InvalidToken, TemporarilyUnavailable
from .introspection import introspect
from .settings import remote_settings
from .verification import verify_token

logger = logging.getLogger(__name__)

#: Bearer credentials longer than this are refused without being decoded (the server's default).
MAX_TOKEN_BYTES = 8 * 1024


@dataclasses.dataclass(frozen=True)
class TokenUser:
    """The caller as the token describes it: no database row behind it.

    ``id`` and ``pk`` are the token's ``sub`` (the user's primary key on the
    authorization server, as a string); ``username`` comes from the
    introspection answer.
    """

    id: str
    username: str
    client_id: str
    scopes: frozenset[str]
    is_authenticated: bool = dataclasses.field(default=True, init=False)
    is_anonymous: bool = dataclasses.field(default=False, init=False)
    is_active: bool = dataclasses.field(default=True, init=False)
    is_staff: bool = dataclasses.field(default=False, init=False)
    is_superuser: bool = dataclasses.field(default=False, init=False)

    @property
    def pk(self) -> str:
        return self.id

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False  # Django permissions live in a user table this service does not have

    def __str__(self) -> str:
        return self.username or self.id


class RemoteTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <access token>``, issued by ``TOKEN_LIFECYCLE_REMOTE['ISSUER']``."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, dict[str, Any]] | None:
        credentials = self.get_header(request)
        if credentials is None:
            return None
        try:
            token = self.get_raw_token(credentials)
            claims = self.get_validated_token(token)
            answer = self.get_introspection(token, claims)
            if not answer["active"]:
                raise InvalidToken("The access token is no longer active.")
            user = self.get_user(claims, answer)
        except InvalidToken as error:
            # Remembered for authenticate_header, which DRF calls without the exception.
            request._bearer_error = str(error)
            raise exceptions.AuthenticationFailed(str(error)) from None
        except AuthorizationServerUnavailable as error:
            logger.warning("Authorization server unavailable; answering 503: %s", error)
            raise TemporarilyUnavailable(remote_settings().retry_after) from None
        return user, claims

    def get_header(self, request: Request) -> str | None:
        """What follows ``Bearer`` in the Authorization header; None for any other scheme."""
        return rfc6750.credentials(request.META.get("HTTP_AUTHORIZATION", ""), self.keyword)

    def get_raw_token(self, credentials: str) -> str:
        """The access token in the header's credentials, or :class:`InvalidToken`."""
        return rfc6750.bearer_token(credentials, MAX_TOKEN_BYTES)

    def get_validated_token(self, token: str) -> dict[str, Any]:
        """The token's claims: signature, ``typ``, ``iss``, ``aud`` and expiry checked locally."""
        return verify_token(token, authorization_server(), remote_settings())

    def get_introspection(self, token: str, claims: dict[str, Any]) -> dict[str, Any]:
        """The authorization server's RFC 7662 answer, cached for ``CACHE_SECONDS``."""
        return introspect(token, claims, authorization_server(), remote_settings())

    def get_user(self, claims: dict[str, Any], introspection: dict[str, Any]) -> Any:
        """``request.user`` for verified, active ``claims``: a :class:`TokenUser` by default.

        Override to map the caller to a local user, e.g.
        ``User.objects.get_or_create(username=introspection["username"])[0]``.
        Raise :class:`~token_lifecycle.remote.errors.InvalidToken` to refuse the token.
        """
        return TokenUser(
            id=claims["sub"],
            username=str(introspection.get("username", "")),
            client_id=claims["client_id"],
            scopes=frozenset(str(claims.get("scope", "")).split()),
        )

    def authenticate_header(self, request: Request) -> str:
        error = getattr(request, "_bearer_error", None)
        if error is None:
            return rfc6750.challenge()
        return rfc6750.challenge("invalid_token", error)
