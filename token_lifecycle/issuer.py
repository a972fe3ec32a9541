"""The ``iss`` of this deployment: the one value tokens are issued under and checked against.

``TOKEN_LIFECYCLE['ISSUER']`` when set. Otherwise it is derived from the HTTP
request: the scheme and host it came to, and the path the app is mounted at.
Set it when the API answers on several hosts, or tokens issued on one host are
refused on another (``manage.py check --deploy`` says so).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.urls import reverse

from .conf import lifecycle_settings

_MAX_REMEMBERED = 256


@lru_cache(maxsize=1)
def _mount_path() -> str:
    # "/auth/token/" -> "/auth": where the project included token_lifecycle.urls.
    return reverse("token_lifecycle:token").removesuffix("/").rsplit("/", 1)[0]


#: Issuers already derived, by the raw headers they came from (only hosts Django accepted).
_by_raw_host: dict[tuple, str] = {}


def issuer_for(request: HttpRequest) -> str:
    """The issuer for tokens issued and accepted through ``request``."""
    configured = lifecycle_settings().issuer
    if configured:
        return configured
    # request.get_host() checks ALLOWED_HOSTS on every call: on the bearer
    # path, remember its answer for the raw headers it is computed from.
    meta = request.META
    raw = (
        request.scheme,
        meta.get("HTTP_HOST"),
        meta.get("HTTP_X_FORWARDED_HOST"),
        meta.get("SERVER_NAME"),
        meta.get("SERVER_PORT"),
    )
    issuer = _by_raw_host.get(raw)
    if issuer is None:
        issuer = f"{request.scheme}://{request.get_host()}{_mount_path()}"
        if len(_by_raw_host) < _MAX_REMEMBERED:
            _by_raw_host[raw] = issuer
    return issuer


@receiver(setting_changed)
def _forget(**kwargs: Any) -> None:
    # ALLOWED_HOSTS, proxy headers, URLconfs...: any setting may matter.
    _by_raw_host.clear()
    _mount_path.cache_clear()
