"""Checking an access token locally, as the authorization server itself does (RFC 9068).

The same rules as the server's own verification: ``typ`` must be ``at+jwt``;
the algorithm is the one of the JWKS key named by ``kid`` (never the header's
choice, never ``none``); ``iss`` must be ``ISSUER`` and ``aud`` must be or
contain ``AUDIENCE``; the expiry is exclusive and no leeway extends it; the
leeway only forgives ``iat``/``nbf`` slightly in the future (the server's
clock ahead of ours). Times are compared with the application clock.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import clock, rfc9068
from .discovery import AuthorizationServer
from .errors import InvalidToken
from .settings import RemoteSettings

_REQUIRED_CLAIMS = (*rfc9068.REQUIRED_CLAIMS, "aud")


def verify_token(
    token: str, server: AuthorizationServer, settings: RemoteSettings
) -> dict[str, Any]:
    """The token's claims, or :class:`InvalidToken` saying what is wrong with it.

    A token already verified by this process under the same settings is not
    verified again (the signature check is most of the cost); what can change
    is checked again on every use: the expiry, and its key still in the JWKS.
    Raises :class:`~.errors.AuthorizationServerUnavailable` when the keys are
    needed and cannot be fetched.
    """
    return _verified.verify(token, server, settings)


class _VerifiedTokens:
    """Claims of tokens this process verified, by token string; bounded, oldest out first."""

    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._settings: RemoteSettings | None = None
        self._claims: dict[str, tuple[dict[str, Any], str]] = {}

    def verify(
        self, token: str, server: AuthorizationServer, settings: RemoteSettings
    ) -> dict[str, Any]:
        if settings is not self._settings:
            self._settings, self._claims = settings, {}  # another issuer, audience or leeway
        remembered = self._claims.get(token)
        if remembered is None:
            claims, kid = _verify(token, server, settings)
            if len(self._claims) >= self.MAX_ENTRIES:
                # Another thread may evict at the same moment: losing that race is harmless.
                with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                    del self._claims[next(iter(self._claims))]
            self._claims[token] = (claims, kid)
            return claims
        claims, kid = remembered
        if clock.now().timestamp() >= claims["exp"]:
            raise InvalidToken("The access token has expired.")
        if server.key(kid) is None:
            raise InvalidToken("The access token was signed by an unknown key.")
        return claims


def _verify(
    token: str, server: AuthorizationServer, settings: RemoteSettings
) -> tuple[dict[str, Any], str]:
    header = rfc9068.unverified_header(token)
    kid = rfc9068.checked_kid(header)
    key = server.key(kid)
    if key is None:
        raise InvalidToken("The access token was signed by an unknown key.")
    claims = rfc9068.decode(
        token, header, key.key, key.algorithm, issuer=settings.issuer, required=_REQUIRED_CLAIMS
    )
    rfc9068.check_claims(
        claims,
        audience=settings.expected_audience,
        audience_required=True,
        now=clock.now().timestamp(),
        leeway=settings.leeway.total_seconds(),
    )
    return claims, kid


_verified = _VerifiedTokens()
