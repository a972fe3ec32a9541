"""Bearer tokens in the ``Authorization`` header (RFC 6750 §2.1) and the challenges (§3).

Shared by the authorization server's own authentication
(:mod:`token_lifecycle.bearer`), a resource server's
(:mod:`token_lifecycle.remote`) and :mod:`token_lifecycle.permissions`; it
imports neither Django nor the models.
"""

from __future__ import annotations

from .rfc9068 import InvalidAccessToken

#: The realm of every challenge.
REALM = "api"


def credentials(authorization: str, keyword: str = "bearer") -> str | None:
    """What follows ``Bearer`` in an ``Authorization`` value; None for any other scheme."""
    scheme, _, rest = authorization.partition(" ")
    return rest if scheme.lower() == keyword else None


def bearer_token(credentials: str, max_bytes: int) -> str:
    """The token of ``Bearer`` credentials, or :class:`InvalidAccessToken`."""
    token = credentials.strip()
    if not token or " " in token:
        raise InvalidAccessToken("The Authorization header is malformed.")
    if len(token) > max_bytes:
        raise InvalidAccessToken("The access token is too long.")
    return token


def challenge(
    error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """A ``WWW-Authenticate: Bearer`` value (RFC 6750 §3)."""
    parts = [f'realm="{REALM}"']
    for name, value in (("error", error), ("error_description", description), ("scope", scope)):
        if value is not None:
            parts.append(f'{name}="{_quotable(value)}"')
    return "Bearer " + ", ".join(parts)


def _quotable(value: str) -> str:
    # RFC 6750 §3: the values exclude '"' and '\'.
    return value.replace("\\", "").replace('"', "'")
