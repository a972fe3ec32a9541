"""Single flight: at most one renewal in progress per auth object, the others wait for it.

Shared by threads (which block on the result) and asyncio tasks (which await
it without blocking the loop), so one auth object used from both still makes
one token request at a time. The result is a ``concurrent.futures.Future``
marked running from the start: a waiting task that is cancelled cannot cancel
the flight for everybody else.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        self._guard = threading.Lock()
        self._in_flight: Future[T] | None = None

    def join(self) -> tuple[Future[T], bool]:
        """The flight in progress and False, or a new one and True (the caller leads it)."""
        with self._guard:
            if self._in_flight is not None:
                return self._in_flight, False
            future: Future[T] = Future()
            future.set_running_or_notify_cancel()
            self._in_flight = future
            return future, True

    def lead(self, future: Future[T], work: Callable[[], T]) -> T:
        """Run ``work`` for the flight ``future`` (returned by :meth:`join` with True)."""
        try:
            result = work()
        except BaseException as error:
            self._land()
            future.set_exception(error)
            raise
        self._land()
        future.set_result(result)
        return result

    def _land(self) -> None:
        # Cleared before the result is published: a caller that comes after the
        # flight starts a new one, which finds the fresh pair and makes no request.
        with self._guard:
            self._in_flight = None


_instances: weakref.WeakSet[SingleFlight] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The flight's thread does not exist in the child: waiting for it would hang.
    for flight in list(_instances):
        flight._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
