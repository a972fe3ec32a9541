"""What can go wrong when a client obtains tokens, as exception classes a caller can act on.

The split that matters to a caller:

- :class:`ReauthenticationRequired` and its subclasses: the pair (or the
  credentials) can no longer produce tokens. Retrying the same thing will not
  help; the caller must log in again. :class:`~token_lifecycle.client.TokenAuth`
  does that by itself once when it holds credentials (client credentials, or a
  password callback), so a caller only sees these when that is impossible or
  failed too.
- :class:`ClientAuthenticationFailed`: the client id or secret is wrong or the
  client was deactivated: a configuration problem, not a session problem.
- :class:`TokenEndpointUnavailable`: the server could not answer (5xx) or asks
  the client to slow down (429); retry later.

The server answers every refused refresh with ``invalid_grant`` and says why
in the body's ``reason`` member (:class:`~token_lifecycle.reasons.RefreshRefusal`),
which :func:`refresh_refusal` maps to a class; ``error_description`` is prose
for people and is never parsed. No reason, or one this version does not know,
maps to :class:`RefreshTokenRejected`, never to a crash.
"""

from __future__ import annotations

from ..reasons import RefreshRefusal


class TokenClientError(Exception):
    """Base class of every error raised by ``token_lifecycle.client``."""


class TokenEndpointError(TokenClientError):
    """The token endpoint refused a request or answered something unusable.

    ``error`` and ``description`` are the server's ``error`` and
    ``error_description`` (RFC 6749 §5.2), or a client-side code such as
    ``invalid_response`` or ``login_required`` when the server said nothing.
    """

    def __init__(self, error: str, description: str = "", *, status_code: int | None = None):
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status_code = status_code


class TokenEndpointUnavailable(TokenEndpointError):
    """Retry later: the server failed (5xx, e.g. 503 ``temporarily_unavailable``) or is
    rate-limiting the client (429 ``slow_down``). ``retry_after`` is the server's
    ``Retry-After`` in seconds, when it sent one."""

    retry_after: float | None = None


class ClientAuthenticationFailed(TokenEndpointError):
    """401 ``invalid_client``: wrong client id or secret, or a deactivated client."""


class ReauthenticationRequired(TokenEndpointError):
    """The tokens can no longer be renewed: log in again (new credentials may be needed)."""


class LoginRequired(ReauthenticationRequired):
    """There is no pair to renew and no credentials to log in with."""


class InvalidCredentials(ReauthenticationRequired):
    """A password login was refused (``invalid_grant``): wrong or changed password,
    or an inactive user."""


class RefreshTokenRejected(ReauthenticationRequired):
    """A refresh was refused (``invalid_grant``) for a reason not covered by a subclass:
    an unknown token, another client's token, an inactive user."""


class RefreshTokenExpired(RefreshTokenRejected):
    """The refresh token outlived its lifetime (the client was idle for too long)."""


class RefreshTokenRevoked(RefreshTokenRejected):
    """The pair was revoked: logout, an admin, a password change, or evicted by the cap."""


class RefreshTokenReused(RefreshTokenRejected):
    """The refresh token was used after its grace window: the server treats it as a
    replay and revokes the whole family (every pair descended from the same login)."""


class SessionEnded(RefreshTokenRejected):
    """The family reached the server's absolute session lifetime (``MAX_SESSION_LIFETIME``)."""


#: The class for each ``reason`` of a refused refresh; the others are RefreshTokenRejected.
REFRESH_REFUSALS: dict[RefreshRefusal, type[RefreshTokenRejected]] = {
    RefreshRefusal.INVALID: RefreshTokenRejected,
    RefreshRefusal.REVOKED: RefreshTokenRevoked,
    RefreshRefusal.EXPIRED: RefreshTokenExpired,
    RefreshRefusal.SESSION_ENDED: SessionEnded,
    RefreshRefusal.REUSE_DETECTED: RefreshTokenReused,
    RefreshRefusal.USER_INACTIVE: RefreshTokenRejected,
}


def refresh_refusal(reason: object) -> type[RefreshTokenRejected]:
    """The exception class for an ``invalid_grant`` answer to a refresh, by its ``reason``."""
    try:
        known = RefreshRefusal(reason)
    except (ValueError, TypeError):  # absent, not a string, or from a newer server
        return RefreshTokenRejected
    return REFRESH_REFUSALS.get(known, RefreshTokenRejected)


def error_for_response(
    status_code: int,
    error: str,
    description: str,
    *,
    grant_type: str,
    reason: object = None,
) -> TokenEndpointError:
    """The exception for a token-endpoint refusal of a ``grant_type`` request.

    ``reason`` is the body's ``reason`` member as received (anything, or None).
    """
    error_class: type[TokenEndpointError] = TokenEndpointError
    if status_code >= 500 or status_code == 429:
        error_class = TokenEndpointUnavailable
    elif error == "invalid_client":
        error_class = ClientAuthenticationFailed
    elif error == "invalid_grant" and grant_type == "refresh_token":
        error_class = refresh_refusal(reason)
    elif error == "invalid_grant" and grant_type == "password":
        error_class = InvalidCredentials
    return error_class(error, description, status_code=status_code)
