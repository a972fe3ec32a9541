"""Rate limits of the token endpoint, configured with DRF's ``DEFAULT_THROTTLE_RATES``.

- ``"token_lifecycle.token"``: every request to ``POST /token/``, per client
  IP (:func:`client_ip`). Unset by default: no limit.
- ``"token_lifecycle.password_username"`` and ``"token_lifecycle.password_ip"``:
  *failed* password-grant attempts per username and per IP, so guessing a
  password is slow while legitimate logins are never counted. Default
  ``"10/min"`` and ``"50/min"``; set to ``None`` to turn one off.

A refused request gets 429 with ``Retry-After`` and an RFC 6749 error body
(``"error": "slow_down"``, the code RFC 8628 registered for this).

The client IP is ``REMOTE_ADDR`` unless DRF's ``NUM_PROXIES`` says how many
proxies in ``X-Forwarded-For`` to trust. (DRF's own ``get_ident`` uses the
whole ``X-Forwarded-For`` header when ``NUM_PROXIES`` is unset: a client
could then send a new one with each guess and never meet the per-IP limit.)
Identities enter cache keys only as SHA-256 digests: whatever a header holds
is never a cache key, which memcached would refuse.

The counts live in Django's default cache. If it is unavailable (Redis
down), the limits are not enforced and a warning is logged: logins and
refreshes keep working, as authentication does, rather than failing with
the cache.
"""

from __future__ import annotations

import logging
import time

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from ..credentials import digest
from .errors import TooManyRequests

logger = logging.getLogger(__name__)

TOKEN_SCOPE = "token_lifecycle.token"
PASSWORD_USERNAME_SCOPE = "token_lifecycle.password_username"
PASSWORD_IP_SCOPE = "token_lifecycle.password_ip"
DEFAULT_RATES = {PASSWORD_USERNAME_SCOPE: "10/min", PASSWORD_IP_SCOPE: "50/min"}


def client_ip(request: Request) -> str:
    """The address per-IP limits count: ``REMOTE_ADDR``, or as ``NUM_PROXIES`` says."""
    if api_settings.NUM_PROXIES is None:
        return request.META.get("REMOTE_ADDR", "")
    return BaseThrottle().get_ident(request)


def _rate(scope: str) -> str | None:
    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    return rates[scope] if scope in rates else DEFAULT_RATES.get(scope)


class TokenEndpointThrottle(SimpleRateThrottle):
    """All requests to the token endpoint, per client IP; off unless a rate is set."""

    scope = TOKEN_SCOPE

    def timer(self) -> float:
        # Looked up at each call (DRF binds time.time once), like the failure counters.
        return time.time()

    def get_rate(self) -> str | None:
        return _rate(self.scope)

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": digest(client_ip(request))}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.warning(
                "Throttle cache unavailable; %s not enforced.", self.scope, exc_info=True
            )
            return True


class _FailureCounter(SimpleRateThrottle):
    """Counts failures under one key; checking does not count."""

    def __init__(self, scope: str, ident: str) -> None:
        self.scope = scope
        self.ident = ident
        super().__init__()

    def get_rate(self) -> str | None:
        return _rate(self.scope)

    def _key(self) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    def wait_if_exceeded(self) -> float | None:
        """Seconds to wait if the limit is reached, else None."""
        if self.rate is None:
            return None
        now = time.time()
        recent = [t for t in self.cache.get(self._key(), []) if t > now - self.duration]
        if len(recent) < self.num_requests:
            return None
        return recent[0] + self.duration - now

    def add_failure(self) -> None:
        if self.rate is None:
            return
        now = time.time()
        recent = [t for t in self.cache.get(self._key(), []) if t > now - self.duration]
        self.cache.set(self._key(), [*recent, now], self.duration)

    def reset(self) -> None:
        if self.rate is not None:
            self.cache.delete(self._key())


class PasswordFailureLimiter:
    """Failed password-grant attempts, per username and per IP.

    ``check()`` before verifying the password (a locked-out guess costs no
    hash), ``failed()`` after a wrong one, ``succeeded()`` clears the
    username's count. The username is hashed into the cache key: no
    credential-like value is stored in the cache in clear.
    """

    def __init__(self, request: Request, username: str) -> None:
        self.counters = [
            _FailureCounter(PASSWORD_USERNAME_SCOPE, digest(username.casefold())),
            _FailureCounter(PASSWORD_IP_SCOPE, digest(client_ip(request))),
        ]

    def check(self) -> None:
        waits = _unless_cache_fails(
            lambda: [wait for counter in self.counters if (wait := counter.wait_if_exceeded())],
            default=[],
        )
        if waits:
            raise TooManyRequests(max(waits))

    def failed(self) -> None:
        for counter in self.counters:
            _unless_cache_fails(counter.add_failure)

    def succeeded(self) -> None:
        _unless_cache_fails(self.counters[0].reset)


def _unless_cache_fails(operation, default=None):
    try:
        return operation()
    except Exception:
        logger.warning("Throttle cache unavailable; password limits not enforced.", exc_info=True)
        return default
