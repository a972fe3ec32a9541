"""Signing keys: generation, encryption at rest, and a per-process cache.

Private keys are stored as PKCS#8 DER encrypted with AES-256-GCM under a key
derived (HKDF-SHA256) from ``KEY_ENCRYPTION_SECRET``, which defaults to
``SECRET_KEY``. The key id is bound to the ciphertext as associated data, so a
ciphertext copied onto another row does not decrypt. ``SECRET_KEY_FALLBACKS``
are tried on decryption, so the usual Django secret rotation keeps working;
a secret that changed with no fallback fails loudly with
:class:`KeyDecryptionError` instead of minting tokens nobody can verify.

Loaded keys are cached per process for :data:`KEY_CACHE_SECONDS`: signing and
verifying cost no query in the steady state, and a rotation made by another
process is picked up within that time (old keys keep verifying meanwhile).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models import Max, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.dispatch import receiver
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from . import clock
from .conf import lifecycle_settings
from .models import Client, SigningKey

KEY_CACHE_SECONDS = 60
_CIPHERTEXT_VERSION = "v1"
_RSA_KEY_BITS = 2048
_JWK_CONVERTERS = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
# Members of each key type that RFC 7638 hashes into the thumbprint.
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


class KeyDecryptionError(ImproperlyConfigured):
    """A stored private key cannot be decrypted with the configured secret."""


@dataclasses.dataclass(frozen=True)
class LoadedKey:
    """A signing key ready for PyJWT; ``private_key`` is None when only verifying."""

    kid: str
    algorithm: str
    public_key: Any
    private_key: Any | None
    verify_until: datetime | None


# -- Encryption at rest -------------------------------------------------------


def _encryption_secrets() -> list[str]:
    configured = lifecycle_settings().key_encryption_secret
    if configured:
        return [configured]
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _aead(secret: str) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"django-token-lifecycle",
        info=b"signing key encryption v1",
    ).derive(secret.encode())
    return AESGCM(derived)


def encrypt_private_key(private_der: bytes, kid: str) -> str:
    nonce = os.urandom(12)
    sealed = _aead(_encryption_secrets()[0]).encrypt(nonce, private_der, kid.encode())
    return f"{_CIPHERTEXT_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_private_key(ciphertext: str, kid: str) -> bytes:
    version, _, payload = ciphertext.partition(":")
    if version != _CIPHERTEXT_VERSION:
        raise KeyDecryptionError(f"Signing key {kid}: unknown ciphertext format.")
    raw = base64.urlsafe_b64decode(payload)
    nonce, sealed = raw[:12], raw[12:]
    for secret in _encryption_secrets():
        try:
            return _aead(secret).decrypt(nonce, sealed, kid.encode())
        except Exception:  # InvalidTag: wrong secret; try the next one
            continue
    raise KeyDecryptionError(
        f"Signing key {kid} cannot be decrypted: SECRET_KEY (or TOKEN_LIFECYCLE"
        "['KEY_ENCRYPTION_SECRET']) changed. Put the previous value in SECRET_KEY_FALLBACKS, "
        "or rotate to a new signing key with manage.py rotate_signing_key."
    )


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


def _load(row: SigningKey, *, with_private: bool) -> LoadedKey:
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


# -- Rotation -----------------------------------------------------------------


def longest_access_lifetime() -> timedelta:
    """The longest access-token lifetime in force: the setting or a client's override."""
    overrides = Client.objects.aggregate(longest=Max("access_token_lifetime"))["longest"]
    return max(filter(None, [lifecycle_settings().access_token_lifetime, overrides]))


def rotate(
    algorithm: str | None = None, *, immediately: bool = False, compromised: bool = False
) -> SigningKey:
    """Add a signing key and retire the current one (``manage.py rotate_signing_key``).

    By default the new key is published now and signs once ``JWKS_MAX_AGE``
    has passed, so that every cached JWKS already holds it. The retired key
    verifies until every token it may have signed has expired: its last
    signing instant, plus this process cache's lag, the longest access
    lifetime and the leeway. ``immediately`` skips the publication delay (for
    verifiers that refetch the JWKS on an unknown kid, like PyJWT's
    ``PyJWKClient``). ``compromised`` also stops every older key verifying at
    once: their tokens get 401 and clients refresh (refresh tokens are not
    signed, so they keep working).
    """
    settings = lifecycle_settings()
    now = clock.now()
    with transaction.atomic():
        nothing_signs = not SigningKey.objects.signing(now).exists()
        immediate = immediately or compromised or nothing_signs
        signs_from = now if immediate else now + settings.jwks_max_age
        new_key = create_signing_key(algorithm, signs_from=signs_from)
        if compromised:
            SigningKey.objects.exclude(pk=new_key.pk).published(now).update(
                retired_at=Coalesce("retired_at", Value(now)), verify_until=now
            )
        else:
            verify_until = (
                signs_from
                + timedelta(seconds=KEY_CACHE_SECONDS)
                + longest_access_lifetime()
                + settings.leeway
            )
            # Keys still signing, or scheduled to sign after the new one starts;
            # a verify_until already further out is kept.
            superseded = Q(retired_at__isnull=True) | Q(retired_at__gt=signs_from)
            SigningKey.objects.exclude(pk=new_key.pk).filter(superseded).update(
                retired_at=signs_from,
                verify_until=Greatest(
                    Coalesce("verify_until", Value(verify_until)), Value(verify_until)
                ),
            )
    clear_cache()
    return new_key


def cover_expiry(key: LoadedKey, expires_at: datetime) -> LoadedKey:
    """Make sure ``key`` verifies until a token it is about to sign has expired.

    A retired key's ``verify_until`` is set at rotation from the lifetimes in
    force then; if a lifetime was raised while the key still signs (it signs
    for ``JWKS_MAX_AGE`` after a rotation), extend it, so that no token ever
    outlives its key. Costs a query only in that rare case.
    """
    needed = expires_at + lifecycle_settings().leeway
    if key.verify_until is None or needed <= key.verify_until:
        return key
    SigningKey.objects.filter(kid=key.kid).update(
        verify_until=Greatest("verify_until", Value(needed))
    )
    extended = dataclasses.replace(key, verify_until=needed)
    _cache.replace(extended)
    return extended


# -- The per-process cache ----------------------------------------------------


class _KeyCache:
    """Loaded keys by kid, each entry fresh for ``KEY_CACHE_SECONDS``.

    Unknown kids are remembered too (bounded), so a flood of tokens with made-up
    kids costs one query per kid, not one per request. That is safe because a
    kid is a thumbprint of the key: nobody can present it before the key exists.
    """

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
            key = _load(row, with_private=True)
            expires = time.monotonic() + KEY_CACHE_SECONDS
            self._signing = (expires, key)
            self._verifying[key.kid] = (expires, key)
        return key

    def replace(self, key: LoadedKey) -> None:
        """Swap in a newer state of a loaded key, keeping its expiry in the cache."""
        with self._lock:
            if self._signing and self._signing[1].kid == key.kid:
                self._signing = (self._signing[0], key)
            if key.kid in self._verifying:
                self._verifying[key.kid] = (self._verifying[key.kid][0], key)

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
        key = _load(row, with_private=False)
        self._verifying[kid] = (now + KEY_CACHE_SECONDS, key)
        return key


_cache = _KeyCache()


def signing_key() -> LoadedKey:
    """The key that signs new access tokens, created on first use."""
    return _cache.signing_key()


def verification_key(kid: str) -> LoadedKey | None:
    """The key with this kid, or None if there is no such key."""
    return _cache.verification_key(kid)


def clear_cache() -> None:
    """Forget loaded keys (tests, and after restoring a database)."""
    _cache.clear()


@receiver(setting_changed)
def _clear_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "TOKEN_LIFECYCLE"):
        clear_cache()
