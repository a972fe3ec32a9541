"""Where an authorization server's metadata is published (RFC 8414 §3).

Shared by the client library (:mod:`token_lifecycle.client.discovery`) and
resource servers (:mod:`token_lifecycle.remote.discovery`); it imports only
the standard library, since the client library never imports Django.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

METADATA_PATH = "/.well-known/oauth-authorization-server"


def metadata_urls(issuer: str) -> list[str]:
    """Where the metadata of ``issuer`` may be, in the order they are tried.

    First RFC 8414 §3.1: the well-known path inserted between the host and the
    issuer's path. Then the path appended to the issuer, which this app (and
    many servers) also serve.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    inserted = urlunsplit((parts.scheme, parts.netloc, METADATA_PATH + path, "", ""))
    appended = urlunsplit((parts.scheme, parts.netloc, path + METADATA_PATH, "", ""))
    return [inserted] if inserted == appended else [inserted, appended]
