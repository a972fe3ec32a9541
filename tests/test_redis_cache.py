"""The Redis backend's near cache: local hits, and Redis's invalidations honoured at once.

The first part drives :class:`NearCache` with a scripted connection and clock
(no Redis): the ordering rules. The second part runs against the tests' Redis
database: writes made behind the backend's back, by another client, are seen
on the next read.
"""

from __future__ import annotations

import pickle
import time
from unittest import mock

import pytest
from conftest import REDIS_URL
from django.core.cache.backends.redis import RedisSerializer

from token_lifecycle import redis_cache
from token_lifecycle.cache import KEY_PREFIX
from token_lifecycle.redis_cache import NearCache, RedisCache

PREFIX = ":1:" + KEY_PREFIX


class FakeConnection:
    """Messages queued by the test, as Redis would send them on the tracking connection."""

    def __init__(self) -> None:
        self.inbox: list = []
        self.sent: list = []
        self.broken = False
        self.disconnected = False

    def can_read(self, timeout=0):
        if self.broken:
            raise ConnectionError("reset by peer")
        return bool(self.inbox)

    def read_response(self):
        return self.inbox.pop(0)

    def send_command(self, *args):
        self.sent.append(args)

    def disconnect(self):
        self.disconnected = True

    def invalidate(self, *keys):
        payload = None if keys == (None,) else [key.encode() for key in keys]
        self.inbox.append([b"message", b"__redis__:invalidate", payload])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def near():
    connections: list[FakeConnection] = []

    def connect():
        connections.append(FakeConnection())
        return connections[-1]

    clock = Clock()
    cache = NearCache(connect, PREFIX, max_entries=3, clock=clock)
    cache.connections, cache.clock = connections, clock
    return cache


def fill(near: NearCache, key: str, raw: bytes = b"v", ttl_ms: int = 60_000) -> None:
    found, tickets = near.lookup([key])
    assert found == {}
    near.store({key: (raw, ttl_ms)}, tickets)


class TestNearCacheRules:
    def test_a_stored_value_is_served_locally(self, near):
        fill(near, PREFIX + "a", b"1")
        assert near.lookup([PREFIX + "a"]) == ({PREFIX + "a": b"1"}, {})

    def test_keys_outside_the_prefix_are_never_kept(self, near):
        found, tickets = near.lookup(["other:a"])
        assert (found, tickets) == ({}, {})

    def test_an_invalidation_drops_the_entry_before_the_next_lookup(self, near):
        fill(near, PREFIX + "a")
        near.connections[0].invalidate(PREFIX + "a")
        found, tickets = near.lookup([PREFIX + "a"])
        assert found == {} and PREFIX + "a" in tickets

    def test_a_change_reported_while_reading_is_not_stored(self, near):
        """Read old value, then an invalidation for a later write arrives: keep nothing."""
        _found, tickets = near.lookup([PREFIX + "a"])
        near.connections[0].invalidate(PREFIX + "a")
        near.store({PREFIX + "a": (b"old", 60_000)}, tickets)
        assert near.lookup([PREFIX + "a"])[0] == {}

    def test_a_flush_drops_everything(self, near):
        fill(near, PREFIX + "a")
        fill(near, PREFIX + "b")
        near.connections[0].invalidate(None)
        assert near.lookup([PREFIX + "a", PREFIX + "b"])[0] == {}

    def test_an_entry_lives_no_longer_than_its_redis_ttl(self, near):
        fill(near, PREFIX + "a", ttl_ms=2_000)
        near.clock.now += 1.9
        assert near.lookup([PREFIX + "a"])[0] == {PREFIX + "a": b"v"}
        near.clock.now += 0.2
        assert near.lookup([PREFIX + "a"])[0] == {}

    def test_a_key_gone_before_its_ttl_was_read_is_not_stored(self, near):
        fill(near, PREFIX + "a", ttl_ms=-2)
        assert near.lookup([PREFIX + "a"])[0] == {}

    def test_own_writes_drop_local_copies(self, near):
        fill(near, PREFIX + "a")
        near.forget([PREFIX + "a"])
        assert near.lookup([PREFIX + "a"])[0] == {}

    def test_the_oldest_entry_makes_room(self, near):
        for name in "abcd":
            fill(near, PREFIX + name)
        assert set(near.lookup([PREFIX + n for n in "abcd"])[0]) == {PREFIX + n for n in "bcd"}

    def test_silence_is_answered_with_a_ping_and_then_distrust(self, near):
        fill(near, PREFIX + "a")
        connection = near.connections[0]
        near.clock.now += 1.5  # quiet for longer than PING_AFTER: ping, still trusted
        assert near.lookup([PREFIX + "a"])[0] == {PREFIX + "a": b"v"}
        assert connection.sent == [("PING",)]
        connection.inbox.append([b"pong", b""])
        near.clock.now += 0.1
        assert near.lookup([PREFIX + "a"])[0] == {PREFIX + "a": b"v"}
        # No answer to the next ping: after TRUST_FOR the entries are not used.
        near.clock.now += 1.5
        near.lookup([])
        near.clock.now += 2.0
        assert near.lookup([PREFIX + "a"]) == ({}, {})
        # And once the ping is overdue, the connection and every entry are dropped.
        near.clock.now += 2.0
        near.lookup([])
        assert connection.disconnected
        near.clock.now += redis_cache.RETRY_AFTER
        found, _tickets = near.lookup([PREFIX + "a"])
        assert found == {} and len(near.connections) == 2

    def test_a_lost_connection_drops_every_entry_and_reconnects_later(self, near):
        fill(near, PREFIX + "a")
        near.connections[0].broken = True
        assert near.lookup([PREFIX + "a"]) == ({}, {})  # plain Redis reads meanwhile
        near.clock.now += redis_cache.RETRY_AFTER / 2
        assert near.lookup([PREFIX + "a"]) == ({}, {})
        assert len(near.connections) == 1
        near.clock.now += redis_cache.RETRY_AFTER
        found, tickets = near.lookup([PREFIX + "a"])
        assert found == {} and tickets and len(near.connections) == 2

    def test_a_forked_child_opens_its_own_connection(self, near):
        fill(near, PREFIX + "a")
        with mock.patch.object(redis_cache.os, "getpid", return_value=-1):
            found, _tickets = near.lookup([PREFIX + "a"])
        assert found == {} and len(near.connections) == 2

    def test_redis_refusing_tracking_turns_the_near_cache_off(self, caplog):
        from redis.exceptions import ResponseError

        attempts = []

        def connect():
            attempts.append(1)
            raise ResponseError("unknown subcommand 'TRACKING'")

        clock = Clock()
        cache = NearCache(connect, PREFIX, max_entries=3, clock=clock)
        assert cache.lookup([PREFIX + "a"]) == ({}, {})
        clock.now += 3600
        assert cache.lookup([PREFIX + "a"]) == ({}, {})
        assert len(attempts) == 1
        assert "Near cache off" in caplog.text


# Against Redis.


@pytest.fixture
def backend():
    import redis

    raw = redis.Redis.from_url(REDIS_URL)
    raw.flushdb()
    cache = RedisCache(REDIS_URL, {})
    yield cache, raw
    raw.flushdb()


def counting_reads(cache):
    client = cache._cache
    return mock.patch.object(client, "_read", wraps=client._read)


def wait_for(condition, timeout=2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.redis
class TestAgainstRedis:
    def test_a_warm_read_makes_no_round_trip(self, backend):
        cache, _ = backend
        cache.set(KEY_PREFIX + "a", {"x": 1}, 60)
        assert cache.get_many([KEY_PREFIX + "a"]) == {KEY_PREFIX + "a": {"x": 1}}
        with counting_reads(cache) as reads:
            for _ in range(5):
                assert cache.get(KEY_PREFIX + "a") == {"x": 1}
        assert reads.call_count == 0

    def test_each_read_gets_its_own_copy(self, backend):
        cache, _ = backend
        cache.set(KEY_PREFIX + "a", {"x": 1}, 60)
        cache.get(KEY_PREFIX + "a")["x"] = 2
        assert cache.get(KEY_PREFIX + "a") == {"x": 1}

    def test_a_write_by_another_client_is_seen_on_the_next_read(self, backend):
        cache, raw = backend
        cache.set(KEY_PREFIX + "a", "old", 60)
        assert cache.get(KEY_PREFIX + "a") == "old"
        assert cache.get(KEY_PREFIX + "a") == "old"  # now local
        raw.set(cache.make_key(KEY_PREFIX + "a"), pickle.dumps("new"), ex=60)
        assert cache.get(KEY_PREFIX + "a") == "new"
        raw.delete(cache.make_key(KEY_PREFIX + "a"))
        assert cache.get(KEY_PREFIX + "a") is None

    def test_a_flush_by_another_client_is_seen(self, backend):
        cache, raw = backend
        cache.set(KEY_PREFIX + "a", 1, 60)
        assert cache.get(KEY_PREFIX + "a") == 1
        raw.flushdb()
        assert cache.get(KEY_PREFIX + "a") is None

    def test_an_expired_key_is_not_served(self, backend):
        cache, _ = backend
        cache.set(KEY_PREFIX + "a", "soon gone", 1)
        assert cache.get(KEY_PREFIX + "a") == "soon gone"
        time.sleep(1.1)
        assert cache.get(KEY_PREFIX + "a") is None

    def test_other_keys_are_plain_redis_reads(self, backend):
        cache, raw = backend
        cache.set("elsewhere", 1, 60)
        assert cache.get("elsewhere") == 1
        raw.set(cache.make_key("elsewhere"), RedisSerializer().dumps(2))
        assert cache.get("elsewhere") == 2

    def test_a_killed_tracking_connection_never_leaves_stale_entries(self, backend):
        cache, raw = backend
        cache.set(KEY_PREFIX + "a", "old", 60)
        assert cache.get(KEY_PREFIX + "a") == "old"
        trackers = [c for c in raw.client_list() if "B" in c["flags"]]
        assert trackers
        for tracker in trackers:
            raw.client_kill_filter(_id=tracker["id"])
        # Written while this process has no tracking: it must not answer "old".
        raw.set(cache.make_key(KEY_PREFIX + "a"), pickle.dumps("new"), ex=60)
        assert cache.get(KEY_PREFIX + "a") == "new"

    def test_without_the_near_cache_every_read_goes_to_redis(self, backend):
        _, raw = backend
        cache = RedisCache(REDIS_URL, {"OPTIONS": {"NEAR_CACHE": False}})
        cache.set(KEY_PREFIX + "a", "old", 60)
        assert cache.get(KEY_PREFIX + "a") == "old"
        raw.set(cache.make_key(KEY_PREFIX + "a"), pickle.dumps("new"), ex=60)
        assert cache.get(KEY_PREFIX + "a") == "new"
        assert cache._cache._near is None
