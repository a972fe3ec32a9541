"""The ``TOKEN_LIFECYCLE_REMOTE`` settings of a resource server: defaults, validation, accessor.

Same style as :mod:`token_lifecycle.conf` (which configures the authorization
server): a frozen dataclass whose field names are the dict's keys lower-cased,
validated once, rebuilt when ``override_settings`` changes the dict. Each
problem names its key, and they are raised together as ``ImproperlyConfigured``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from ..conf import checked_values, duration_problem, settings_reader

SETTINGS_NAME = "TOKEN_LIFECYCLE_REMOTE"

#: The bound on how stale a cached introspection answer may be, hence on how late a
#: revocation is seen: the design notes' 300 s at most.
MAX_CACHE_SECONDS = 300


@dataclasses.dataclass(frozen=True)
class RemoteSettings:
    """Validated settings. Field names are the keys of ``TOKEN_LIFECYCLE_REMOTE``, lower-cased."""

    #: The authorization server's issuer, e.g. ``https://auth.example.com/auth``: the ``iss``
    #: of its tokens and, per RFC 8414, where its metadata is found.
    issuer: str
    #: The introspecting client (it needs ``can_introspect`` on the authorization server).
    client_id: str
    client_secret: str
    #: The ``aud`` tokens must carry; the server's default (its issuer) when not set.
    audience: str | None = None
    #: How long an introspection answer is reused: a revocation is seen within this.
    cache_seconds: int = MAX_CACHE_SECONDS
    #: The Django cache holding introspection answers; a shared one (Redis) lets the
    #: services of one deployment share them.
    cache_alias: str = "default"
    #: Each call to the authorization server gives up after this long.
    timeout_seconds: float = 2.0
    #: Forgives ``iat``/``nbf`` slightly in the future; never extends ``exp`` (the
    #: authorization server's rule and default).
    leeway: timedelta = timedelta(seconds=30)
    #: ``Retry-After`` of the 503 answered while the authorization server is unreachable,
    #: and how long a failed discovery fetch is not retried.
    retry_after: int = 5
    #: Where the RFC 8414 metadata is; by default derived from ``ISSUER`` (RFC 8414 §3.1).
    metadata_url: str | None = None

    @property
    def expected_audience(self) -> str:
        return self.audience or self.issuer


_REQUIRED = ("issuer", "client_id", "client_secret")
_OPTIONAL = ("audience", "metadata_url")
_FIELD_NAMES = {field.name for field in dataclasses.fields(RemoteSettings)}


def validate(raw: Any) -> tuple[RemoteSettings | None, list[str]]:
    """Check a ``TOKEN_LIFECYCLE_REMOTE`` value; return the settings and a list of problems."""
    if raw is None:
        return None, [
            f"{SETTINGS_NAME} is not set: a resource server needs at least ISSUER, "
            "CLIENT_ID and CLIENT_SECRET."
        ]
    if not isinstance(raw, dict):
        return None, [f"{SETTINGS_NAME} must be a dict, not {type(raw).__name__}."]
    values, errors = checked_values(raw, SETTINGS_NAME, _FIELD_NAMES, _check_value)
    for name in _REQUIRED:
        if name.upper() not in raw:
            errors.append(f"{SETTINGS_NAME}[{name.upper()!r}] is required.")
    if errors:
        return None, errors
    return RemoteSettings(**values), []


def _check_value(name: str, value: Any) -> str | None:
    if value is None:
        return None if name in _OPTIONAL else "must not be None."
    if name in ("issuer", "metadata_url"):
        return _url_problem(value)
    if name == "cache_seconds":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer from 0 to {MAX_CACHE_SECONDS} (seconds)."
        if not 0 <= value <= MAX_CACHE_SECONDS:
            return (
                f"must be from 0 to {MAX_CACHE_SECONDS} (seconds): it bounds how late a "
                "revocation is seen."
            )
        return None
    if name == "timeout_seconds":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 30:
            return "must be a number of seconds above 0 and at most 30."
        return None
    if name == "retry_after":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3600:
            return "must be an integer from 1 to 3600 (seconds)."
        return None
    if name == "leeway":
        return duration_problem(value, allow_zero=True)
    if name == "cache_alias" and value not in settings.CACHES:
        return f"names no cache in CACHES ({', '.join(map(repr, settings.CACHES))})."
    if not isinstance(value, str) or not value:
        return "must be a non-empty string."
    return None


def _url_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string."
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an http(s) URL, such as https://auth.example.com/auth."
    if parts.query or parts.fragment:
        return "must have no query or fragment (RFC 8414 §2)."
    return None


#: The validated settings; the one way :mod:`token_lifecycle.remote` reads them.
remote_settings: Callable[[], RemoteSettings] = settings_reader(SETTINGS_NAME, validate)
