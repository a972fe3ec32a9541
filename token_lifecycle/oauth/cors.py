"""CORS on the token endpoints, for the pages of browser-mode clients only.

A single-page app of a client with ``refresh_token_in_cookie`` may be served
from another origin than the API (``https://app.example.com`` calling
``https://api.example.com/auth/token/``). Its browser lets it read an answer
only if the answer names its origin and allows credentials, which the refresh
cookie needs. So the token and revocation endpoints answer:

- ``Access-Control-Allow-Origin: <the origin>`` (never ``*``, which a request
  with credentials cannot use) and ``Access-Control-Allow-Credentials: true``
  for an origin the client registered in ``allowed_origins``, compared as an
  exact string (:mod:`token_lifecycle.origins`);
- nothing at all for any other origin: the browser then hides the answer;
- ``Vary: Origin`` always, since the answer depends on it.

Which client? Once the request has authenticated its client, that client's
origins. A preflight has no body, hence no ``client_id``, and a request may be
refused before its client is known: then an origin registered by any active
browser-mode client is allowed (:func:`registered`), which is harmless, since
a cookie refresh still checks the origin against its own client.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_vary_headers

from .. import origins
from ..models import Client

logger = logging.getLogger(__name__)

ALLOW_METHODS = "POST"
#: Content-Type: a JSON body makes the request preflighted; Authorization: HTTP Basic.
ALLOW_HEADERS = "Authorization, Content-Type"
#: Headers of an error the page may need to act on (a browser hides others).
EXPOSE_HEADERS = "Retry-After, WWW-Authenticate"
#: Seconds a browser may reuse a preflight's answer: short, so that an origin
#: removed from a client stops working soon after.
PREFLIGHT_MAX_AGE = 600
#: ``https://`` + the longest DNS name + ``:65535``: no registered origin is longer.
_LONGEST_ORIGIN = len("https://") + 253 + len(":65535")


def request_origin(request: HttpRequest) -> str | None:
    """The request's ``Origin`` if it is shaped like an origin one could register, else None."""
    origin = request.headers.get("Origin")
    if not origin or len(origin) > _LONGEST_ORIGIN or origins.problem(origin) is not None:
        return None  # "null", garbage or a huge value: never registered, never queried
    return origin


def client_allows(client: Client, origin: str | None) -> bool:
    """Whether ``origin`` is one of the browser origins ``client`` registered, exactly."""
    return bool(origin) and client.refresh_token_in_cookie and origin in client.origin_list


def registered(origin: str) -> bool:
    """Whether an active browser-mode client registered ``origin``.

    One query, narrowed by the database to the few browser-mode clients whose
    origins contain the string, reading only that column; the exact match is
    :func:`client_allows`'s. A database that cannot answer means no.
    """
    try:
        candidates = list(
            Client.objects.filter(
                is_active=True, refresh_token_in_cookie=True, allowed_origins__contains=origin
            ).only("pk", "refresh_token_in_cookie", "allowed_origins")
        )
    except DatabaseError:
        logger.warning("Could not look up the CORS origins; answering without CORS.")
        return False
    return any(client_allows(client, origin) for client in candidates)


def allowed_origin(request: HttpRequest, client: Client | None) -> str | None:
    """The origin to answer CORS for: the request's, if ``client`` (or, unknown, any) allows it."""
    origin = request_origin(request)
    if origin is None:
        return None
    allowed = client_allows(client, origin) if client is not None else registered(origin)
    return origin if allowed else None


def is_preflight(request: HttpRequest) -> bool:
    """A CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``."""
    headers = request.headers
    return (
        request.method == "OPTIONS"
        and "Origin" in headers
        and "Access-Control-Request-Method" in headers
    )


def add_headers(response: HttpResponseBase, origin: str | None, *, preflight: bool) -> None:
    """The CORS headers for ``origin`` (an allowed one, or None for none) on ``response``."""
    patch_vary_headers(response, ["Origin"])
    if origin is None:
        return
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Allow-Credentials"] = "true"
    if preflight:
        response["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    else:
        response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
