"""The plumbing shared by the OAuth endpoints (token, revocation, introspection).

Strict body parsing, client authentication and the RFC 6749 response shapes.
Parsing is done here rather than by DRF parsers because every malformed input
(bad JSON, a repeated parameter, non-UTF-8 bytes, a NUL character, a number
where a string belongs) must become a 400 ``invalid_request`` in the RFC
shape, never a 500 and never a DRF ``{"detail": ...}`` body.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from rest_framework.exceptions import MethodNotAllowed, Throttled
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from . import credentials, validation
from .conf import lifecycle_settings
from .errors import (
    InvalidClient,
    InvalidRequest,
    OAuthError,
    RequestTooLarge,
    TemporarilyUnavailable,
    WrongMethod,
)
from .models import Client
from .throttling import TooManyRequests

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_MAX_FIELDS = 32
_MAX_VALUE_LENGTH = 4096
# Compared against when the client does not exist, so that an unknown client
# and a wrong secret take the same time.
_DUMMY_DIGEST = credentials.digest("no such client")


def parse_body(request) -> dict[str, str]:
    """The request's parameters as a dict of strings, or :class:`InvalidRequest`.

    Per RFC 6749 §3.1 a parameter sent without a value counts as omitted and a
    parameter must not be repeated. JSON bodies must be one object whose values
    are strings (``null`` counts as omitted).
    """
    limit = lifecycle_settings().max_request_body_bytes
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidRequest("The Content-Length header is not a number.") from None
    if declared > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    try:
        body = request.body
    except RequestDataTooBig:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.") from None
    if len(body) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    if not body:
        return {}
    # DRF's request.content_type is the raw header; parameters are split off here.
    media_type, _, parameters = request.META.get("CONTENT_TYPE", "").partition(";")
    content_type = media_type.strip().lower()
    if content_type not in (FORM, JSON):
        raise InvalidRequest(f"The request body must be {FORM} or {JSON}.")
    if _charset(parameters) not in (None, "utf-8", "utf8"):
        raise InvalidRequest("The request body must be encoded in UTF-8.")
    items = _parse_form(body) if content_type == FORM else _parse_json(body)

    params: dict[str, str] = {}
    for name, value in items:
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"The {name!r} parameter must be a string.")
        _check_text(name, value)
        if name in params:
            raise InvalidRequest(f"The {name!r} parameter is repeated.")
        params[name] = value
    return params


def _charset(parameters: str) -> str | None:
    """The ``charset`` among Content-Type parameters (others are ignored), lower-cased."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _parse_form(body: bytes) -> list[tuple[str, Any]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=_MAX_FIELDS)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8.") from None
    except ValueError:
        raise InvalidRequest("The request body has too many parameters.") from None


def _parse_json(body: bytes) -> list[tuple[str, Any]]:
    try:
        # Pairs, not a dict, so that a repeated key is seen and refused.
        # Decoded first: json.loads would accept UTF-16/32 bytes (RFC 8259 wants UTF-8).
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_JSONObject)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8.") from None
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(data, _JSONObject):
        raise InvalidRequest("The JSON body must be an object.")
    if len(data) > _MAX_FIELDS:
        raise InvalidRequest("The request body has too many parameters.")
    return list(data)


class _JSONObject(list):
    """A JSON object kept as its list of (key, value) pairs, duplicates included."""


def _check_text(name: str, value: str) -> None:
    if len(value) > _MAX_VALUE_LENGTH:
        raise InvalidRequest(f"The {name!r} parameter is too long.")
    if "\x00" in value:
        raise InvalidRequest(f"The {name!r} parameter contains a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON "\ud800"
        raise InvalidRequest(f"The {name!r} parameter is not valid Unicode.") from None


# -- Client authentication (RFC 6749 §2.3) -------------------------------------


def _basic_credentials(request) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        client_id, separator, secret = decoded.partition(":")
        if not separator:
            raise ValueError
        # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("The Basic credentials are malformed.") from None


def authenticate_client(request, params: dict[str, str]) -> Client:
    """The client making the request, authenticated by HTTP Basic or by the body.

    Consumes ``client_id`` and ``client_secret`` from ``params``. Every failure
    is the same 401 ``invalid_client``: the answer does not say whether the
    client exists.
    """
    basic = _basic_credentials(request)
    body_id = params.pop("client_id", None)
    body_secret = params.pop("client_secret", None)
    if basic and (body_id or body_secret):
        raise InvalidRequest("Use one client authentication method, not both.")
    if basic:
        client_id, secret = basic
    elif body_id:
        client_id, secret = body_id, body_secret
    elif body_secret:
        raise InvalidRequest("client_secret was sent without client_id.")
    else:
        raise InvalidClient("Client authentication is required.")

    client = validation.client_by_id(client_id)
    if client is None:
        credentials.matches(secret or "", _DUMMY_DIGEST)
        raise InvalidClient("Client authentication failed.")
    authenticated = (not secret) if client.is_public else client.check_secret(secret or "")
    if not authenticated or not client.is_active:
        raise InvalidClient("Client authentication failed.")
    return client


# -- Responses ----------------------------------------------------------------


class _JSONOnly(BaseContentNegotiation):
    """OAuth endpoints answer JSON whatever the Accept header says."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class OAuthEndpoint(APIView):
    """Base view: no DRF authentication or parsing, RFC 6749 errors, ``no-store``.

    Subclasses parse with :func:`parse_body`, authenticate the client with
    :func:`authenticate_client`, and raise :class:`OAuthError` for refusals.
    """

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _JSONOnly

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, (OperationalError, InterfaceError)):
            # Database down, restarting, or a deadlock it gave up on: the
            # transaction rolled back, so the client may simply retry.
            logger.warning("Database unavailable; answering 503.", exc_info=exc)
            exc = TemporarilyUnavailable("The service is temporarily unavailable; retry later.")
        elif isinstance(exc, MethodNotAllowed):
            exc = WrongMethod(f"Use POST, not {self.request.method}.")
        elif isinstance(exc, Throttled):
            exc = TooManyRequests(exc.wait or 1)
        if isinstance(exc, OAuthError):
            response = oauth_error_response(exc)
            if isinstance(exc, WrongMethod):
                response["Allow"] = ", ".join(self.allowed_methods)
            return response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response


def oauth_error_response(error: OAuthError) -> Response:
    response = Response(error.as_dict(), status=error.status)
    if isinstance(error, InvalidClient):
        response["WWW-Authenticate"] = 'Basic realm="api"'
    if isinstance(error, TemporarilyUnavailable):
        response["Retry-After"] = "1"
    if isinstance(error, TooManyRequests):
        response["Retry-After"] = str(error.wait)
    return response
