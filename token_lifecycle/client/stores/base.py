"""The contract of a token store: one shared pair per key, and a lock to renew it.

Every worker of a deployment (threads, processes, hosts) that points at the same
store and key shares **one** pair and makes **one** refresh per rotation: the
worker that finds the pair due takes the lock, looks again (another worker may
have renewed it meanwhile, and then it simply adopts the stored pair), and
only otherwise calls the token endpoint and saves the result. That is what
keeps a deployment of 20 workers at 1 or 2 live pairs instead of 20 to 40
against the server's cap of 10 (docs/lifecycle.md#cap).

The lock is advisory and bounded: :meth:`TokenStore.lock` yields ``False`` when
it could not be had within ``timeout`` seconds, and the caller then proceeds
without it (a stuck worker must not stop the others). Proceeding unlocked is
safe within the server's grace window; ``auth.py`` then compares the store
again before saving, so the store never moves backwards.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..tokens import TokenSet

logger = logging.getLogger("token_lifecycle.client")


class TokenStore(abc.ABC):
    """Where the workers of one deployment keep the pair they share."""

    @abc.abstractmethod
    def load(self, key: str) -> TokenSet | None:
        """The stored pair, or ``None`` (never stored, deleted, expired or unreadable)."""

    @abc.abstractmethod
    def save(self, key: str, tokens: TokenSet) -> None:
        """Replace the stored pair (callers hold :meth:`lock`)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Forget the stored pair (after a logout, or when it is dead)."""

    @abc.abstractmethod
    def lock(self, key: str, timeout: float) -> contextlib.AbstractContextManager[bool]:
        """Hold the key's renewal lock for the ``with`` block.

        Yields True when held, False when ``timeout`` seconds passed without
        getting it (the block then runs unlocked). Mutually exclusive across
        every worker that shares the store: threads for all stores; processes
        for the file store; hosts for Redis and a shared Django cache.
        """


def wait_until(attempt: Callable[[], bool], timeout: float) -> bool:
    """Call ``attempt`` until it returns True, sleeping between tries, for about ``timeout`` s.

    The budget is counted from the sleeps, not read from a clock: the wait
    stays bounded when a test freezes time (freezegun also freezes
    ``time.monotonic``). Sleeps grow from 5 ms to 100 ms.
    """
    waited, pause = 0.0, 0.005
    while not attempt():
        if waited >= timeout:
            return False
        pause = min(pause * 2, 0.1, max(timeout - waited, 0.001))
        time.sleep(pause)
        waited += pause
    return True


@contextlib.contextmanager
def held_lock(
    acquire: Callable[[], bool], release: Callable[[], None], timeout: float
) -> Iterator[bool]:
    """A context manager over a try-acquire/release pair, polled with :func:`wait_until`."""
    acquired = wait_until(acquire, timeout)
    try:
        yield acquired
    finally:
        if acquired:
            release()


def seconds_to_keep(tokens: TokenSet) -> int | None:
    """How long a store with expiry (Redis, a cache) keeps a pair: its useful life.

    Counted from the pair's own ``obtained_at`` rather than the store's clock,
    so a worker whose clock is injected (or skewed) cannot make it vanish early.
    """
    ends = [t for t in (tokens.access_expires_at, tokens.refresh_expires_at) if t is not None]
    if not ends:
        return None
    return max(1, int(max(ends) - tokens.obtained_at) + 1)


class ExpiringKeyStore(TokenStore):
    """A store over a key-value service with expiry (Redis, a Django cache).

    The pair is one JSON value under ``<prefix><key>`` that expires when the
    pair is useless; subclasses give the three primitives and the lock.
    """

    def __init__(self, *, prefix: str = "token_lifecycle:client:", lock_ttl: float = 30.0) -> None:
        self.prefix = prefix
        self.lock_ttl = lock_ttl

    @abc.abstractmethod
    def _get(self, name: str) -> Any: ...

    @abc.abstractmethod
    def _set(self, name: str, value: str, seconds: int | None) -> None: ...

    @abc.abstractmethod
    def _delete(self, name: str) -> None: ...

    def load(self, key: str) -> TokenSet | None:
        raw = self._get(self.prefix + key)
        if raw is None:
            return None
        try:
            return TokenSet.from_json(raw)
        except ValueError as error:
            logger.warning("Ignoring unreadable token entry for %s: %s", key, error)
            return None

    def save(self, key: str, tokens: TokenSet) -> None:
        self._set(self.prefix + key, tokens.to_json(), seconds_to_keep(tokens))

    def delete(self, key: str) -> None:
        self._delete(self.prefix + key)
