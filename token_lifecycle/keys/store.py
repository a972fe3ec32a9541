"""Signing keys in the database: generating one, and this process's loaded copies.

Loaded keys are kept per process for :data:`KEY_CACHE_SECONDS`: signing and
verifying cost no query in the steady state. Unknown kids are remembered too
(bounded), so a flood of tokens with made-up kids costs one query per kid, not
one per request; that is safe because a kid is the key's own thumbprint, which
nobody can present before the key exists.

**Key state.** Every rotation, once committed, writes a new random *key-state
version* into the validation cache (``CACHE_ALIAS``) when other processes
share it (anything but local memory). A process drops its loaded keys as soon
as it sees a version other than the one they were loaded under. It reads the
version before signing (one cache read per token issued), before loading a key
from the database, on the introspection and revocation endpoints, and on the
bearer path with the pair's entries (:func:`token_lifecycle.cache.validate_pair`,
same ``get_many``). So once ``rotate_signing_key --compromised`` has returned,
no process sharing the cache signs with or accepts a withdrawn key. With a
cache of its own (local memory, or the validation cache off, or the cache
down), another process keeps its loaded keys for up to
:data:`KEY_CACHE_SECONDS`; ``verify_until`` allows for that lag.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.cache import BaseCache
from django.core.signals import setting_changed
from django.dispatch import receiver
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .. import clock
from ..conf import lifecycle_settings
from ..models import SigningKey
from .encryption import decrypt_private_key, encrypt_private_key

logger = logging.getLogger(__name__)

KEY_CACHE_SECONDS = 60
_RSA_KEY_BITS = 2048
_JWK_CONVERTERS = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
# Members of each key type that RFC 7638 hashes into the thumbprint.
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
#: What the JWKS publishes of a stored JWK. ``use`` and not ``key_ops``: RFC 7517
#: §4.3 says not both, and PyJWT's ``to_jwk`` adds ``key_ops`` to RSA keys.
_PUBLISHED_MEMBERS = ("kty", "crv", "n", "e", "x", "y", "kid", "alg", "use")


@dataclasses.dataclass(frozen=True)
class LoadedKey:
    """A signing key ready for PyJWT; ``private_key`` is None when only verifying."""

    kid: str
    algorithm: str
    public_key: Any
    private_key: Any | None
    verify_until: datetime | None

    def verifies(self, now: datetime) -> bool:
        return self.verify_until is None or now < self.verify_until


# -- Generation ---------------------------------------------------------------


def _generate(algorithm: str):
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_KEY_BITS)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"Unsupported signing algorithm {algorithm!r}.")


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: a key id derived from the key itself."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def create_signing_key(
    algorithm: str | None = None, *, signs_from: datetime | None = None
) -> SigningKey:
    """Generate a key pair and store it, the private half encrypted."""
    algorithm = algorithm or lifecycle_settings().signing_algorithm
    private_key = _generate(algorithm)
    jwk = _JWK_CONVERTERS[algorithm].to_jwk(private_key.public_key(), as_dict=True)
    jwk.pop("key_ops", None)  # we store "use" (RFC 7517 §4.3: not both)
    kid = _thumbprint(jwk)
    private_der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey.objects.create(
        kid=kid,
        algorithm=algorithm,
        private_key_ciphertext=encrypt_private_key(private_der, kid),
        public_jwk={**jwk, "kid": kid, "alg": algorithm, "use": "sig"},
        signs_from=signs_from or clock.now(),
    )


def load(row: SigningKey, *, with_private: bool) -> LoadedKey:
    public_key = _JWK_CONVERTERS[row.algorithm].from_jwk(row.public_jwk)
    private_key = None
    if with_private:
        der = decrypt_private_key(row.private_key_ciphertext, row.kid)
        # AES-GCM already authenticated these bytes: RSA's costly consistency
        # check (~50 ms, every KEY_CACHE_SECONDS in every process) adds nothing.
        private_key = serialization.load_der_private_key(
            der, password=None, unsafe_skip_rsa_key_validation=True
        )
    return LoadedKey(row.kid, row.algorithm, public_key, private_key, row.verify_until)


def published_jwk(stored: dict[str, Any]) -> dict[str, Any]:
    """The JWK the JWKS lists for a key's stored ``public_jwk``.

    Earlier versions stored RSA JWKs with both ``use`` and ``key_ops``;
    filtering here fixes those rows too, including any written by an older
    process during a rolling deploy, which a data migration would miss.
    """
    jwk = {name: stored[name] for name in _PUBLISHED_MEMBERS if name in stored}
    jwk.setdefault("use", "sig")
    return jwk


# -- This process's copies ----------------------------------------------------


#: The key-state version of keys loaded before any version was read.
_UNREAD = object()


class _LoadedKeys:
    """Loaded keys by kid, each fresh for ``KEY_CACHE_SECONDS``. Thread-safe.

    ``_version`` is the key state the loaded keys are no older than: it is read
    before the database. ``_generation`` counts the drops, so that a load that
    read the database before a drop is not kept after it.
    """

    MAX_UNKNOWN = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._version: Any = _UNREAD
        self._drop()

    def _drop(self) -> None:
        self._generation += 1
        self._signing: tuple[float, LoadedKey] | None = None
        self._verifying: dict[str, tuple[float, LoadedKey]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()

    def clear(self) -> None:
        with self._lock:
            self._drop()

    def observe(self, version: Any) -> bool:
        """Drop the loaded keys if ``version`` is not the key state they were loaded under."""
        if version == self._version:
            return False
        with self._lock:
            if version == self._version:
                return False  # another thread dropped them for the same version
            self._drop()
            self._version = version
        return True

    def sync(self) -> None:
        """Read the shared key state and drop the loaded keys if it changed."""
        cache = shared_cache()
        if cache is None:
            return
        try:
            version = present_key_state(cache, cache.get(_key_state_key()))
        except Exception:
            logger.warning(
                "Validation cache unavailable; loaded signing keys kept for up to %s s.",
                KEY_CACHE_SECONDS,
                exc_info=True,
            )
            return
        self.observe(version)

    def signing_key(self) -> LoadedKey:
        self.sync()
        cached = self._signing
        if cached and cached[0] > time.monotonic():
            return cached[1]
        with self._lock:  # a drop waits for the lock: nothing stale is kept past it
            row = SigningKey.objects.signing(clock.now()).first()
            if row is None:
                row = create_signing_key()
            key = load(row, with_private=True)
            expires = time.monotonic() + KEY_CACHE_SECONDS
            self._signing = (expires, key)
            self._verifying[key.kid] = (expires, key)
        return key

    def verification_key(self, kid: str) -> LoadedKey | None:
        now = time.monotonic()
        cached = self._verifying.get(kid)
        if cached and cached[0] > now:
            return cached[1]
        unknown_until = self._unknown.get(kid)
        if unknown_until and unknown_until > now:
            return None
        self.sync()
        generation = self._generation
        row = SigningKey.objects.filter(kid=kid).first()
        key = None if row is None else load(row, with_private=False)
        with self._lock:
            if generation != self._generation:
                return key  # read before a drop: use it once, keep nothing
            if key is None:
                self._unknown[kid] = now + KEY_CACHE_SECONDS
                while len(self._unknown) > self.MAX_UNKNOWN:
                    self._unknown.popitem(last=False)
            else:
                self._verifying[kid] = (now + KEY_CACHE_SECONDS, key)
        return key


_loaded = _LoadedKeys()


def signing_key() -> LoadedKey:
    """The key that signs new access tokens, created on first use."""
    return _loaded.signing_key()


def verification_key(kid: str) -> LoadedKey | None:
    """The key with this kid, or None if there is no such key."""
    return _loaded.verification_key(kid)


def signing_key_for(expires_at: datetime) -> LoadedKey:
    """The key to sign a token expiring at ``expires_at``.

    The signing key, unless it is retiring (a rotation lets it sign until
    every cached JWKS knows its successor) and would stop verifying before
    the token expires: a lifetime raised since the rotation. Then the
    successor, published already, signs it. No key's ``verify_until`` is
    ever extended: a key withdrawn as compromised must stay withdrawn.
    """
    key = signing_key()
    if key.verify_until is None or expires_at + lifecycle_settings().leeway <= key.verify_until:
        return key
    successor = (
        SigningKey.objects.published(clock.now())
        .filter(retired_at__isnull=True)
        .order_by("signs_from")
        .first()
    )
    return key if successor is None else load(successor, with_private=True)


def clear_cache() -> None:
    """Forget loaded keys (tests, after a rotation, after restoring a database)."""
    _loaded.clear()


def publish_key_state() -> None:
    """Tell every process sharing the validation cache that the keys changed.

    Call it once the change has committed: a process that sees the new version
    reloads its keys from the database at once. This process's keys are
    dropped too. If the cache cannot be written, other processes pick the
    change up within :data:`KEY_CACHE_SECONDS`, and a warning says so.
    """
    version = uuid.uuid4().hex
    cache = shared_cache()
    if cache is not None:
        try:
            cache.set(_key_state_key(), version, None)
        except Exception:
            logger.warning(
                "Validation cache unavailable: other processes use their loaded signing "
                "keys for up to %s s more.",
                KEY_CACHE_SECONDS,
                exc_info=True,
            )
            version = _UNREAD
    if not _loaded.observe(version):
        _loaded.clear()


#: The key state before any rotation published one (or after Redis lost it).
INITIAL_KEY_STATE = "initial"


def present_key_state(cache: BaseCache, version: Any) -> Any:
    """``version``, or, when the entry is absent, the initial one, written for next time.

    An absent entry would be a Redis read on every request: a near cache keeps
    values, not their absence.
    """
    if version is None:
        try:
            cache.add(_key_state_key(), INITIAL_KEY_STATE, None)
        except Exception:
            logger.warning("Validation cache unavailable; key state not written.", exc_info=True)
        return INITIAL_KEY_STATE
    return version


def sync_key_state() -> None:
    """Drop this process's loaded keys if another process changed them (one cache read)."""
    _loaded.sync()


def observe_key_state(version: Any) -> bool:
    """Note a key-state version read from the shared cache; True if the keys were dropped."""
    return _loaded.observe(version)


def shared_cache() -> BaseCache | None:
    """The validation cache if other processes may share it; None if it is this process's."""
    from .. import cache  # token_lifecycle.cache imports this package

    return cache.shared_cache()


def _key_state_key() -> str:
    from .. import cache

    return cache.KEY_STATE


@receiver(setting_changed)
def _clear_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "TOKEN_LIFECYCLE"):
        clear_cache()
