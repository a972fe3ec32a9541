"""A token store in Redis: shares one pair between every process on every host.

Takes a redis-py client (``redis.Redis.from_url(...)``), which this module does
not import: the package has no hard dependency on redis-py. The pair is one
string key (JSON) that expires when the pair is useless; the lock is a second
key set with ``SET NX PX`` holding a random token, released by a script that
deletes it only if it still holds that token, and expiring after
``lock_ttl`` seconds so that a worker that died holding it cannot wedge the
deployment. ``lock_ttl`` must exceed a token request's timeout (10 s).

Tokens are stored in clear: use a Redis that only this deployment's services
can reach, or a database number of its own.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from .base import ExpiringKeyStore, held_lock

logger = logging.getLogger("token_lifecycle.client")

#: Delete the lock only if it still holds our token (it may have expired and been re-taken).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisTokenStore(ExpiringKeyStore):
    """Keys ``<prefix><key>`` (the pair) and ``<prefix><key>:lock``."""

    def __init__(
        self, redis_client: Any, *, prefix: str = "token_lifecycle:client:", lock_ttl: float = 30.0
    ) -> None:
        super().__init__(prefix=prefix, lock_ttl=lock_ttl)
        self.redis = redis_client

    def _get(self, name: str) -> Any:
        return self.redis.get(name)

    def _set(self, name: str, value: str, seconds: int | None) -> None:
        self.redis.set(name, value, ex=seconds)

    def _delete(self, name: str) -> None:
        self.redis.delete(name)

    def lock(self, key: str, timeout: float):
        name, token = f"{self.prefix}{key}:lock", secrets.token_hex(16)
        ttl_ms = max(1, int(self.lock_ttl * 1000))

        def acquire() -> bool:
            return bool(self.redis.set(name, token, nx=True, px=ttl_ms))

        def release() -> None:
            if not self.redis.eval(_RELEASE, 1, name, token):
                logger.warning("The token store lock %s expired before its release.", name)

        return held_lock(acquire, release, timeout)
