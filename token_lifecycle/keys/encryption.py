"""Private signing keys at rest: AES-256-GCM under a key derived from a Django secret.

The key is derived (HKDF-SHA256) from ``KEY_ENCRYPTION_SECRET``, which defaults
to ``SECRET_KEY``. The key id is bound to the ciphertext as associated data, so
a ciphertext copied onto another row does not decrypt. ``SECRET_KEY_FALLBACKS``
are tried on decryption, as ``django.contrib.auth.tokens`` does, so the usual
Django secret rotation keeps working; a secret that changed with no fallback
fails loudly instead of minting tokens nobody can verify.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..conf import lifecycle_settings

_VERSION = "v1"


class KeyDecryptionError(ImproperlyConfigured):
    """A stored private key cannot be decrypted with the configured secret."""


def _secrets() -> list[str]:
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
    sealed = _aead(_secrets()[0]).encrypt(nonce, private_der, kid.encode())
    return f"{_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_private_key(ciphertext: str, kid: str) -> bytes:
    version, _, payload = ciphertext.partition(":")
    if version != _VERSION:
        raise KeyDecryptionError(f"Signing key {kid}: unknown ciphertext format.")
    raw = base64.urlsafe_b64decode(payload)
    nonce, sealed = raw[:12], raw[12:]
    for secret in _secrets():
        try:
            return _aead(secret).decrypt(nonce, sealed, kid.encode())
        except InvalidTag:
            continue  # another secret, or a fallback, may have sealed it
    raise KeyDecryptionError(
        f"Signing key {kid} cannot be decrypted: SECRET_KEY (or TOKEN_LIFECYCLE"
        "['KEY_ENCRYPTION_SECRET']) changed. Put the previous value in SECRET_KEY_FALLBACKS, "
        "or rotate to a new signing key with manage.py rotate_signing_key."
    )
