"""JWT access tokens (RFC 9068): the checks every verifier of ours applies.

The authorization server (:mod:`token_lifecycle.keys.access_tokens`) and a
resource server (:mod:`token_lifecycle.remote`) verify the same way: ``typ``
is ``at+jwt``; ``kid`` is one of our key ids; ``aud`` is or holds the
audience; the expiry is exclusive and no leeway extends it; the leeway only
forgives ``iat``/``nbf`` slightly in the future (another server's clock ahead
of this one). This module imports neither Django nor the models, so a service
without them shares it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

TOKEN_TYPE = "at+jwt"
#: RFC 9068 §4: the media type, with or without its ``application/`` prefix.
ACCEPTED_TYPES = frozenset({TOKEN_TYPE, "application/" + TOKEN_TYPE})
REQUIRED_CLAIMS = ("iss", "sub", "client_id", "jti", "iat", "exp")
#: Our kids are RFC 7638 thumbprints; anything else is refused before any lookup.
KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidAccessToken(Exception):
    """The bearer credential is not a valid access token; the message is safe to show."""


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read before the key that verifies the token is known."""
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidAccessToken("The access token is malformed.") from None


def checked_kid(header: Mapping[str, Any]) -> str:
    """The key id of an access token's JOSE header, once its ``typ`` is checked."""
    token_type = header.get("typ")
    if not isinstance(token_type, str) or token_type not in ACCEPTED_TYPES:
        raise InvalidAccessToken("The token is not an access token.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise InvalidAccessToken("The access token has no valid key id.")
    return kid


def decode(
    token: str,
    header: Mapping[str, Any],
    key: Any,
    algorithm: str,
    *,
    issuer: str,
    required: Sequence[str] = REQUIRED_CLAIMS,
) -> dict[str, Any]:
    """The claims, once the signature by ``key`` (with its own algorithm) and ``iss`` hold.

    Time claims and ``aud`` are left to :func:`check_claims`: the clock is the
    application's, and the server accepts tokens without ``aud`` from before
    tokens carried it.
    """
    if header.get("alg") != algorithm:
        raise InvalidAccessToken("The access token's algorithm does not match its key.")
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            options={
                "require": list(required),
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise InvalidAccessToken("The access token's signature is invalid.") from None
    except jwt.InvalidIssuerError:
        raise InvalidAccessToken("The access token was issued by another issuer.") from None
    except jwt.PyJWTError:
        raise InvalidAccessToken("The access token is malformed.") from None


def check_claims(
    claims: Mapping[str, Any],
    *,
    audience: str,
    audience_required: bool,
    now: float,
    leeway: float,
    accept_expired: bool = False,
) -> None:
    """The audience, the time claims and the types of the string claims."""
    if "aud" in claims or audience_required:
        aud = claims.get("aud")
        # RFC 7519 §4.1.3: a string, or a list holding it.
        if aud != audience and not (isinstance(aud, list) and audience in aud):
            raise InvalidAccessToken("The access token is meant for another audience.")
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidAccessToken("The access token is malformed.")
    if not accept_expired and now >= claims["exp"]:
        raise InvalidAccessToken("The access token has expired.")
    if claims["iat"] > now + leeway or claims.get("nbf", 0) > now + leeway:
        raise InvalidAccessToken("The access token is not valid yet.")
    if not all(isinstance(claims[name], str) for name in ("sub", "client_id", "jti")):
        raise InvalidAccessToken("The access token is malformed.")
