"""Django's Redis cache backend, with a near cache that Redis keeps honest.

Use it as the cache alias of ``TOKEN_LIFECYCLE["CACHE_ALIAS"]``::

    CACHES = {"default": {"BACKEND": "token_lifecycle.redis_cache.RedisCache",
                          "LOCATION": "redis://127.0.0.1:6379/0"}}

It knows nothing of the app: it keeps near whatever keys it reads, and any
Django code may use the alias.

Two differences from Django's ``RedisCache``, both for the bearer path (one
``get_many`` per request):

- One ``redis.Redis`` client per connection pool. Django builds one per
  operation, which with redis-py 8 costs ~60 µs, more than the round trip.
- A per-process copy of the values it read (the near cache), so a warm
  request costs no round trip at all. It stays right because Redis tells
  the process when any of those keys changes: a dedicated connection asks for
  server-assisted client-side caching in broadcast mode (``CLIENT TRACKING ON
  BCAST PREFIX``, Redis >= 6), and Redis then sends an invalidation for every
  write, delete or expiry of a key under the prefix, by any client. Each
  lookup first reads the invalidations waiting on that connection
  (redis-py's public ``Connection.can_read(timeout=0)``, a few µs). Redis
  queues an invalidation in the same event loop turn as the write it
  reports, so by the time the process that revoked a pair has answered its
  client, the invalidation is already on its way to every other process;
  the next request anywhere reads it before it looks.

The copy is used only while that connection is known to be alive: it is
pinged after a second of silence and trusted for three seconds since it last
heard from Redis. A lost connection or any error drops the whole copy and
falls back to plain Redis reads until a new connection is set up. A local
entry never outlives its Redis key (its TTL is read with the value).

``OPTIONS``: ``NEAR_CACHE`` (default ``True``; ``False`` gives Django's
behaviour plus the client reuse), ``NEAR_CACHE_MAX_ENTRIES`` (default 10,000),
``NEAR_CACHE_PREFIX`` (default ``""``: every key; a prefix, as passed to
``cache.get``, keeps only those keys near).

Why not redis-py's own client-side caching (``protocol=3, cache_config=...``)?
It refuses servers older than Redis 7.4, and the Redis most Linux
distributions ship (Debian 12: 7.0) is older.
The near cache needs a single server in ``LOCATION``; with replicas it is off.
Everything else (options, serializer, pools) is Django's own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

logger = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "__redis__:invalidate"
#: Ping the invalidation connection after this long without a message (s).
PING_AFTER = 1.0
#: Trust local entries only this long after the connection was last heard from (s).
TRUST_FOR = 3.0
#: After a failed set-up, plain Redis reads for this long before trying again (s).
RETRY_AFTER = 1.0
#: Local lifetime of an entry whose key has no TTL in Redis (s).
NO_TTL_LIFETIME = 300.0


class NearCache:
    """Raw values of recently read keys under ``prefix``, dropped when Redis reports a change.

    Thread-safe; one per process and Redis server (see :func:`near_cache_for`).
    Values are kept serialized, so each reader gets its own copy, as from any
    Django cache.
    """

    def __init__(
        self, connect: Callable[[], object], prefix: str, max_entries: int, clock=time.monotonic
    ) -> None:
        self._connect = connect
        self.prefix = prefix
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, bytes]] = {}  # key -> (expires_at, raw value)
        self._pending: dict[str, int] = {}  # key -> ticket of the read in flight
        self._next_ticket = 0
        self._connection = None
        self._pid = None
        self._last_heard = 0.0
        self._ping_sent_at: float | None = None
        self._retry_at = 0.0
        self._warned = False

    def lookup(self, keys: Iterable[str]) -> tuple[dict[str, bytes], dict[str, int]]:
        """Local values of ``keys``, and tickets for the misses to pass to :meth:`store`."""
        found: dict[str, bytes] = {}
        tickets: dict[str, int] = {}
        with self._lock:
            now = self._clock()
            if not self._listening(now):
                return found, tickets
            for key in keys:
                if not key.startswith(self.prefix):
                    continue
                entry = self._entries.get(key)
                if entry is not None and now < entry[0]:
                    found[key] = entry[1]
                    continue
                self._next_ticket += 1
                self._pending[key] = tickets[key] = self._next_ticket
        return found, tickets

    def store(self, values: dict[str, tuple[bytes, int]], tickets: dict[str, int]) -> None:
        """Keep values read from Redis (with their TTL in ms) unless reported changed since."""
        with self._lock:
            now = self._clock()
            # Invalidations that arrived while the values were read drop their tickets.
            if not self._listening(now):
                return
            for key, (raw, ttl_ms) in values.items():
                ticket = tickets.get(key)
                if ticket is None or self._pending.get(key) != ticket:
                    continue
                del self._pending[key]
                if ttl_ms == -2:  # gone already
                    continue
                lifetime = ttl_ms / 1000 if ttl_ms > 0 else NO_TTL_LIFETIME
                if len(self._entries) >= self._max_entries:
                    self._entries.pop(next(iter(self._entries)))  # oldest first
                self._entries[key] = (now + lifetime, raw)
            if len(self._pending) > self._max_entries:
                self._pending.clear()  # reads that failed; their tickets just lapse

    def forget(self, keys: Iterable[str] | None) -> None:
        """Drop entries this process has just written (``None``: all of them)."""
        with self._lock:
            if keys is None:
                self._clear()
                return
            for key in keys:
                self._entries.pop(key, None)
                self._pending.pop(key, None)

    # The invalidation connection. Called with the lock held.

    def _listening(self, now: float) -> bool:
        """Read the waiting invalidations; whether local entries may be trusted now."""
        if self._pid != os.getpid():
            self._drop(now, retry=False)  # a forked child: never read the parent's socket
            self._pid = os.getpid()
        if self._connection is None:
            if now < self._retry_at:
                return False
            try:
                self._connection = self._connect()
            except Exception as error:
                self._setup_failed(error, now)
                return False
            self._last_heard = now
            self._warned = False
        try:
            connection = self._connection
            while connection.can_read(timeout=0):  # buffered bytes first, then the socket
                self._receive(connection.read_response(), now)
            if now - self._last_heard > PING_AFTER:
                if self._ping_sent_at is None:
                    connection.send_command("PING")
                    self._ping_sent_at = now
                elif now - self._ping_sent_at > TRUST_FOR:
                    raise ConnectionError("no answer to PING on the invalidation connection")
        except Exception:
            logger.warning("Near cache connection lost; dropping local entries.", exc_info=True)
            self._drop(now)
            return False
        return now - self._last_heard <= TRUST_FOR

    def _setup_failed(self, error: Exception, now: float) -> None:
        from redis.exceptions import ResponseError

        self._drop(now)
        if isinstance(error, ResponseError):
            # Redis < 6 or an ACL without CLIENT TRACKING: that will not change.
            self._retry_at = float("inf")
            logger.warning("Near cache off: Redis refused client tracking (%s).", error)
        elif not self._warned:
            self._warned = True
            logger.warning("Near cache unavailable; reading Redis meanwhile.", exc_info=True)

    def _receive(self, message, now: float) -> None:
        self._last_heard = now
        kind = message[0] if isinstance(message, list) and message else None
        if kind == b"pong":
            self._ping_sent_at = None
        elif kind == b"message" and message[1] == INVALIDATION_CHANNEL.encode():
            keys = message[2]
            if keys is None:  # FLUSHDB / FLUSHALL
                self._clear()
                return
            for raw_key in keys:
                key = raw_key.decode("utf-8", "replace")
                self._entries.pop(key, None)
                self._pending.pop(key, None)

    def _clear(self) -> None:
        self._entries.clear()
        self._pending.clear()

    def _drop(self, now: float, retry: bool = True) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.disconnect()  # in a forked child, only closes its copy
        self._connection = None
        self._ping_sent_at = None
        self._clear()
        self._retry_at = now + RETRY_AFTER if retry else 0.0


def tracking_connection(server: str, pool_options: dict, prefix: str):
    """A new connection to ``server`` that receives invalidations for ``prefix``.

    It redirects the invalidations of its own tracking to itself and subscribes
    to them (RESP2), so the tracking ends exactly when this connection does.
    No retries: a reconnect would silently lose the tracking.
    """
    from redis import ConnectionPool
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = {**pool_options, "protocol": 2}  # redis-py 8 defaults to RESP3
    try:  # redis-py >= 7 would otherwise require RESP3 for its maintenance notifications
        from redis.maint_notifications import MaintNotificationsConfig

        options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    except ImportError:
        pass
    connection = ConnectionPool.from_url(server, **options).make_connection()
    connection.retry = Retry(NoBackoff(), 0)
    connection.connect()
    connection.send_command("CLIENT", "ID")
    client_id = connection.read_response()
    connection.send_command(
        "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", prefix
    )
    connection.read_response()
    connection.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
    connection.read_response()
    return connection


_near_caches: dict[tuple, NearCache] = {}
_near_caches_lock = threading.Lock()


def near_cache_for(server: str, prefix: str, max_entries: int, pool_options: dict) -> NearCache:
    """The process's near cache for this server and prefix (Django's caches are per thread)."""
    with _near_caches_lock:
        near = _near_caches.get((server, prefix))
        if near is None:
            near = NearCache(
                lambda: tracking_connection(server, pool_options, prefix), prefix, max_entries
            )
            _near_caches[(server, prefix)] = near
        return near


def _first_key(key, *rest) -> list:
    return [key]


def _dropping_local_copies(method, keys_of):
    """Django's write ``method``, then this process's copies of what it wrote dropped."""

    @functools.wraps(method)
    def write(self, *args):
        try:
            return method(self, *args)
        finally:
            self._forget(keys_of(*args))

    return write


class _Client(RedisCacheClient):
    def __init__(self, servers, near_cache_prefix: str | None, near_cache_max_entries, **options):
        super().__init__(servers, **options)
        self._clients: dict[int, object] = {}
        self._near: NearCache | None = None
        # Replicas are not tracked: with several servers, every read goes to Redis.
        if near_cache_prefix is not None and len(servers) == 1:
            self._near = near_cache_for(
                servers[0], near_cache_prefix, near_cache_max_entries, self._pool_options
            )

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._client(connection_pool=self._get_connection_pool(write))
            self._clients[index] = client
        return client

    # Reads: the near cache first, then one round trip for the rest.

    def get(self, key, default):
        if self._near is None:
            return super().get(key, default)
        return self.get_many([key]).get(key, default)

    def get_many(self, keys):
        if self._near is None:
            return super().get_many(keys)
        keys = list(keys)
        raw, tickets = self._near.lookup(keys)
        missing = [key for key in keys if key not in raw]
        if missing:
            raw.update(self._read(missing, tickets))
        return {key: self._serializer.loads(raw[key]) for key in keys if key in raw}

    def _read(self, keys: list[str], tickets: dict[str, int]) -> dict[str, bytes]:
        tracked = [key for key in keys if key in tickets]
        if not tracked:
            return _present(keys, self.get_client(None).mget(keys))
        pipeline = self.get_client(None).pipeline(transaction=False)
        pipeline.mget(keys)
        for key in tracked:
            pipeline.pttl(key)
        values, *ttls = pipeline.execute()
        found = _present(keys, values)
        with_ttls = {
            key: (found[key], ttl) for key, ttl in zip(tracked, ttls, strict=True) if key in found
        }
        self._near.store(with_ttls, tickets)
        return found

    # Writes: drop this process's copies at once (Redis reports them too, a moment later).

    add = _dropping_local_copies(RedisCacheClient.add, _first_key)
    set = _dropping_local_copies(RedisCacheClient.set, _first_key)
    touch = _dropping_local_copies(RedisCacheClient.touch, _first_key)
    delete = _dropping_local_copies(RedisCacheClient.delete, _first_key)
    incr = _dropping_local_copies(RedisCacheClient.incr, _first_key)
    delete_many = _dropping_local_copies(RedisCacheClient.delete_many, list)
    clear = _dropping_local_copies(RedisCacheClient.clear, lambda: None)  # None: all

    def set_many(self, data, timeout):
        try:
            if len(data) == 1 and timeout:  # a revocation's one tombstone: one SET ... EX
                ((key, value),) = data.items()
                client = self.get_client(key, write=True)
                client.set(key, self._serializer.dumps(value), ex=timeout)
            else:
                super().set_many(data, timeout)
        finally:
            self._forget(list(data))

    def _forget(self, keys) -> None:
        if self._near is not None:
            self._near.forget(keys)


def _present(keys: list[str], values: list) -> dict[str, bytes]:
    return {key: value for key, value in zip(keys, values, strict=True) if value is not None}


class RedisCache(DjangoRedisCache):
    def validate_key(self, key) -> None:
        """No memcached portability warnings: Redis takes any key (and they cost ~2 µs a key)."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        options = dict(self._options)
        near_cache = options.pop("NEAR_CACHE", True)
        max_entries = options.pop("NEAR_CACHE_MAX_ENTRIES", 10_000)
        self._near_cache_key_prefix = options.pop("NEAR_CACHE_PREFIX", "")
        self._options = options
        self._near_cache_settings = (near_cache, max_entries)

    def _near_cache_prefix(self) -> str | None:
        """The made-key prefix of the keys kept near (``NEAR_CACHE_PREFIX``), or None."""
        prefix = self.make_key(self._near_cache_key_prefix)
        if not self.make_key(self._near_cache_key_prefix + "x").startswith(prefix):
            return None  # a KEY_FUNCTION that does not keep prefixes
        return prefix

    @functools.cached_property
    def _cache(self):
        near_cache, max_entries = self._near_cache_settings
        return _Client(
            self._servers,
            near_cache_prefix=self._near_cache_prefix() if near_cache else None,
            near_cache_max_entries=max_entries,
            **self._options,
        )
