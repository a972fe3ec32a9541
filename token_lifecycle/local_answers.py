"""Validation answers kept in this process, when the validation cache is this process's own.

With Django's ``LocMemCache`` the validation entries live in this process's
memory and nothing outside it can change them. Inside it, the app's keys are
written only by :mod:`.validation`, and it tells this module each time. So an
answer read from the cache once (the pair's state, its user's and client's
rows) can be kept and reused without reading the cache again, as long as:

- no write since: a revocation drops the answers of its pairs; a user or
  client dropped from the cache drops every answer; a read that overlapped
  any write is not kept (``ticket``);
- none of its entries has expired: an answer is kept until the earliest
  ``cached_until`` of its three entries, so a change made behind the app's
  back is seen within ``VALIDATION_CACHE_SECONDS``, as before;
- the cache was not emptied behind the app's back (``cache.clear()``, or the
  cache culling entries when full): an epoch key, set before any answer is
  kept, must still be there. Reading it is one cache read instead of three,
  and no decoding: a warm ``authenticate()`` went from 26 to 16 µs here.

A shared cache (Redis, memcached, a database) can be changed by other
processes, and other processes' writes are not seen here, so it gets none of
this: :func:`answers_for` returns None.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import NamedTuple

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache


class Answer(NamedTuple):
    """What three validation entries said about a pair that could be used."""

    cached_until: float  # time.time(), the clock of LocMemCache's expiry
    pair_state: tuple
    user_row: bytes
    client_row: bytes


class LocalAnswers:
    """The answers of one per-process cache alias. Thread-safe."""

    MAX_ANSWERS = 10_000

    def __init__(self, cache: BaseCache, epoch_key: str) -> None:
        # A LocMemCache instance is a view of storage shared by the process's
        # instances of that alias (Django makes one per thread): any will do.
        self._cache = cache
        self._epoch_key = epoch_key
        self._epoch = secrets.token_hex(8)
        self._answers: dict[str, Answer] = {}
        self._writes = 0
        self._lock = threading.Lock()

    def get(self, pair_id: str) -> Answer | None:
        """The kept answer for ``pair_id`` if it is still what the cache holds."""
        answer = self._answers.get(pair_id)
        if answer is None:
            return None
        if time.time() >= answer.cached_until:
            return None
        if self._cache.get(self._epoch_key) != self._epoch:
            self.forget_all()  # emptied behind our back: read everything again
            return None
        return answer

    def ticket(self) -> int:
        """Call before reading the entries an answer is made of; pass the result to keep()."""
        ticket = self._writes
        self._cache.add(self._epoch_key, self._epoch, None)
        return ticket

    def keep(self, ticket: int, pair_id: str, answer: Answer) -> None:
        with self._lock:
            if ticket != self._writes:
                return  # a write overlapped the read: the answer may predate it
            if len(self._answers) >= self.MAX_ANSWERS:
                self._answers.pop(next(iter(self._answers)))  # oldest first
            self._answers[pair_id] = answer

    def forget_pairs(self, pair_ids: list[str]) -> None:
        with self._lock:
            self._writes += 1
            for pair_id in pair_ids:
                self._answers.pop(pair_id, None)

    def forget_all(self) -> None:
        with self._lock:
            self._writes += 1
            self._answers = {}


#: alias -> its answers, or None for a shared cache.
_by_alias: dict[str, LocalAnswers | None] = {}
_by_alias_lock = threading.Lock()


def answers_for(alias: str, epoch_key: str) -> LocalAnswers | None:
    """The answers kept for cache ``alias``, or None if it is shared with other processes."""
    try:
        return _by_alias[alias]
    except KeyError:
        pass
    cache = caches[alias]
    with _by_alias_lock:
        if alias not in _by_alias:
            per_process = isinstance(cache, LocMemCache)
            _by_alias[alias] = LocalAnswers(cache, epoch_key) if per_process else None
        return _by_alias[alias]


def forget_everything() -> None:
    """Drop every kept answer, and what is known of each alias (settings changed)."""
    with _by_alias_lock:
        _by_alias.clear()
