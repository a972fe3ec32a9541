"""Browser origins a client registers for browser mode (``allowed_origins``).

An origin is ``scheme://host[:port]`` (RFC 6454), compared with a request's
``Origin`` header as an exact string, the way browsers send it: lower-case
scheme and host, no default port, no path and no trailing slash.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def problem(origin: str) -> str | None:
    """Why ``origin`` cannot be registered, or None if it can."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return "is not a valid origin"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be scheme://host[:port] with http or https"
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc or origin.endswith("/"):
        return "must be scheme://host[:port], without a path, a query or userinfo"
    expected = f"{parts.scheme}://{parts.netloc.lower()}"
    if origin != expected:
        return f"must be written as a browser sends it: {expected}"
    if port is not None and port == {"https": 443, "http": 80}[parts.scheme]:
        return "must leave out the default port, as browsers do"
    return None
