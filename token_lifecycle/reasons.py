"""Why a refresh was refused, as the ``reason`` member of an RFC 6749 error body.

RFC 6749 §5.2 allows extra members in an error response. ``invalid_grant``
covers every refused refresh, yet a client must act differently on them: a
revoked or reused token means "log in again", not "retry". The server sends
one of these values and the client library reads it: neither depends on the
wording of ``error_description``.

This module imports nothing, so the client library (which never imports
Django) and the server share it.
"""

from __future__ import annotations

import enum


class RefreshRefusal(str, enum.Enum):
    """The ``reason`` of a refused refresh (``"error": "invalid_grant"``)."""

    #: Unknown, malformed, or issued to another client: indistinguishable on purpose.
    INVALID = "invalid"
    #: The pair was revoked (logout, an admin, eviction by the cap, a password change...).
    REVOKED = "revoked"
    EXPIRED = "expired"
    #: The family reached its absolute lifetime (``MAX_SESSION_LIFETIME``).
    SESSION_ENDED = "session_ended"
    #: Used again after its grace window: the family was revoked.
    REUSE_DETECTED = "reuse_detected"
    USER_INACTIVE = "user_inactive"

    def __str__(self) -> str:
        return self.value
