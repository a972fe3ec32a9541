"""What can go wrong checking a token on a resource server, and how each answers (RFC 6750).

- :class:`InvalidToken`: the token itself is bad (401 ``invalid_token``);
- :class:`AuthorizationServerUnavailable`: the authorization server could not
  say (down, slow, an error, an answer that makes no sense): 503 with
  ``Retry-After``, never an accepted token.

The messages are safe to show: they never hold the token or a secret.
"""

from __future__ import annotations

from rest_framework.exceptions import APIException

from ..rfc6750 import challenge
from ..rfc9068 import InvalidAccessToken

#: The bearer credential is not a usable access token; the message is safe to show.
InvalidToken = InvalidAccessToken


class AuthorizationServerUnavailable(Exception):
    """The authorization server could not be asked; the message is for the logs."""


class TemporarilyUnavailable(APIException):
    """503 with ``Retry-After`` and a Bearer challenge: DRF's handler adds both headers."""

    status_code = 503
    default_detail = "The authorization server is unavailable; retry later."
    default_code = "temporarily_unavailable"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.wait = retry_after  # DRF's exception handler: Retry-After
        # DRF's exception handler: WWW-Authenticate (error code of RFC 6749 §5.2).
        self.auth_header = challenge("temporarily_unavailable", str(self.detail))
