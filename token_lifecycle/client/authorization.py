"""The authorization request a client sends through the browser, and the redirect it gets back.

RFC 6749 §4.1.1 and §4.1.2 with PKCE (RFC 7636) and the issuer check of
RFC 9207. The answer arrives as query parameters on the client's redirect URI;
before its code is trusted:

- ``state`` must be the one this request made (compared in constant time):
  otherwise the redirect was not caused by this client (cross-site request
  forgery, or a stale browser tab);
- ``iss``, when present, must be the server this client asked; when the
  server advertises ``authorization_response_iss_parameter_supported`` it
  must be present. That stops a mix-up attack, where a response from one
  server is replayed to a client that talks to several;
- ``error`` (``access_denied`` when the user said no) becomes an exception.

A repeated parameter is refused (RFC 6749 §3.1): which copy counts would be
ambiguous.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from .errors import ReauthenticationRequired
from .pkce import Pkce

#: 128 random bits: unguessable, and short enough for any URL.
STATE_BYTES = 16


class AuthorizationFailed(ReauthenticationRequired):
    """A browser login did not produce a code: no pair was obtained.

    ``error`` is the server's (``invalid_scope``, ``unauthorized_client``...)
    or the client's own (``timeout``, ``invalid_response``).
    """


class AuthorizationDenied(AuthorizationFailed):
    """``access_denied``: the user declined the consent page (or the server refused them)."""


class AuthorizationTimedOut(AuthorizationFailed):
    """No redirect came back within the timeout: the browser window was left or closed."""


class AuthorizationResponseRejected(AuthorizationFailed):
    """The redirect failed a check (``state``, ``iss``, a repeated or missing parameter).

    Possibly an attack: the response was discarded, its code (if any) never
    sent anywhere.
    """


def new_state() -> str:
    """An opaque ``state`` value for one authorization request."""
    return secrets.token_urlsafe(STATE_BYTES)


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    pkce: Pkce,
    scope: str | None = None,
) -> str:
    """The authorization endpoint's URL with the request's parameters.

    Parameters already in ``endpoint``'s query are kept (RFC 6749 §3.1).
    """
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": pkce.method,
    }
    if scope:
        params["scope"] = scope
    parts = urlsplit(endpoint)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query, fragment=""))


def code_from_response(
    params: Mapping[str, Sequence[str]],
    *,
    state: str,
    issuer: str,
    iss_required: bool,
) -> str:
    """The code of a valid authorization response, or the matching :class:`AuthorizationFailed`.

    ``params`` are the redirect's query parameters, each with every value it
    came with (``urllib.parse.parse_qs``).
    """
    repeated = sorted(name for name, values in params.items() if len(values) != 1)
    if repeated:
        raise AuthorizationResponseRejected(
            "invalid_response", f"Repeated parameter(s) in the redirect: {', '.join(repeated)}."
        )
    values = {name: found[0] for name, found in params.items()}
    received_state = values.get("state", "")
    if not hmac.compare_digest(received_state.encode(), state.encode()):
        raise AuthorizationResponseRejected(
            "invalid_response", "The redirect's state is not this login's: it was discarded."
        )
    received_iss = values.get("iss")
    if received_iss is None and iss_required:
        raise AuthorizationResponseRejected(
            "invalid_response", f"The redirect has no iss, yet {issuer} always sends it."
        )
    if received_iss is not None and received_iss != issuer:
        raise AuthorizationResponseRejected(
            "invalid_response",
            f"The redirect comes from issuer {received_iss!r}, not {issuer!r}: it was discarded.",
        )
    error = values.get("error")
    if error is not None:
        failure = AuthorizationDenied if error == "access_denied" else AuthorizationFailed
        raise failure(error, values.get("error_description", ""))
    code = values.get("code")
    if not code:
        raise AuthorizationResponseRejected("invalid_response", "The redirect has no code.")
    return code
