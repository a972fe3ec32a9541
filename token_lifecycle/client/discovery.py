"""What a client learns from the server's metadata document (RFC 8414), given only the issuer.

A native app is configured with one URL, the issuer (``https://api.example.com/auth``);
the endpoints and what the server promises come from its metadata. RFC 8414
§3.1 places the document at ``https://host/.well-known/oauth-authorization-server/auth``;
a project that did not include the root-level URLs serves it only under the
issuer's path (``https://host/auth/.well-known/oauth-authorization-server``),
so that is tried second. The document's ``issuer`` must be the one asked for
(RFC 8414 §3.3), or an attacker able to serve a document could name someone
else's endpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import httpx

from ..rfc8414 import metadata_urls
from .endpoint import DEFAULT_TIMEOUT
from .errors import TokenEndpointError, TokenEndpointUnavailable


@dataclasses.dataclass(frozen=True)
class ServerMetadata:
    """The members of the metadata document this library uses."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    #: RFC 9207: the server always adds ``iss`` to its authorization responses.
    authorization_response_iss_parameter_supported: bool = False

    @classmethod
    def from_document(cls, document: object, *, issuer: str) -> ServerMetadata:
        """Read the metadata fetched for ``issuer``, or raise :class:`TokenEndpointError`."""
        if not isinstance(document, Mapping):
            raise _invalid("the metadata document is not a JSON object")
        if document.get("issuer") != issuer:
            raise _invalid(f"the metadata names issuer {document.get('issuer')!r}, not {issuer!r}")
        token_endpoint = document.get("token_endpoint")
        if not isinstance(token_endpoint, str) or not token_endpoint:
            raise _invalid("the metadata has no token_endpoint")
        return cls(
            issuer=issuer,
            token_endpoint=token_endpoint,
            authorization_endpoint=_url_or_none(document, "authorization_endpoint"),
            revocation_endpoint=_url_or_none(document, "revocation_endpoint"),
            authorization_response_iss_parameter_supported=(
                document.get("authorization_response_iss_parameter_supported") is True
            ),
        )


def discover(issuer: str, *, http_client: httpx.Client | None = None) -> ServerMetadata:
    """Fetch and check the metadata of ``issuer`` (``https://host/auth``, no trailing slash).

    Raises :class:`TokenEndpointUnavailable` when the server failed (5xx, 429),
    :class:`TokenEndpointError` (``invalid_metadata``) when no document was found
    or it does not describe ``issuer``, and httpx's errors when it cannot be reached.
    """
    http = http_client or httpx.Client(timeout=DEFAULT_TIMEOUT)
    failures: list[str] = []
    unavailable = False
    try:
        for url in metadata_urls(issuer):
            response = http.get(url, headers={"Accept": "application/json"})
            if response.status_code == 200:
                try:
                    document = response.json()
                except ValueError:
                    raise _invalid(f"{url} is not JSON") from None
                return ServerMetadata.from_document(document, issuer=issuer)
            unavailable = unavailable or response.status_code >= 500 or response.status_code == 429
            failures.append(f"{url}: HTTP {response.status_code}")
    finally:
        if http_client is None:
            http.close()
    if unavailable:
        raise TokenEndpointUnavailable("temporarily_unavailable", "; ".join(failures))
    raise _invalid("no metadata found (" + "; ".join(failures) + ")")


def _url_or_none(document: Mapping, member: str) -> str | None:
    value = document.get(member)
    return value if isinstance(value, str) and value else None


def _invalid(description: str) -> TokenEndpointError:
    return TokenEndpointError("invalid_metadata", description)
