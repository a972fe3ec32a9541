"""Asking the authorization server whether a token is still active (RFC 7662), with a shared cache.

The answer is kept in a Django cache for ``CACHE_SECONDS`` (never past the
token's expiry), under a SHA-256 digest of the issuer and the token, never the
token itself. With a cache shared by the services of one deployment (Redis),
one introspection serves them all. A revocation is therefore seen within
``CACHE_SECONDS``. A failure to reach the server is never cached: the next
request asks again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any
from urllib.parse import quote_plus, urlencode

from django.core.cache import caches

from .. import clock
from .discovery import AuthorizationServer
from .errors import AuthorizationServerUnavailable
from .fetch import fetch_json
from .settings import RemoteSettings

logger = logging.getLogger(__name__)

KEY_PREFIX = "token_lifecycle.remote.introspection:"
#: The members of an answer worth keeping (RFC 7662 §2.2); the rest is dropped.
_KEPT = ("active", "sub", "client_id", "username", "scope", "jti", "exp", "token_type")


def cache_key(token: str, issuer: str) -> str:
    """The cache key of a token's answer: a digest, so the cache never holds a token."""
    digest = hashlib.sha256(f"{issuer}\x00{token}".encode()).hexdigest()
    return KEY_PREFIX + digest


def introspect(
    token: str, claims: dict[str, Any], server: AuthorizationServer, settings: RemoteSettings
) -> dict[str, Any]:
    """The authorization server's answer for ``token``: cached, or asked now and cached.

    Raises :class:`AuthorizationServerUnavailable` when it must be asked and cannot be.
    """
    key = cache_key(token, settings.issuer)
    cache = caches[settings.cache_alias]
    if settings.cache_seconds:
        try:
            cached = cache.get(key)
        except Exception:  # a cache backend down (Redis): ask the server instead
            logger.warning("Introspection cache unavailable; asking the server.", exc_info=True)
            cached = None
        if isinstance(cached, dict):
            return cached
    answer = _ask(token, claims, server, settings)
    seconds = settings.cache_seconds
    if answer["active"]:
        seconds = min(seconds, claims["exp"] - int(clock.now().timestamp()))
    if seconds > 0:
        try:
            cache.set(key, answer, seconds)
        except Exception:
            logger.warning("Introspection cache unavailable; answer not kept.", exc_info=True)
    return answer


def _ask(
    token: str, claims: dict[str, Any], server: AuthorizationServer, settings: RemoteSettings
) -> dict[str, Any]:
    credentials = f"{quote_plus(settings.client_id)}:{quote_plus(settings.client_secret)}"
    response = fetch_json(
        server.introspection_endpoint,
        timeout=settings.timeout_seconds,
        data=urlencode({"token": token, "token_type_hint": "access_token"}).encode(),
        headers={
            # RFC 6749 §2.3.1: HTTP Basic with form-encoded id and secret.
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    answer = {name: response.body[name] for name in _KEPT if name in response.body}
    if not isinstance(answer.get("active"), bool):
        raise AuthorizationServerUnavailable("The introspection answer has no boolean active.")
    if answer["active"] and any(
        name in answer and answer[name] != claims[name] for name in ("sub", "client_id", "jti")
    ):
        # An answer about another token: a broken server or proxy, not a usable answer.
        raise AuthorizationServerUnavailable("The introspection answer describes another token.")
    return answer if answer["active"] else {"active": False}
