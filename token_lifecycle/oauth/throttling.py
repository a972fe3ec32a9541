"""Rate limits of the token endpoint, configured with DRF's ``DEFAULT_THROTTLE_RATES``.

- ``"token_lifecycle.token"``: every request to ``POST /token/``, per client
  IP (:func:`client_ip`). Unset by default: no limit.
- ``"token_lifecycle.password_username"`` and ``"token_lifecycle.password_ip"``:
  *failed* password-grant attempts per username and per IP, so guessing a
  password is slow while legitimate logins are never counted. Default
  ``"10/min"`` and ``"50/min"``; set to ``None`` to turn one off.

A refused request gets 429 with ``Retry-After`` and an RFC 6749 error body
(``"error": "slow_down"``, the code RFC 8628 registered for this).

Failures are counted in fixed windows of the rate's period (a count per
minute for ``"10/min"``). An attempt takes its place in the count *before*
its password is hashed, with the cache's atomic ``add`` and ``incr``: however
many attempts arrive at once, at most the limit of them per window reach the
hasher. A wrong password keeps its place; a success, or an attempt refused
by the other limit, gives it back. ``incr`` is atomic in Redis, Memcached and
(within one process) local memory, not in the database or file caches.

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

import contextlib
import logging
import time
from functools import partial

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
    """Failures under one key, counted per fixed window with atomic cache operations."""

    def __init__(self, scope: str, ident: str) -> None:
        self.scope = scope
        self.ident = ident
        super().__init__()

    def get_rate(self) -> str | None:
        return _rate(self.scope)

    def window(self, now: float) -> tuple[str, float]:
        """The cache key counting the window holding ``now``, and when that window ends."""
        index = int(now // self.duration)
        key = self.cache_format % {"scope": self.scope, "ident": self.ident}
        return f"{key}:{index}", (index + 1) * self.duration

    def take(self, key: str) -> int:
        """Count one attempt under ``key``; the count including it."""
        for _ in range(2):
            # Kept beyond its window, so it cannot expire between add() and incr().
            self.cache.add(key, 0, 2 * self.duration)
            try:
                return self.cache.incr(key)
            except ValueError:  # deleted in between, by a success clearing the count
                pass
        return self.cache.incr(key)

    def give_back(self, key: str) -> None:
        with contextlib.suppress(ValueError):  # gone already: cleared, or expired
            self.cache.decr(key)

    def clear(self, *keys: str) -> None:
        self.cache.delete_many(list(dict.fromkeys(keys)))


class PasswordFailureLimiter:
    """Failed password-grant attempts, per username and per IP.

    ``check()`` before verifying the password: it takes the attempt's place in
    each count, atomically, and refuses (429) when a count is full, so a
    refused guess costs no hash and parallel guesses cannot overrun the limit.
    ``failed()`` after a wrong password keeps the places; ``succeeded()``
    gives the per-IP place back and clears the username's count. The username
    is hashed into the cache key: no credential-like value is stored in the
    cache in clear.
    """

    def __init__(self, request: Request, username: str) -> None:
        self.counters = [
            _FailureCounter(PASSWORD_USERNAME_SCOPE, digest(username.casefold())),
            _FailureCounter(PASSWORD_IP_SCOPE, digest(client_ip(request))),
        ]
        #: The places this attempt holds: (counter, cache key).
        self._taken: list[tuple[_FailureCounter, str]] = []

    def check(self) -> None:
        now = time.time()
        waits = []
        for counter in self.counters:
            if counter.rate is None:
                continue
            key, ends = counter.window(now)
            count = _unless_cache_fails(partial(counter.take, key))
            if count is None:
                continue
            self._taken.append((counter, key))
            if count > counter.num_requests:
                waits.append(ends - now)
        if waits:
            self._give_back()  # a refused attempt is not a failure
            raise TooManyRequests(max(waits))

    def failed(self) -> None:
        self._taken = []  # the places stay counted

    def succeeded(self) -> None:
        taken, self._taken = self._taken, []
        for counter, key in taken:
            if counter is self.counters[0]:
                current, _ = counter.window(time.time())
                _unless_cache_fails(partial(counter.clear, key, current))
            else:
                _unless_cache_fails(partial(counter.give_back, key))

    def _give_back(self) -> None:
        taken, self._taken = self._taken, []
        for counter, key in taken:
            _unless_cache_fails(partial(counter.give_back, key))


def _unless_cache_fails(operation, default=None):
    try:
        return operation()
    except Exception:
        logger.warning("Throttle cache unavailable; password limits not enforced.", exc_info=True)
        return default
