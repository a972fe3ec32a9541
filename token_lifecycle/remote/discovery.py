"""Finding the authorization server: its RFC 8414 metadata and its JWKS (RFC 7517).

Both documents are kept per process and reused as their ``Cache-Control``
says, within :data:`MIN_CACHE_SECONDS` and :data:`MAX_CACHE_SECONDS`. When a
refetch fails the previous copy keeps serving (the server is down: tokens
already trusted stay trusted) and the fetch is retried after ``RETRY_AFTER``.
A token naming a ``kid`` the JWKS lacks refetches it at once, but at most once
per :data:`UNKNOWN_KID_REFETCH_SECONDS`: made-up kids cannot hammer the server.

Only keys of the algorithms the authorization server signs with are kept,
each with the key type its algorithm requires; anything else (a private key,
a weak RSA key, an RSA key labelled ES256) is left out with a warning, so a
token naming it is refused as signed by an unknown key.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .. import rfc9068
from ..rfc8414 import metadata_urls
from .errors import AuthorizationServerUnavailable
from .fetch import fetch_json, max_age
from .settings import RemoteSettings, remote_settings

logger = logging.getLogger(__name__)

#: However a document's ``Cache-Control`` reads, it is reused at least and at most this long.
MIN_CACHE_SECONDS = 5
MAX_CACHE_SECONDS = 3600
#: Reuse of a document that says nothing about caching.
DEFAULT_CACHE_SECONDS = 300
#: A token with an unknown ``kid`` refetches the JWKS at most once in this many seconds.
UNKNOWN_KID_REFETCH_SECONDS = 30
MIN_RSA_BITS = 2048

#: The algorithms the authorization server signs with, each with its JWK type and curve.
KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
_LOADERS = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
#: JWK members that only a private key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclasses.dataclass(frozen=True)
class PublicKey:
    """A verification key from the JWKS, ready for PyJWT."""

    kid: str
    algorithm: str
    key: Any


T = TypeVar("T")


class _Document(Generic[T]):
    """A fetched document, reused until it expires, then kept while refetching fails."""

    def __init__(self, fetch: Callable[[], tuple[T, float]], retry_after: int) -> None:
        self._fetch = fetch
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self.value: T | None = None
        self._fresh_until = 0.0
        self._retry_at = 0.0

    def get(self) -> T:
        value = self.value
        if value is not None and time.monotonic() < self._fresh_until:
            return value
        with self._lock:
            now = time.monotonic()
            if self.value is not None and now < self._fresh_until:
                return self.value  # another thread refetched it meanwhile
            if now < self._retry_at:
                if self.value is not None:
                    return self.value
                raise AuthorizationServerUnavailable("The last fetch failed moments ago.")
            try:
                return self._store(now)
            except AuthorizationServerUnavailable as error:
                self._retry_at = now + self._retry_after
                if self.value is None:
                    raise
                logger.warning("Kept the previous copy: %s", error)
                return self.value

    def refetch(self) -> T:
        """Fetch now, whatever the cached copy's age; a failure raises."""
        with self._lock:
            try:
                return self._store(time.monotonic())
            except AuthorizationServerUnavailable:
                self._retry_at = time.monotonic() + self._retry_after
                raise

    def _store(self, now: float) -> T:
        value, seconds = self._fetch()
        self.value, self._fresh_until, self._retry_at = value, now + seconds, 0.0
        return value


class AuthorizationServer:
    """One issuer as this process knows it: its metadata and its public keys."""

    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self._metadata: _Document[dict[str, Any]] = _Document(
            self._fetch_metadata, settings.retry_after
        )
        self._keys: _Document[dict[str, PublicKey]] = _Document(
            self._fetch_keys, settings.retry_after
        )
        self._unknown_refetch_at = -math.inf

    @property
    def introspection_endpoint(self) -> str:
        return self._metadata.get()["introspection_endpoint"]

    def key(self, kid: str) -> PublicKey | None:
        """The verification key named ``kid``, or None if the JWKS has no such key of ours."""
        key = self._keys.get().get(kid)
        if key is not None:
            return key
        now = time.monotonic()
        if now - self._unknown_refetch_at < UNKNOWN_KID_REFETCH_SECONDS:
            return None
        self._unknown_refetch_at = now  # before the fetch: concurrent misses do not pile up
        return self._keys.refetch().get(kid)

    # -- Fetching ---------------------------------------------------------------

    def _fetch_metadata(self) -> tuple[dict[str, Any], float]:
        urls = [self.settings.metadata_url] if self.settings.metadata_url else None
        error: AuthorizationServerUnavailable | None = None
        for url in urls or metadata_urls(self.settings.issuer):
            try:
                response = fetch_json(url, timeout=self.settings.timeout_seconds)
            except AuthorizationServerUnavailable as failure:
                error = failure
                continue
            self._check_metadata(url, response.body)
            seconds = max_age(
                response.headers,
                default=DEFAULT_CACHE_SECONDS,
                floor=MIN_CACHE_SECONDS,
                ceiling=MAX_CACHE_SECONDS,
            )
            return response.body, seconds
        assert error is not None
        raise error

    def _check_metadata(self, url: str, metadata: dict[str, Any]) -> None:
        # RFC 8414 §3.3: the issuer in the document MUST be the one it was fetched for,
        # or the document is not used (a server impersonating another).
        if metadata.get("issuer") != self.settings.issuer:
            logger.error(
                "The metadata at %s names the issuer %r, not ISSUER %r: not used.",
                url,
                str(metadata.get("issuer"))[:200],
                self.settings.issuer,
            )
            raise AuthorizationServerUnavailable(f"{url} describes another issuer.")
        for name in ("jwks_uri", "introspection_endpoint"):
            value = metadata.get(name)
            if not isinstance(value, str) or not _endpoint_ok(value, self.settings.issuer):
                logger.error("The metadata at %s has no usable %s.", url, name)
                raise AuthorizationServerUnavailable(f"{url} has no usable {name}.")

    def _fetch_keys(self) -> tuple[dict[str, PublicKey], float]:
        url = self._metadata.get()["jwks_uri"]
        response = fetch_json(url, timeout=self.settings.timeout_seconds)
        listed = response.body.get("keys")
        if not isinstance(listed, list):
            raise AuthorizationServerUnavailable(f"{url} is not a JWKS (no keys list).")
        keys = {}
        for jwk in listed:
            key = public_key(jwk)
            if key is not None:
                keys[key.kid] = key
        seconds = max_age(
            response.headers,
            default=DEFAULT_CACHE_SECONDS,
            floor=MIN_CACHE_SECONDS,
            ceiling=MAX_CACHE_SECONDS,
        )
        return keys, seconds


def _endpoint_ok(url: str, issuer: str) -> bool:
    parts = urlsplit(url)
    # An https issuer's endpoints are https too: no downgrade to plain text.
    schemes = ("https",) if issuer.startswith("https:") else ("https", "http")
    return parts.scheme in schemes and bool(parts.hostname)


def public_key(jwk: Any) -> PublicKey | None:
    """The verification key of one JWKS entry, or None (logged) if it is not one of ours."""
    if not isinstance(jwk, dict):
        return None
    kid, algorithm = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not rfc9068.KID.fullmatch(kid):
        logger.warning("JWKS entry without a valid kid ignored.")
        return None
    if algorithm not in KEY_TYPES or jwk.get("use", "sig") != "sig":
        logger.warning("JWKS key %s ignored: not a signing key of RS256, ES256 or EdDSA.", kid)
        return None
    key_type, curve = KEY_TYPES[algorithm]
    if jwk.get("kty") != key_type or (curve is not None and jwk.get("crv") != curve):
        logger.warning(
            "JWKS key %s ignored: %s needs a %s key.", kid, algorithm, curve or key_type
        )
        return None
    if _PRIVATE_MEMBERS & jwk.keys():
        logger.error(
            "JWKS key %s ignored: it is a private key, which a JWKS never publishes.", kid
        )
        return None
    try:
        key = _LOADERS[algorithm].from_jwk(jwk)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        logger.warning("JWKS key %s ignored: malformed.", kid)
        return None
    if algorithm == "RS256" and key.key_size < MIN_RSA_BITS:
        logger.warning(
            "JWKS key %s ignored: RSA keys below %s bits are refused.", kid, MIN_RSA_BITS
        )
        return None
    return PublicKey(kid, algorithm, key)


_lock = threading.Lock()
_current: AuthorizationServer | None = None


def authorization_server() -> AuthorizationServer:
    """This process's view of the configured issuer, rebuilt when the settings change."""
    global _current
    settings = remote_settings()
    current = _current
    if current is not None and current.settings is settings:
        return current
    with _lock:
        if _current is None or _current.settings is not settings:
            _current = AuthorizationServer(settings)
        return _current


def forget() -> None:
    """Drop the fetched metadata and keys (tests; a restored authorization server)."""
    global _current
    with _lock:
        _current = None
