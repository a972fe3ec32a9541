"""OAuth 2.0 errors (RFC 6749 §5.2) and how each renders: body, status, headers.

Raised by the service layer and the OAuth views, rendered by
:class:`~token_lifecycle.oauth.endpoint.OAuthEndpoint`. The ``description`` of
each error is written for the client developer and is safe to return: it never
contains a credential.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..reasons import RefreshRefusal


class OAuthError(Exception):
    error = "invalid_request"
    status = 400
    #: Seconds for ``Retry-After``, on the errors a client should retry.
    retry_after: int | None = None

    def __init__(self, description: str, *, reason: RefreshRefusal | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.error, "error_description": self.description}
        if self.reason is not None:
            # An extra member (RFC 6749 §5.2 allows them): what the client acts on.
            body["reason"] = RefreshRefusal(self.reason).value
        return body

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(self.retry_after)}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401

    def headers(self) -> dict[str, str]:
        # RFC 6749 §5.2: a 401 names the scheme the client may authenticate with.
        return {"WWW-Authenticate": 'Basic realm="api"'}


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

    def __init__(self, method: str, allowed: Iterable[str]) -> None:
        super().__init__(f"Use POST, not {method}.")
        self.allowed = list(allowed)

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class TemporarilyUnavailable(OAuthError):
    """The database could not be reached or gave up; the client may retry."""

    error = "temporarily_unavailable"
    status = 503
    retry_after = 1


class TooManyRequests(OAuthError):
    """A rate limit of :mod:`.throttling`; ``slow_down`` is the code RFC 8628 registered."""

    error = "slow_down"
    status = 429

    def __init__(self, wait: float) -> None:
        self.retry_after = max(1, int(wait + 0.999))
        super().__init__(f"Too many requests; retry in {self.retry_after} seconds.")
