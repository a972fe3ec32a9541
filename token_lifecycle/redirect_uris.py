"""Which redirect URIs a client may register, and when a presented one matches.

RFC 9700 §4.1.3: redirect URIs are compared as exact strings. The one
exception is RFC 8252 §7.3: a native app listening on a loopback interface
gets a port from the operating system at run time, so a registered
``http://127.0.0.1/cb`` or ``http://[::1]/cb`` matches the same URI on any port.

Registration allows ``https``, loopback ``http`` and private-use schemes
(RFC 8252 §7.1, e.g. ``com.example.app:/callback``); never a fragment
(RFC 6749 §3.1.2) or userinfo, and never ``http://localhost`` (RFC 8252 §8.3:
the name may resolve elsewhere).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")
#: RFC 3986 §3.1 scheme syntax.
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*\Z")
#: Schemes that load content or run script, never a redirect target.
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob"})
MAX_LENGTH = 2000


def problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered as a redirect URI, or None if it can."""
    if len(uri) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if not uri.isprintable() or any(char.isspace() for char in uri):
        return "contains a space or a control character"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URI"
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.match(scheme):
        return "has no scheme"
    if "#" in uri:
        return "has a fragment (RFC 6749 §3.1.2)"
    if "@" in parts.netloc:
        return "has userinfo"
    if scheme in _FORBIDDEN_SCHEMES:
        return f"uses the {scheme}: scheme"
    if scheme == "https":
        return None if parts.hostname else "has no host"
    if scheme == "http":
        if _is_loopback(parts):
            return None
        return "uses http: only loopback (http://127.0.0.1 or http://[::1]) may (RFC 8252 §7.3)"
    if "." not in scheme:
        # RFC 8252 §7.1: a private-use scheme is a reverse domain name the app controls.
        return "uses a private-use scheme that is not a reverse domain name (com.example.app)"
    return None


def matches(registered: str, presented: str) -> bool:
    """Whether ``presented`` is the registered URI: exact, or loopback on another port."""
    if presented == registered:
        return True
    try:
        want, got = urlsplit(registered), urlsplit(presented)
        got.port  # noqa: B018
    except ValueError:
        return False
    if not (_is_loopback(want) and _is_loopback(got)) or "@" in got.netloc:
        return False
    return (want.scheme, want.hostname, want.path, want.query, want.fragment) == (
        got.scheme,
        got.hostname,
        got.path,
        got.query,
        got.fragment,
    ) and "#" not in presented


def _is_loopback(parts: SplitResult) -> bool:
    host = parts.netloc.rpartition(":")[0] if parts.port is not None else parts.netloc
    return parts.scheme == "http" and host in LOOPBACK_HOSTS
