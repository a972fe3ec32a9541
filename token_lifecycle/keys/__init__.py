"""Signing keys and the access tokens they sign; no HTTP request in sight.

- :mod:`.encryption`: private keys at rest;
- :mod:`.store`: generating keys, and this process's loaded copies;
- :mod:`.rotation`: ``manage.py rotate_signing_key``;
- :mod:`.access_tokens`: signing and verifying access tokens (RFC 9068).
"""

from .access_tokens import (
    TOKEN_TYPE,
    InvalidAccessToken,
    audience_for,
    decode_access_token,
    encode_access_token,
    verify_access_token,
)
from .encryption import KeyDecryptionError, decrypt_private_key, encrypt_private_key
from .rotation import longest_access_lifetime, rotate
from .store import (
    KEY_CACHE_SECONDS,
    LoadedKey,
    clear_cache,
    create_signing_key,
    published_jwk,
    signing_key,
    signing_key_for,
    verification_key,
)

__all__ = [
    "KEY_CACHE_SECONDS",
    "TOKEN_TYPE",
    "InvalidAccessToken",
    "KeyDecryptionError",
    "LoadedKey",
    "audience_for",
    "clear_cache",
    "create_signing_key",
    "decode_access_token",
    "decrypt_private_key",
    "encode_access_token",
    "encrypt_private_key",
    "longest_access_lifetime",
    "published_jwk",
    "rotate",
    "signing_key",
    "signing_key_for",
    "verification_key",
    "verify_access_token",
]
