"""OAuth 2.0 errors (RFC 6749 §5.2), raised by the service layer and rendered by the views.

The ``description`` of each error is written for the client developer and is
safe to return: it never contains a credential.
"""

from __future__ import annotations


class OAuthError(Exception):
    error = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def as_dict(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class RequestTooLarge(OAuthError):
    error = "invalid_request"
    status = 413


class WrongMethod(OAuthError):
    error = "invalid_request"
    status = 405


class TemporarilyUnavailable(OAuthError):
    """The database could not be reached or gave up; the client may retry."""

    error = "temporarily_unavailable"
    status = 503
