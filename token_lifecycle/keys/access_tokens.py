"""Access tokens: signed JWTs shaped per RFC 9068.

Verification accepts only what this app issues: the algorithm is the one of
the key named by ``kid`` (never ``none``, never the header's choice), ``typ``
must be ``at+jwt``, and ``iss`` and ``aud`` must match. ``aud`` is the
``AUDIENCE`` setting, or else the issuer: RFC 9068 §2.2 requires the claim, and
without a setting the APIs of this deployment are its audience.
Time claims are checked against the application clock passed in; the leeway
only forgives ``iat``/``nbf`` slightly in the future (another server's clock
ahead of ours) and never extends ``exp``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import jwt
from django.core.signals import setting_changed
from django.dispatch import receiver

from ..conf import lifecycle_settings
from ..rfc9068 import (
    TOKEN_TYPE,
    InvalidAccessToken,
    check_claims,
    checked_kid,
    decode,
    unverified_header,
)
from .store import (
    observe_key_state,
    shared_cache,
    signing_key_for,
    sync_key_state,
    verification_key,
)


def audience_for(issuer: str) -> str:
    """The ``aud`` of access tokens issued under ``issuer``: ``AUDIENCE``, or the issuer."""
    return lifecycle_settings().audience or issuer


def encode_access_token(
    *,
    pair_id: str,
    subject: str,
    client_id: str,
    issued_at: datetime,
    expires_at: datetime,
    issuer: str,
    scope: str = "",
) -> str:
    """Sign an access token with the current signing key."""
    key = signing_key_for(expires_at)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "client_id": client_id,
        "jti": pair_id,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "aud": audience_for(issuer),
    }
    if scope:
        claims["scope"] = scope
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,
        headers={"typ": TOKEN_TYPE, "kid": key.kid},
    )


def decode_access_token(
    token: str, *, issuer: str, now: datetime, accept_expired: bool = False
) -> dict[str, Any]:
    """Verify an access token and return its claims, or raise :class:`InvalidAccessToken`.

    ``accept_expired=True`` is for the revocation endpoint: an expired access
    token, even one whose key has since left the JWKS, still names a pair
    whose refresh token may be alive. The signature is checked all the same.
    The shared key state is read first (one cache read), so a key another
    process withdrew is not trusted here either.
    """
    sync_key_state()
    return _verify(token, issuer=issuer, now=now, accept_expired=accept_expired)[0]


def _verify(
    token: str, *, issuer: str, now: datetime, accept_expired: bool = False
) -> tuple[dict[str, Any], str]:
    """:func:`decode_access_token`, also returning the kid that verified the token."""
    header = unverified_header(token)
    kid = checked_kid(header)  # before the key lookup: a made-up kid reaches no database
    key = verification_key(kid)
    if key is None or not (accept_expired or key.verifies(now)):
        raise InvalidAccessToken("The access token was signed by an unknown key.")
    claims = decode(token, header, key.public_key, key.algorithm, issuer=issuer)
    settings = lifecycle_settings()
    check_claims(
        claims,
        audience=audience_for(issuer),
        # Without AUDIENCE, a token with no aud is one issued before tokens carried
        # it by default: accepted until it expires.
        audience_required=settings.audience is not None,
        now=now.timestamp(),
        leeway=settings.leeway.total_seconds(),
        accept_expired=accept_expired,
    )
    return claims, kid


class _Claims(dict):
    """Verified claims, with the kid of the key that verified them (not a claim)."""

    __slots__ = ("kid",)


def check_key_state(version: Any, claims: dict[str, Any], now: datetime) -> None:
    """Refuse ``claims`` if their key no longer verifies, after noting the shared key state.

    For :func:`token_lifecycle.cache.validate_pair`, which reads ``version``
    with the pair's entries. A version other than the one this process's keys
    were loaded under drops them, so the key is looked up again in the database.
    """
    observe_key_state(version)
    kid = getattr(claims, "kid", None)
    if kid is None:
        return  # not from verify_access_token: nothing to look up
    key = verification_key(kid)  # a dict lookup unless the keys were just dropped
    if key is None or not key.verifies(now):
        raise InvalidAccessToken("The access token was signed by an unknown key.")


class _VerifiedTokens:
    """Claims of tokens whose signature this process already checked, by token string.

    Checking an RS256 signature and parsing the JWT is most of the cost of a
    request's authentication; a token is typically presented many times. What
    a remembered token is re-checked against on every use is what can change:
    the clock (``exp``), the request's issuer, and its key still verifying
    (a ``--compromised`` rotation; in another process, :func:`check_key_state`
    sees it). Bounded, oldest first out.
    """

    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._claims: dict[str, tuple[dict[str, Any], str]] = {}

    def decode(self, token: str, *, issuer: str, now: datetime) -> dict[str, Any]:
        remembered = self._claims.get(token)
        if remembered is None:
            claims, kid = _verify(token, issuer=issuer, now=now)
            if shared_cache() is not None:
                # check_key_state needs the kid. Not on local memory: a dict
                # subclass loses CPython's fast subscripts on the hot path.
                claims = _Claims(claims)
                claims.kid = kid
            self._remember(token, claims, kid)
            return claims
        claims, kid = remembered
        if now.timestamp() >= claims["exp"]:
            raise InvalidAccessToken("The access token has expired.")
        if claims["iss"] != issuer:
            raise InvalidAccessToken("The access token was issued by another issuer.")
        key = verification_key(kid)
        if key is None or not key.verifies(now):
            raise InvalidAccessToken("The access token was signed by an unknown key.")
        return claims

    def _remember(self, token: str, claims: dict[str, Any], kid: str) -> None:
        if len(self._claims) >= self.MAX_ENTRIES:
            # Another thread may evict at the same moment: losing that race is harmless.
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                del self._claims[next(iter(self._claims))]
        self._claims[token] = (claims, kid)

    def clear(self) -> None:
        self._claims = {}


_verified = _VerifiedTokens()
#: Verify an access token, reusing this process's earlier verification of the same token.
verify_access_token = _verified.decode


@receiver(setting_changed)
def _forget_verified(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TOKEN_LIFECYCLE", "SECRET_KEY", "CACHES"):
        _verified.clear()
