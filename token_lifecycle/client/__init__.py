"""A Python client for APIs protected by token_lifecycle.

Install with ``pip install django-token-lifecycle[client]`` (adds httpx). It
imports httpx and the standard library only, never Django: a service calling
the API does not run Django, and importing this package imports nothing of the
server side (pip still installs the distribution's dependencies; see the
README's "Packages").

    import httpx
    from token_lifecycle.client import TokenAuth

    auth = TokenAuth("https://api.example.com/auth/token/", CLIENT_ID, CLIENT_SECRET)
    with httpx.Client(base_url="https://api.example.com", auth=auth) as api:
        api.get("/api/whoami/")

A person logs in to a native or command-line app through the browser
(RFC 8252) with :class:`LoopbackLogin`:

    server = discover("https://api.example.com/auth")
    auth = TokenAuth(server.token_endpoint, CLIENT_ID, grant=LoopbackLogin.from_metadata(server))

See ``auth.py`` for what the auth object does, ``stores/`` for sharing one
pair between the workers of a deployment, ``errors.py`` for the exceptions.
"""

from .auth import PROCESS_STORE, TokenAuth, rejects_access_token
from .authorization import (
    AuthorizationDenied,
    AuthorizationFailed,
    AuthorizationResponseRejected,
    AuthorizationTimedOut,
)
from .discovery import ServerMetadata, discover
from .errors import (
    ClientAuthenticationFailed,
    InvalidCredentials,
    LoginRequired,
    ReauthenticationRequired,
    RefreshTokenExpired,
    RefreshTokenRejected,
    RefreshTokenReused,
    RefreshTokenRevoked,
    SessionEnded,
    TokenClientError,
    TokenEndpointError,
    TokenEndpointUnavailable,
)
from .grants import ClientCredentials, LoopbackLogin, PasswordGrant
from .stores import (
    DjangoCacheTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
)
from .tokens import TokenSet

__all__ = [
    "PROCESS_STORE",
    "AuthorizationDenied",
    "AuthorizationFailed",
    "AuthorizationResponseRejected",
    "AuthorizationTimedOut",
    "ClientAuthenticationFailed",
    "ClientCredentials",
    "DjangoCacheTokenStore",
    "FileTokenStore",
    "InvalidCredentials",
    "LoginRequired",
    "LoopbackLogin",
    "MemoryTokenStore",
    "PasswordGrant",
    "ReauthenticationRequired",
    "RedisTokenStore",
    "RefreshTokenExpired",
    "RefreshTokenRejected",
    "RefreshTokenReused",
    "RefreshTokenRevoked",
    "ServerMetadata",
    "SessionEnded",
    "TokenAuth",
    "TokenClientError",
    "TokenEndpointError",
    "TokenEndpointUnavailable",
    "TokenSet",
    "TokenStore",
    "discover",
    "rejects_access_token",
]
