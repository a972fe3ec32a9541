"""A token store in a Django cache: for a client service that *is* a Django project.

Takes the cache object (``django.core.cache.caches["default"]``), which this
module does not import, so ``token_lifecycle.client`` stays free of Django.
What it shares follows the cache: a Redis or Memcached cache shares the pair
across every process and host; ``LocMemCache`` only across the threads of one
process. The lock is ``cache.add`` (atomic in those backends) of a random token
that expires after ``lock_ttl`` seconds; its release is check-then-delete,
which the cache API cannot make atomic: a lock that expired while held may be
deleted by its late holder, which only costs an extra refresh inside the
grace window. Use :class:`RedisTokenStore` for a strictly safe release.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from .base import ExpiringKeyStore, held_lock

logger = logging.getLogger("token_lifecycle.client")


class DjangoCacheTokenStore(ExpiringKeyStore):
    """Cache keys ``<prefix><key>`` (the pair) and ``<prefix><key>:lock``."""

    def __init__(
        self, cache: Any, *, prefix: str = "token_lifecycle:client:", lock_ttl: float = 30.0
    ) -> None:
        super().__init__(prefix=prefix, lock_ttl=lock_ttl)
        self.cache = cache

    def _get(self, name: str) -> Any:
        return self.cache.get(name)

    def _set(self, name: str, value: str, seconds: int | None) -> None:
        self.cache.set(name, value, timeout=seconds)

    def _delete(self, name: str) -> None:
        self.cache.delete(name)

    def lock(self, key: str, timeout: float):
        name, token = f"{self.prefix}{key}:lock", secrets.token_hex(16)

        def acquire() -> bool:
            return bool(self.cache.add(name, token, timeout=self.lock_ttl))

        def release() -> None:
            if self.cache.get(name) == token:
                self.cache.delete(name)
            else:
                logger.warning("The token store lock %s expired before its release.", name)

        return held_lock(acquire, release, timeout)
