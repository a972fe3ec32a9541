"""PKCE (RFC 7636) with the S256 method only: the challenge's shape, and the verifier check.

``plain`` is never accepted (RFC 9700 §2.1.1): a challenge equal to the
verifier protects nothing once the authorization request is seen.

This module imports only the standard library: the client library, which
never imports Django, shares it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

S256 = "S256"
#: RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}\Z")
#: RFC 7636 §4.2: BASE64URL(SHA256(verifier)), unpadded: 43 characters.
_CHALLENGE = re.compile(r"[A-Za-z0-9_\-]{43}\Z")


def s256_challenge(verifier: str) -> str:
    """The S256 challenge of ``verifier``."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def challenge_problem(challenge: str) -> str | None:
    """Why ``challenge`` is not an S256 challenge, or None if it is one."""
    if not _CHALLENGE.match(challenge):
        return "The code_challenge must be 43 characters of base64url (RFC 7636 §4.2)."
    # 43 characters carry 258 bits: the last two must be zero in a real SHA-256 digest.
    try:
        raw = base64.urlsafe_b64decode(challenge + "=")
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32 or b64url(raw) != challenge:
        return "The code_challenge is not the base64url encoding of a SHA-256 digest."
    return None


def challenge_for(verifier: str) -> str | None:
    """The S256 challenge a well-formed verifier answers (RFC 7636 §4.6), or None."""
    if not _VERIFIER.match(verifier):
        return None
    return s256_challenge(verifier)


def b64url(raw: bytes) -> str:
    """Unpadded base64url, as RFC 7636 Appendix A spells it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
