"""The pair a client holds, with the instants it reasons about, and its JSON form.

Expiry instants are computed from the client's own clock at the moment the
token request was *sent* (``obtained_at``), plus the server's ``expires_in``:
the server counts from a later instant, so the client's idea of expiry is
never later than the server's. Stores keep this JSON so that workers on other
hosts read the same instants (their clocks may differ by seconds; the
refresh margin is hours or days).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .errors import TokenEndpointError

_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class TokenSet:
    """An access/refresh token pair as the client knows it (instants in epoch seconds)."""

    # Kept out of repr(): a logged TokenSet must not leak credentials.
    access_token: str = dataclasses.field(repr=False)
    #: ``None`` when the server gave no ``expires_in``: only a 401 then triggers a renewal.
    access_expires_at: float | None
    refresh_token: str | None = dataclasses.field(repr=False)
    refresh_expires_at: float | None
    #: When the token request that produced this pair was sent (the client's clock).
    obtained_at: float
    scope: str | None = None

    @classmethod
    def from_token_response(cls, body: Any, *, requested_at: float) -> TokenSet:
        """Read an RFC 6749 §5.1 success body, or raise :class:`TokenEndpointError`."""
        if not isinstance(body, Mapping):
            raise TokenEndpointError("invalid_response", "The token response is not an object.")
        access_token = body.get("access_token")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(access_token, str) or not access_token:
            raise TokenEndpointError("invalid_response", "The token response has no access_token.")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise TokenEndpointError("invalid_response", f"Unsupported token_type {token_type!r}.")
        refresh_token = body.get("refresh_token")
        if refresh_token is not None and not isinstance(refresh_token, str):
            raise TokenEndpointError("invalid_response", "The refresh_token is not a string.")
        scope = body.get("scope")
        return cls(
            access_token=access_token,
            access_expires_at=_expiry(body, "expires_in", requested_at),
            refresh_token=refresh_token or None,
            refresh_expires_at=_expiry(body, "refresh_expires_in", requested_at),
            obtained_at=requested_at,
            scope=scope if isinstance(scope, str) else None,
        )

    @property
    def access_lifetime(self) -> float | None:
        """Seconds between the request and the access token's expiry, as issued."""
        if self.access_expires_at is None:
            return None
        return self.access_expires_at - self.obtained_at

    def access_usable(self, now: float) -> bool:
        """The access token has not expired yet (by the client's clock)."""
        return self.access_expires_at is None or now < self.access_expires_at

    def same_pair(self, other: TokenSet | None) -> bool:
        """Both describe the same pair (a pair is identified by its tokens)."""
        return other is not None and other.access_token == self.access_token

    def to_json(self) -> str:
        return json.dumps({"v": _FORMAT_VERSION, **dataclasses.asdict(self)})

    @classmethod
    def from_json(cls, text: str | bytes) -> TokenSet:
        """Parse :meth:`to_json` output; raises ``ValueError`` for anything else."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("v", None) != _FORMAT_VERSION:
            raise ValueError("not a stored token set")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"not a stored token set: {error}") from None


def _expiry(body: Mapping, field: str, requested_at: float) -> float | None:
    seconds = body.get(field)
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise TokenEndpointError("invalid_response", f"{field} is not a number of seconds.")
    return requested_at + seconds
