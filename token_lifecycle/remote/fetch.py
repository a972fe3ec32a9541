"""HTTP calls to the authorization server: the standard library, short timeouts, JSON only.

Every way a call can fail (refused connection, timeout, a status other than
200, a body too large or not a JSON object) is one exception,
:class:`~.errors.AuthorizationServerUnavailable`, so that callers answer 503
and never 500. Redirects are not followed: a redirect would carry the
introspecting client's credentials to wherever it points.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from .errors import AuthorizationServerUnavailable

#: Metadata, JWKS and introspection answers are a few KB; anything larger is refused.
MAX_BODY_BYTES = 512 * 1024
_CHUNK = 16 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx status


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class JSONResponse:
    body: dict[str, Any]
    headers: Message


def fetch_json(
    url: str,
    *,
    timeout: float,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """GET (or POST ``data``) ``url`` and return its JSON object.

    ``timeout`` bounds each socket operation and, between reads, the whole
    call: a server that trickles its answer is cut off within about twice
    ``timeout``.
    """
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Accept": "application/json", **(headers or {})},
    )
    deadline = time.monotonic() + timeout
    try:
        with _opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise AuthorizationServerUnavailable(f"{url} answered {response.status}.")
            raw = _read(response, deadline, url)
            response_headers = response.headers
    except urllib.error.HTTPError as error:
        error.close()
        raise AuthorizationServerUnavailable(f"{url} answered {error.code}.") from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        # OSError: refused, reset, timed out (URLError too); HTTPException: a malformed
        # status line or a truncated body; ValueError: a malformed header.
        name = type(getattr(error, "reason", error)).__name__
        raise AuthorizationServerUnavailable(f"{url} could not be reached ({name}).") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise AuthorizationServerUnavailable(f"{url} answered something not JSON.") from None
    if not isinstance(body, dict):
        raise AuthorizationServerUnavailable(f"{url} answered JSON that is not an object.")
    return JSONResponse(body, response_headers)


def _read(response: Any, deadline: float, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise AuthorizationServerUnavailable(f"{url} answered too slowly.")
        chunk = response.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise AuthorizationServerUnavailable(
                f"{url} answered more than {MAX_BODY_BYTES} bytes."
            )
        chunks.append(chunk)


def max_age(headers: Message, *, default: float, floor: float, ceiling: float) -> float:
    """How long a document may be reused, from its ``Cache-Control``, kept within bounds.

    ``no-store``/``no-cache`` (or ``max-age=0``) is the floor: a server asking
    for no caching does not get a fetch per request.
    """
    directives = {}
    for part in (headers.get("Cache-Control") or "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return floor
    if "max-age" not in directives:
        return max(floor, min(ceiling, default))
    try:
        seconds = int(directives["max-age"])
    except ValueError:
        return max(floor, min(ceiling, default))
    return max(floor, min(ceiling, seconds))
