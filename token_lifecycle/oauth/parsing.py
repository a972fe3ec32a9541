"""Strict parsing of OAuth request bodies (RFC 6749 §3.1).

Done here rather than by DRF parsers because every malformed input (bad JSON,
a repeated parameter, non-UTF-8 bytes, a NUL character, a number where a
string belongs) must become a 400 ``invalid_request`` in the RFC shape, never
a 500 and never a DRF ``{"detail": ...}`` body.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from django.core.exceptions import RequestDataTooBig
from rest_framework.request import Request

from ..conf import lifecycle_settings
from .errors import InvalidRequest, RequestTooLarge

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_MAX_FIELDS = 32
MAX_VALUE_LENGTH = 4096


def parse_body(request: Request) -> dict[str, str]:
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


def required(params: dict[str, str], name: str) -> str:
    """The value of a parameter the request must carry, or :class:`InvalidRequest`."""
    value = params.get(name)
    if value is None:
        raise InvalidRequest(f"The {name!r} parameter is required.")
    return value


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
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidRequest(f"The {name!r} parameter is too long.")
    if "\x00" in value:
        raise InvalidRequest(f"The {name!r} parameter contains a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON "\ud800"
        raise InvalidRequest(f"The {name!r} parameter is not valid Unicode.") from None
