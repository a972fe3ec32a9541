"""The token-store contract, run against every store, and the file lock across processes.

Stores: in memory, a directory (``FileTokenStore``), a Django cache (local
memory, and Django's Redis backend), and redis-py. The Redis ones use
``TOKEN_LIFECYCLE_TEST_CLIENT_REDIS_URL``, else the suite's Redis database
(``conftest.REDIS_URL``, only ever one given explicitly), under a key prefix of
their own, deleted afterwards, and skip without it like the rest of the suite's
``redis`` tests.

The cross-process tests start real processes (``multiprocessing``, spawn): they
import this module, which is why it imports nothing of Django at the top.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from pathlib import Path

import pytest

from token_lifecycle.client import (
    DjangoCacheTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenSet,
    TokenStore,
)


def _client_redis_url() -> str | None:
    """As ``conftest.REDIS_URL``, spelled out: spawned processes import this without Django."""
    for name in ("TOKEN_LIFECYCLE_TEST_CLIENT_REDIS_URL", "TOKEN_LIFECYCLE_TEST_REDIS_URL"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    cache_url = os.environ.get("CACHE_URL", "").strip()
    return cache_url if cache_url.startswith(("redis://", "rediss://")) else None


CLIENT_REDIS_URL = _client_redis_url()
#: Seconds after which a test gives up waiting: a failure guard, never a speed assertion.
GUARD = 20.0
KEY = "k1"


def tokens(number: int = 1, **fields) -> TokenSet:
    values = {
        "access_token": f"at-{number}",
        "access_expires_at": 1_700_001_000.5,
        "refresh_token": f"rt-{number}",
        "refresh_expires_at": 1_700_003_000.0,
        "obtained_at": 1_700_000_000.25,
        "scope": "read write",
    }
    return TokenSet(**{**values, **fields})


# -- The stores ----------------------------------------------------------------


def _redis_client():
    import redis

    return redis.Redis.from_url(CLIENT_REDIS_URL)


def _prefix() -> str:
    return f"test-client-{uuid.uuid4().hex}:"


def _delete_prefixed(prefix: str) -> None:
    client = _redis_client()
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def _memory(tmp_path):
    yield MemoryTokenStore()


def _file(tmp_path):
    yield FileTokenStore(tmp_path / "tokens")


def _django_locmem(tmp_path):
    from django.core.cache.backends.locmem import LocMemCache

    yield DjangoCacheTokenStore(LocMemCache(f"client-store-{uuid.uuid4().hex}", {}))


def _django_redis(tmp_path):
    from django.core.cache.backends.redis import RedisCache

    prefix = _prefix()
    yield DjangoCacheTokenStore(RedisCache(CLIENT_REDIS_URL, {}), prefix=prefix)
    _delete_prefixed(f":1:{prefix}")  # Django's key function adds ":<version>:"


def _redis(tmp_path):
    prefix = _prefix()
    yield RedisTokenStore(_redis_client(), prefix=prefix)
    _delete_prefixed(prefix)


STORES = [
    pytest.param(_memory, id="memory"),
    pytest.param(_file, id="file"),
    pytest.param(_django_locmem, id="django-locmem"),
    pytest.param(_django_redis, id="django-redis", marks=pytest.mark.redis),
    pytest.param(_redis, id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    made = request.param(tmp_path)
    yield next(made)
    next(made, None)


# -- The contract ----------------------------------------------------------------


def test_an_empty_store_has_no_pair(store: TokenStore):
    assert store.load(KEY) is None


def test_a_saved_pair_reads_back_equal(store):
    saved = tokens()
    store.save(KEY, saved)
    assert store.load(KEY) == saved


def test_optional_fields_survive(store):
    saved = tokens(access_expires_at=None, refresh_token=None, refresh_expires_at=None, scope=None)
    store.save(KEY, saved)
    assert store.load(KEY) == saved


def test_save_replaces_and_delete_forgets(store):
    store.save(KEY, tokens(1))
    store.save(KEY, tokens(2))
    assert store.load(KEY) == tokens(2)
    store.delete(KEY)
    assert store.load(KEY) is None
    store.delete(KEY)  # deleting nothing is fine


def test_keys_are_independent(store):
    store.save("a", tokens(1))
    store.save("b", tokens(2))
    store.delete("a")
    assert store.load("a") is None
    assert store.load("b") == tokens(2)


def test_the_lock_excludes_another_holder_until_released(store):
    held, release, attempts = threading.Event(), threading.Event(), []

    def holder() -> None:
        with store.lock(KEY, GUARD) as acquired:
            attempts.append(acquired)
            held.set()
            release.wait(GUARD)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(GUARD)
    with store.lock(KEY, 0) as acquired:
        assert acquired is False
    with store.lock("another-key", 0) as acquired:
        assert acquired is True
    release.set()
    thread.join(GUARD)
    with store.lock(KEY, 0) as acquired:
        assert acquired is True
    assert attempts == [True]


def test_a_waiting_locker_gets_the_lock_once_released(store):
    held, release, results = threading.Event(), threading.Event(), []

    def holder() -> None:
        with store.lock(KEY, GUARD):
            held.set()
            release.wait(GUARD)

    def waiter() -> None:
        with store.lock(KEY, GUARD) as acquired:
            results.append(acquired)

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(GUARD)
    second = threading.Thread(target=waiter)
    second.start()
    release.set()
    first.join(GUARD)
    second.join(GUARD)
    assert results == [True]


def test_locked_read_modify_write_loses_no_update(store):
    """Eight threads incrementing a counter kept in the pair: the lock serialises them."""
    store.save(KEY, tokens(0))

    def increment() -> None:
        for _ in range(25):
            with store.lock(KEY, GUARD) as acquired:
                assert acquired
                current = store.load(KEY)
                number = int(current.access_token.removeprefix("at-"))
                store.save(KEY, tokens(number + 1))

    threads = [threading.Thread(target=increment) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert store.load(KEY).access_token == "at-200"


# -- Store-specific behaviour --------------------------------------------------------


def test_file_store_replaces_atomically_and_privately(tmp_path):
    store = FileTokenStore(tmp_path / "tokens")
    store.save(KEY, tokens(1))
    store.save(KEY, tokens(2))
    directory = tmp_path / "tokens"
    assert sorted(path.name for path in directory.iterdir()) == [f"{KEY}.json"]  # no temp left
    assert (directory / f"{KEY}.json").stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700


def test_file_store_ignores_an_unreadable_file(tmp_path):
    store = FileTokenStore(tmp_path)
    (tmp_path / f"{KEY}.json").write_text("{not json")
    assert store.load(KEY) is None


def test_file_store_refuses_keys_that_escape_its_directory(tmp_path):
    store = FileTokenStore(tmp_path)
    for key in ("../x", "", ".hidden"):
        with pytest.raises(ValueError):
            store.load(key)


@pytest.mark.redis
def test_redis_store_keeps_a_pair_for_its_useful_life_only():
    prefix = _prefix()
    store = RedisTokenStore(_redis_client(), prefix=prefix)
    try:
        store.save(KEY, tokens())
        ttl = _redis_client().ttl(prefix + KEY)
        assert 3000 - 5 <= ttl <= 3001  # refresh_expires_at - obtained_at
        _redis_client().set(prefix + KEY, b"garbage")
        assert store.load(KEY) is None
    finally:
        _delete_prefixed(prefix)


@pytest.mark.redis
def test_redis_lock_expires_if_its_holder_vanishes():
    prefix = _prefix()
    store = RedisTokenStore(_redis_client(), prefix=prefix, lock_ttl=30)
    try:
        abandoned = store.lock(KEY, 0)
        assert abandoned.__enter__() is True  # and never released: the holder died
        assert 0 < _redis_client().pttl(f"{prefix}{KEY}:lock") <= 30_000
        with store.lock(KEY, 0) as acquired:
            assert acquired is False
        _redis_client().pexpire(f"{prefix}{KEY}:lock", 1)  # 30 s later, in short
        with store.lock(KEY, GUARD) as acquired:
            assert acquired is True
    finally:
        _delete_prefixed(prefix)


# -- The file lock across processes --------------------------------------------------


def _hold_file_lock(directory: str, acquired, release) -> None:
    store = FileTokenStore(directory)
    with store.lock(KEY, GUARD) as held:
        assert held
        acquired.set()
        release.wait(GUARD)


def _try_file_lock(directory: str, results) -> None:
    with FileTokenStore(directory).lock(KEY, 0) as held:
        results.put(held)


def _increment_in_file(directory: str, times: int) -> None:
    store = FileTokenStore(directory)
    for _ in range(times):
        with store.lock(KEY, GUARD) as held:
            assert held
            number = int(store.load(KEY).access_token.removeprefix("at-"))
            store.save(KEY, tokens(number + 1))


@pytest.fixture
def spawn():
    context = multiprocessing.get_context("spawn")
    started = []

    def start(target, *args):
        process = context.Process(target=target, args=args)
        process.start()
        started.append(process)
        return process

    start.context = context
    yield start
    for process in started:
        if process.is_alive():
            process.kill()
        process.join(GUARD)


def test_file_lock_excludes_other_processes(tmp_path, spawn):
    directory = str(tmp_path)
    acquired, release = spawn.context.Event(), spawn.context.Event()
    results = spawn.context.Queue()
    holder = spawn(_hold_file_lock, directory, acquired, release)
    assert acquired.wait(GUARD)
    spawn(_try_file_lock, directory, results).join(GUARD)
    assert results.get(timeout=GUARD) is False  # another process
    with FileTokenStore(directory).lock(KEY, 0) as held:
        assert held is False  # this process
    release.set()
    holder.join(GUARD)
    assert holder.exitcode == 0
    spawn(_try_file_lock, directory, results).join(GUARD)
    assert results.get(timeout=GUARD) is True


def test_file_lock_of_a_killed_process_is_released(tmp_path, spawn):
    directory = str(tmp_path)
    acquired, never = spawn.context.Event(), spawn.context.Event()
    holder = spawn(_hold_file_lock, directory, acquired, never)
    assert acquired.wait(GUARD)
    with FileTokenStore(directory).lock(KEY, 0) as held:
        assert held is False
    holder.kill()
    holder.join(GUARD)
    with FileTokenStore(directory).lock(KEY, 0) as held:
        assert held is True


def test_file_store_loses_no_update_across_processes(tmp_path, spawn):
    directory = str(tmp_path)
    FileTokenStore(directory).save(KEY, tokens(0))
    workers = [spawn(_increment_in_file, directory, 25) for _ in range(4)]
    for worker in workers:
        worker.join(GUARD)
    assert [worker.exitcode for worker in workers] == [0] * 4
    assert FileTokenStore(directory).load(KEY).access_token == "at-100"
    assert not [p for p in Path(directory).iterdir() if p.name.startswith(".")]  # no temp left


def test_a_token_set_keeps_its_tokens_out_of_repr():
    shown = repr(tokens())
    assert "at-1" not in shown
    assert "rt-1" not in shown
    assert "1700001000.5" in shown
