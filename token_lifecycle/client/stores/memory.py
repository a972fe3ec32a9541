"""A token store in the process's memory: shares one pair between the threads and
asyncio tasks of one process (and is the default of ``TokenAuth``)."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator

from ..tokens import TokenSet
from .base import TokenStore


class MemoryTokenStore(TokenStore):
    """A dict and one ``threading.Lock`` per key. Nothing survives the process."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenSet] = {}
        self._reset_locks()
        _instances.add(self)

    def _reset_locks(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def load(self, key: str) -> TokenSet | None:
        return self._tokens.get(key)

    def save(self, key: str, tokens: TokenSet) -> None:
        self._tokens[key] = tokens

    def delete(self, key: str) -> None:
        self._tokens.pop(key, None)

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[bool]:
        with self._guard:
            key_lock = self._locks.setdefault(key, threading.Lock())
        acquired = key_lock.acquire(timeout=max(timeout, 0))
        try:
            yield acquired
        finally:
            if acquired:
                key_lock.release()


_instances: weakref.WeakSet[MemoryTokenStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork() would stay held forever in the
    # child. The pair itself is kept: the child shares it like any other worker.
    for store in list(_instances):
        store._reset_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
