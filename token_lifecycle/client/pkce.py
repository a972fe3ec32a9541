"""PKCE (RFC 7636) on the client's side: the one-time secret that binds a code to its requester.

The client keeps a random ``code_verifier`` and sends only its SHA-256
(``code_challenge``, method ``S256``) with the authorization request; the code
is then worth nothing without the verifier, so a code intercepted on its way
back (another app on the machine, a browser extension, a log) cannot be
exchanged. ``plain`` is not offered: the server refuses it.

The S256 computation is the server's own (:mod:`token_lifecycle.pkce`, which
imports only the standard library), so client and server cannot disagree on it.
"""

from __future__ import annotations

import dataclasses
import secrets

from ..pkce import S256, b64url, s256_challenge

#: RFC 7636 §4.1 recommends 32 random octets, base64url-encoded: 43 characters.
VERIFIER_BYTES = 32

__all__ = ["Pkce", "s256_challenge"]


@dataclasses.dataclass(frozen=True)
class Pkce:
    """A verifier and its S256 challenge, made for one authorization request."""

    verifier: str = dataclasses.field(repr=False)
    challenge: str
    method: str = S256

    @classmethod
    def new(cls) -> Pkce:
        verifier = b64url(secrets.token_bytes(VERIFIER_BYTES))
        return cls(verifier=verifier, challenge=s256_challenge(verifier))
