"""Answers kept in the process when the validation cache is local memory (local_answers.py).

Every way a pair dies is checked on the next request in test_validation_cache.py,
with these answers warm; here: that they save the reads, and the cases where
they must not be used.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import bearer_authenticate, bearer_refused
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.test import override_settings
from freezegun import freeze_time

from token_lifecycle import local_answers, services
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
LOCAL_MEMORY = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

pytestmark = pytest.mark.usefixtures("_local_memory")


@pytest.fixture
def _local_memory(settings):
    settings.CACHES = LOCAL_MEMORY  # whatever CACHE_URL the suite runs with


def issue(client, user):
    return services.issue_pair(
        client=client, user=user, issuer="http://testserver/auth", grant_type="password"
    )


@pytest.fixture
def reads(monkeypatch):
    """The keys read from LocMemCache, one list per call."""
    calls: list[list[str]] = []
    get, get_many = LocMemCache.get, LocMemCache.get_many

    def spy_get(self, key, *args, **kwargs):
        calls.append([key])
        return get(self, key, *args, **kwargs)

    def spy_get_many(self, keys, *args, **kwargs):
        calls.append(list(keys))
        return get_many(self, keys, *args, **kwargs)

    monkeypatch.setattr(LocMemCache, "get", spy_get)
    monkeypatch.setattr(LocMemCache, "get_many", spy_get_many)
    return calls


def test_a_warm_request_reads_one_key_instead_of_three(oauth_client, user, reads):
    issued = issue(oauth_client[0], user)
    bearer_authenticate(issued.access_token)  # from the database: fills the entries
    bearer_authenticate(issued.access_token)  # from the entries: keeps the answer
    reads.clear()

    got_user, auth = bearer_authenticate(issued.access_token)

    assert len(reads) == 1 and reads[0][0].endswith("epoch")
    assert got_user.pk == user.pk and auth.pair_id == issued.pair.pk


def test_emptying_the_cache_drops_the_answers(oauth_client, user, django_assert_num_queries):
    issued = issue(oauth_client[0], user)
    bearer_authenticate(issued.access_token)
    bearer_authenticate(issued.access_token)

    caches["default"].clear()

    with django_assert_num_queries(1):
        bearer_authenticate(issued.access_token)


def test_an_answer_lasts_no_longer_than_its_oldest_entry(oauth_client, user):
    """The user's entry was cached for an older pair: the newer pair's answer ends with it.

    A change behind the app's back (no signal) is then seen within
    VALIDATION_CACHE_SECONDS (300 s) of that entry, as without kept answers.
    """
    client, _ = oauth_client
    with freeze_time(T0) as clock:
        first = issue(client, user)
        bearer_authenticate(first.access_token)  # the user's entry: until T0 + 300 s
        clock.tick(timedelta(seconds=200))
        second = issue(client, user)
        bearer_authenticate(second.access_token)  # its pair entry: until T0 + 500 s
        bearer_authenticate(second.access_token)  # kept
        clock.tick(timedelta(seconds=50))
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        clock.tick(timedelta(seconds=49))
        assert not bearer_refused(second.access_token)  # T0 + 299 s
        clock.tick(timedelta(seconds=1))
        assert bearer_refused(second.access_token)  # T0 + 300 s: the user's entry is gone


def test_a_read_that_overlapped_a_write_is_not_kept():
    answers = local_answers.LocalAnswers(caches["default"], "test-epoch")
    answer = local_answers.Answer(float("inf"), (1, 1, 0.0, float("inf")), b"u", b"c")

    ticket = answers.ticket()
    answers.forget_pairs(["another pair"])  # a revocation between the read and keep()
    answers.keep(ticket, "pair", answer)
    assert answers.get("pair") is None

    answers.keep(answers.ticket(), "pair", answer)
    assert answers.get("pair") == answer
    answers.forget_pairs(["pair"])
    assert answers.get("pair") is None


def test_a_user_or_client_change_drops_every_answer():
    answers = local_answers.LocalAnswers(caches["default"], "test-epoch")
    answer = local_answers.Answer(float("inf"), (1, 1, 0.0, float("inf")), b"u", b"c")
    answers.keep(answers.ticket(), "a", answer)
    answers.keep(answers.ticket(), "b", answer)

    answers.forget_all()

    assert answers.get("a") is None and answers.get("b") is None


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.dummy.DummyCache",
        "django.core.cache.backends.filebased.FileBasedCache",
    ],
)
def test_a_cache_shared_with_other_processes_gets_no_kept_answers(backend, settings, tmp_path):
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": str(tmp_path)}}
    assert local_answers.answers_for("default", "epoch") is None


def test_a_settings_change_starts_afresh(oauth_client, user, django_assert_num_queries):
    issued = issue(oauth_client[0], user)
    bearer_authenticate(issued.access_token)
    bearer_authenticate(issued.access_token)
    elsewhere = {"default": dict(LOCAL_MEMORY["default"], LOCATION="other")}
    with override_settings(CACHES=elsewhere), django_assert_num_queries(1):
        bearer_authenticate(issued.access_token)


@pytest.mark.django_db(transaction=True)
def test_threads_never_accept_a_pair_after_its_revocation_returned(make_client, make_user):
    """Request threads of one process keep authenticating while pairs are revoked.

    A request that starts after ``revoke_pair`` returned must be refused, whether
    its answer came from the database, the cache entries or a kept answer.
    """
    client, _ = make_client()
    pairs = [issue(client, make_user(f"user{index}")) for index in range(12)]
    revoked_at: dict[str, float] = {}  # pair id -> when revoke_pair returned
    seen: list[tuple[str, float, bool]] = []  # (pair id, started, accepted)
    stop = threading.Event()

    def request_thread(offset: int) -> None:
        try:
            while not stop.is_set():
                for issued in pairs[offset:] + pairs[:offset]:
                    started = time.monotonic()
                    seen.append(
                        (str(issued.pair.pk), started, not bearer_refused(issued.access_token))
                    )
        finally:
            connection.close()

    threads = [threading.Thread(target=request_thread, args=(i * 3,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for issued in pairs:
            time.sleep(0.02)
            services.revoke_pair(issued.pair, RevokeReason.ADMIN)
            revoked_at[str(issued.pair.pk)] = time.monotonic()
        time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    late = [
        (pair_id, started)
        for pair_id, started, accepted in seen
        if accepted and started > revoked_at[pair_id]
    ]
    refused_late = sum(
        1 for pair_id, started, accepted in seen if not accepted and started > revoked_at[pair_id]
    )
    accepted_before = sum(1 for pair_id, started, accepted in seen if accepted)
    assert late == []
    assert refused_late > 20 and accepted_before > 20  # the race was really run
