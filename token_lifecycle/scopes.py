"""Scopes (RFC 6749 §3.3): what a new family may be granted, and how a refresh narrows it."""

from __future__ import annotations

import re

from .oauth.errors import InvalidScope

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def _scope_tokens(requested: str) -> set[str]:
    """RFC 6749 §3.3: scope tokens are printable ASCII, separated by single spaces."""
    tokens = {token for token in requested.split(" ") if token}
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise InvalidScope("The scope is malformed (RFC 6749 §3.3).")
    return tokens


def grant_scope(requested: str | None, allowed: frozenset[str]) -> str:
    """The scope of a new family: the requested scopes, or all the client may have."""
    if requested is None:
        return " ".join(sorted(allowed))
    wanted = _scope_tokens(requested)
    if not wanted <= allowed:
        raise InvalidScope("The requested scope exceeds what this client may request.")
    return " ".join(sorted(wanted))


def narrow_scope(requested: str | None, original: str) -> str:
    """RFC 6749 §6: a refresh may narrow the scope, never widen it."""
    if requested is None:
        return original
    wanted = _scope_tokens(requested)
    if not wanted <= set(original.split(" ")):
        raise InvalidScope("A refresh cannot request scopes beyond the original grant.")
    return " ".join(sorted(wanted))
