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

See ``auth.py`` for what the auth object does, ``stores/`` for sharing one
pair between the workers of a deployment, ``errors.py`` for the exceptions.
"""

from .auth import PROCESS_STORE, TokenAuth, rejects_access_token
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
from .grants import ClientCredentials, PasswordGrant
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
    "ClientAuthenticationFailed",
    "ClientCredentials",
    "DjangoCacheTokenStore",
    "FileTokenStore",
    "InvalidCredentials",
    "LoginRequired",
    "MemoryTokenStore",
    "PasswordGrant",
    "ReauthenticationRequired",
    "RedisTokenStore",
    "RefreshTokenExpired",
    "RefreshTokenRejected",
    "RefreshTokenReused",
    "RefreshTokenRevoked",
    "SessionEnded",
    "TokenAuth",
    "TokenClientError",
    "TokenEndpointError",
    "TokenEndpointUnavailable",
    "TokenSet",
    "TokenStore",
    "rejects_access_token",
]
