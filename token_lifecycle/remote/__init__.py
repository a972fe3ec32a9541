"""Accepting this app's access tokens in another Django service (a resource server).

Put ``token_lifecycle.remote.RemoteTokenAuthentication`` in that service's
``DEFAULT_AUTHENTICATION_CLASSES`` and configure ``TOKEN_LIFECYCLE_REMOTE``.
The service does not install ``token_lifecycle`` nor its models; importing
this package touches no model.

- :mod:`.settings`: ``TOKEN_LIFECYCLE_REMOTE``, validated;
- :mod:`.fetch`: HTTP calls to the authorization server;
- :mod:`.discovery`: its RFC 8414 metadata and its JWKS, cached per process;
- :mod:`.verification`: checking a token locally (RFC 9068);
- :mod:`.introspection`: whether it is still active (RFC 7662), cached in a Django cache;
- :mod:`.errors`: the 401 and 503 answers (RFC 6750);
- :mod:`.authentication`: the DRF class and the claims-based user.
"""

from .authentication import RemoteTokenAuthentication, TokenUser
from .errors import AuthorizationServerUnavailable, InvalidToken

__all__ = [
    "AuthorizationServerUnavailable",
    "InvalidToken",
    "RemoteTokenAuthentication",
    "TokenUser",
]
