"""Opaque credentials: refresh tokens, authorization codes, client ids and client secrets.

Refresh tokens, authorization codes and client secrets are 256 random bits. Only their SHA-256 is
stored. A slow password hash (PBKDF2, Argon2) exists to protect guessable
human passwords; against 256 random bits it adds nothing but latency on every
token request, so a single fast hash is the right tool here.

The prefixes (``rt_``, ``ac_``, ``cs_``) make a leaked credential recognisable to
secret scanners and to humans reading a log, and let the token endpoint tell
at a glance that a JWT was sent where a refresh token belongs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

REFRESH_TOKEN_PREFIX = "rt_"
AUTHORIZATION_CODE_PREFIX = "ac_"
CLIENT_SECRET_PREFIX = "cs_"
_RANDOM_BYTES = 32  # 256 bits, docs/tokens.md


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def new_authorization_code() -> str:
    return AUTHORIZATION_CODE_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def new_client_secret() -> str:
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def new_client_id() -> str:
    """A public identifier: random so that it reveals nothing about how many clients exist.

    Never starts with ``-``: command lines (argparse, getopt) would read such
    an id as an option.
    """
    while (client_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return client_id


def digest(credential: str) -> str:
    """The stored form of a refresh token or client secret (64 hex characters)."""
    return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()


def matches(credential: str, stored_digest: str) -> bool:
    """Compare a presented credential with a stored digest in constant time."""
    return hmac.compare_digest(digest(credential), stored_digest)
