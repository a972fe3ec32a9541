"""Signing keys in the database: generating one, and this process's loaded copies.

Loaded keys are kept per process for :data:`KEY_CACHE_SECONDS`: signing and
verifying cost no query in the steady state, and a rotation made by another
process is picked up within that time (old keys keep verifying meanwhile).
Unknown kids are remembered too (bounded), so a flood of tokens with made-up
kids costs one query per kid, not one per request; that is safe because a
kid is the key's own thumbprint, which nobody can present before the key exists.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.signals import setting_changed
from django.dispatch import receiver
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .. import clock
from ..conf import lifecycle_settings
from ..models import SigningKey
from .encryption import decrypt_private_key, encrypt_private_key

KEY_CACHE_SECONDS = 60
_RSA_KEY_BITS = 2048
_JWK_CONVERTERS = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
# Members of each key type that RFC 7638 hashes into the thumbprint.
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


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


# -- This process's copies ----------------------------------------------------


class _LoadedKeys:
    """Loaded keys by kid, each fresh for ``KEY_CACHE_SECONDS``. Thread-safe."""

    MAX_UNKNOWN = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self._signing: tuple[float, LoadedKey] | None = None
        self._verifying: dict[str, tuple[float, LoadedKey]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()

    def signing_key(self) -> LoadedKey:
        cached = self._signing
        if cached and cached[0] > time.monotonic():
            return cached[1]
        with self._lock:
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
        row = SigningKey.objects.filter(kid=kid).first()
        if row is None:
            with self._lock:
                self._unknown[kid] = now + KEY_CACHE_SECONDS
                while len(self._unknown) > self.MAX_UNKNOWN:
                    self._unknown.popitem(last=False)
            return None
        key = load(row, with_private=False)
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


@receiver(setting_changed)
def _clear_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "TOKEN_LIFECYCLE"):
        clear_cache()
