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
from collections.abc import Mapping
from typing import Any

TOKEN_TYPE = "at+jwt"
#: RFC 9068 §4: the media type, with or without its ``application/`` prefix.
ACCEPTED_TYPES = frozenset({TOKEN_TYPE, "application/" + TOKEN_TYPE})
REQUIRED_CLAIMS = ("iss", "sub", "client_id", "jti", "iat", "exp")
#: Our kids are RFC 7638 thumbprints; anything else is refused before any lookup.
KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidAccessToken(Exception):
    """The bearer credential is not a valid access token; the message is safe to show."""


def checked_kid(header: Mapping[str, Any]) -> str:
    """The key id of an access token's JOSE header, once its ``typ`` is checked."""
    token_type = header.get("typ")
    if not isinstance(token_type, str) or token_type not in ACCEPTED_TYPES:
        raise InvalidAccessToken("The token is not an access token.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise InvalidAccessToken("The access token has no valid key id.")
    return kid


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
