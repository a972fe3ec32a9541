"""The per-request path: query counts, and revocation honoured through the caches.

Speed is measured in ``bench/`` (``make bench``), not here: these tests count
queries and check that every way a pair dies is seen on the next request.
"""

from __future__ import annotations

import pickle
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import bearer_authenticate, bearer_refused
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from freezegun import freeze_time

from token_lifecycle import cache, keys, services
from token_lifecycle.clock import now as app_now
from token_lifecycle.models import Client, TokenPair
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def issued(oauth_client, user):
    """A pair issued to alice through the confidential client, its key already loaded."""
    client, _ = oauth_client
    return services.issue_pair(
        client=client, user=user, issuer="http://testserver/auth", grant_type="password"
    )


class TestQueries:
    def test_cold_cache_costs_one_query_and_warm_none(self, issued, django_assert_num_queries):
        with django_assert_num_queries(1):
            user, auth = bearer_authenticate(issued.access_token)
        with django_assert_num_queries(0):
            assert bearer_authenticate(issued.access_token)[0].pk == user.pk
        assert auth.pair_id == issued.pair.pk

    def test_another_process_with_a_cold_token_cache_costs_no_query(
        self, issued, django_assert_num_queries
    ):
        """The verified-token cache is per process; the validation cache may be shared."""
        bearer_authenticate(issued.access_token)
        keys.access_tokens._verified.clear()
        with django_assert_num_queries(0):
            bearer_authenticate(issued.access_token)

    def test_cache_disabled_costs_one_query_every_time(
        self, issued, settings, django_assert_num_queries
    ):
        settings.TOKEN_LIFECYCLE = {"VALIDATION_CACHE_SECONDS": 0}
        bearer_authenticate(issued.access_token)  # the settings change emptied the key cache
        for _ in range(3):
            with django_assert_num_queries(1):
                bearer_authenticate(issued.access_token)

    def test_cost_does_not_depend_on_other_pairs(
        self, issued, make_client, make_user, django_assert_num_queries
    ):
        other, _ = make_client("other")
        for index in range(30):
            services.issue_pair(
                client=other, user=make_user(f"u{index}"), issuer="i", grant_type="password"
            )
        with django_assert_num_queries(1):
            bearer_authenticate(issued.access_token)


class TestRevocationOnTheNextRequest:
    """Every way a pair dies, seen by a warm cache on the very next request."""

    @pytest.fixture(autouse=True)
    def _warm(self, issued):
        bearer_authenticate(issued.access_token)  # fills the caches
        assert not bearer_refused(issued.access_token)

    def test_revoked(self, issued):
        services.revoke_pair(issued.pair, RevokeReason.ADMIN)
        assert bearer_refused(issued.access_token)

    def test_logout_all(self, issued, user):
        services.revoke_user_pairs(user, RevokeReason.LOGOUT_ALL)
        assert bearer_refused(issued.access_token)

    def test_evicted(self, issued, oauth_client, user, settings):
        settings.TOKEN_LIFECYCLE = {"MAX_PAIRS_PER_CLIENT": 1}
        with freeze_time(datetime.now(timezone.utc) + timedelta(seconds=2)):
            services.issue_pair(client=oauth_client[0], user=user, issuer="i", grant_type="p")
        assert TokenPair.objects.get(pk=issued.pair.pk).revoke_reason == RevokeReason.EVICTED
        assert bearer_refused(issued.access_token)

    def test_password_change(self, issued, user):
        user.set_password("a new password entirely")
        user.save()
        assert bearer_refused(issued.access_token)

    def test_user_deactivated(self, issued, user):
        user.is_active = False
        user.save()
        assert bearer_refused(issued.access_token)

    def test_client_deactivated(self, issued, oauth_client):
        client, _ = oauth_client
        client.is_active = False
        client.save()
        assert bearer_refused(issued.access_token)

    def test_client_deactivated_without_revocation(self, issued, oauth_client, settings):
        """Even with REVOKE_ON_CLIENT_DEACTIVATION off, the client's tokens stop at once."""
        settings.TOKEN_LIFECYCLE = {"REVOKE_ON_CLIENT_DEACTIVATION": False}
        client, _ = oauth_client
        client.is_active = False
        client.save()
        assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()
        assert bearer_refused(issued.access_token)

    def test_user_deactivated_without_revocation(self, issued, user, settings):
        settings.TOKEN_LIFECYCLE = {"REVOKE_ON_USER_DEACTIVATION": False}
        user.is_active = False
        user.save()
        assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()
        assert bearer_refused(issued.access_token)

    def test_user_deleted(self, issued, user):
        user.delete()
        assert bearer_refused(issued.access_token)

    def test_compromised_key(self, issued):
        keys.rotate(compromised=True)
        assert bearer_refused(issued.access_token)


LOCAL_MEMORY = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


class TestBehindTheAppsBack:
    """Changes that send no signal are seen when the validation entry expires (README)."""

    @override_settings(
        CACHES=LOCAL_MEMORY
    )  # its expiry follows the frozen clock; Redis's does not
    def test_queryset_update_is_seen_within_the_cache_lifetime(self, oauth_client, user):
        with freeze_time(T0) as clock:
            issued = services.issue_pair(
                client=oauth_client[0], user=user, issuer="http://testserver/auth", grant_type="p"
            )
            bearer_authenticate(issued.access_token)
            get_user_model().objects.filter(pk=user.pk).update(is_active=False)
            clock.tick(timedelta(seconds=299))
            assert not bearer_refused(issued.access_token)  # the documented bound...
            clock.tick(timedelta(seconds=1))
            assert bearer_refused(issued.access_token)  # ...and not a second more

    def test_cold_cache_sees_it_at_once(self, issued, user):
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        assert bearer_refused(issued.access_token)

    def test_a_fill_never_overwrites_a_tombstone(self, issued):
        """The race a fill could lose: it read the pair before the revocation committed."""
        state_read_before = cache._pair_state(issued.pair)
        assert state_read_before != cache.REVOKED
        services.revoke_pair(issued.pair, RevokeReason.ADMIN)
        cache._add(caches["default"], {cache._pair_key(issued.pair.pk): state_read_before})
        assert bearer_refused(issued.access_token)


class BrokenCache:
    """A cache whose every operation fails, like Redis when it is down."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("cache down")

        return fail


def test_a_failing_cache_falls_back_to_the_database(issued, monkeypatch, caplog):
    monkeypatch.setattr(cache, "_cache", lambda: BrokenCache())
    user, _ = bearer_authenticate(issued.access_token)
    assert user.username == "alice"
    services.revoke_pair(issued.pair, RevokeReason.ADMIN)  # tombstone write fails too
    assert bearer_refused(issued.access_token)
    assert "Validation cache unavailable" in caplog.text


def test_repeated_verification_is_remembered_but_rechecks_expiry(oauth_client, user, settings):
    settings.TOKEN_LIFECYCLE = {"ACCESS_TOKEN_LIFETIME": timedelta(minutes=5)}
    with freeze_time(T0) as clock:
        issued = services.issue_pair(
            client=oauth_client[0], user=user, issuer="http://testserver/auth", grant_type="p"
        )
        bearer_authenticate(issued.access_token)
        clock.tick(timedelta(minutes=5))
        assert bearer_refused(issued.access_token)


def test_rotation_command_keeps_remembered_tokens_valid(issued):
    bearer_authenticate(issued.access_token)
    call_command("rotate_signing_key", "--immediately", stdout=None)
    assert not bearer_refused(issued.access_token)


# -- What the cache stores --------------------------------------------------


def _stored_bytes(alias: str = "default") -> bytes:
    """Everything the app stored in a local-memory cache, as the bytes it keeps."""
    store = caches[alias]._cache  # LocMemCache's own dict: a test may look inside
    return b"".join(value for key, value in store.items() if cache.KEY_PREFIX in key)


@pytest.mark.usefixtures("_local_memory")
def test_the_cached_user_has_no_password_and_loads_it_when_read(
    issued, user, django_assert_num_queries
):
    bearer_authenticate(issued.access_token)
    assert user.password.encode() not in _stored_bytes()
    cached_user, _ = cache.validate_pair(_claims(issued), app_now())
    assert cached_user.get_deferred_fields() == {"password"}
    with django_assert_num_queries(1):
        assert cached_user.check_password("correct horse battery staple")


@pytest.mark.usefixtures("_local_memory")
def test_each_read_builds_a_new_instance(issued):
    bearer_authenticate(issued.access_token)
    first, _ = cache.validate_pair(_claims(issued), app_now())
    second, _ = cache.validate_pair(_claims(issued), app_now())
    assert first == second and first is not second
    first.first_name = "changed by a view"
    assert second.first_name != "changed by a view"


@pytest.mark.usefixtures("_local_memory")
def test_a_row_stored_with_other_fields_is_a_miss(issued, user, django_assert_num_queries):
    """A deploy that changed the user model never reads rows written before it."""
    bearer_authenticate(issued.access_token)
    key = f"{cache.KEY_PREFIX}user:{user.pk}"
    db, names, values = pickle.loads(caches["default"].get(key))
    caches["default"].set(key, pickle.dumps((db, names[1:], values[1:])))
    with django_assert_num_queries(1):
        bearer_authenticate(issued.access_token)
    with django_assert_num_queries(0):  # replaced by a row of this version
        bearer_authenticate(issued.access_token)


# -- A local-memory cache ---------------------------------------------------

LOCAL_MEMORY = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def _local_memory(settings):
    settings.CACHES = LOCAL_MEMORY  # whatever CACHE_URL the suite runs with


def _claims(issued) -> dict:
    return keys.decode_access_token(
        issued.access_token, issuer="http://testserver/auth", now=app_now()
    )


@pytest.mark.usefixtures("_local_memory")
def test_a_change_behind_the_apps_back_is_seen_when_the_users_entry_expires(oauth_client, user):
    """The user's entry was filled for an older pair: a newer pair's requests read it too.

    A change without signals is then seen VALIDATION_CACHE_SECONDS (300 s)
    after that entry was filled, not later.
    """
    client, _ = oauth_client
    with freeze_time(T0) as clock:
        first = services.issue_pair(
            client=client, user=user, issuer="http://testserver/auth", grant_type="password"
        )
        bearer_authenticate(first.access_token)  # the user's entry: until T0 + 300 s
        clock.tick(timedelta(seconds=200))
        second = services.issue_pair(
            client=client, user=user, issuer="http://testserver/auth", grant_type="password"
        )
        bearer_authenticate(second.access_token)
        clock.tick(timedelta(seconds=50))
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        clock.tick(timedelta(seconds=49))
        assert not bearer_refused(second.access_token)  # T0 + 299 s
        clock.tick(timedelta(seconds=1))
        assert bearer_refused(second.access_token)  # T0 + 300 s: the user's entry is gone


@pytest.mark.usefixtures("_local_memory")
@pytest.mark.django_db(transaction=True)
def test_threads_never_accept_a_pair_after_its_revocation_returned(make_client, make_user):
    """Request threads of one process keep authenticating while pairs are revoked.

    A request that starts after ``revoke_pair`` returned must be refused,
    whether its answer came from the database or from the cache.
    """
    client, _ = make_client()
    pairs = [
        services.issue_pair(
            client=client,
            user=make_user(f"user{index}"),
            issuer="http://testserver/auth",
            grant_type="password",
        )
        for index in range(12)
    ]
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


def test_mutable_values_are_copied_not_shared(oauth_client):
    """A JSONField's dict, say: a view changing it must not change what others read."""
    client, _ = oauth_client
    client.scope = ["read"]  # any mutable value stands for one
    row = cache._row(client)

    cache._instance(Client, row).scope.append("write")

    assert cache._instance(Client, row).scope == ["read"]


def test_rows_of_another_model_or_shape_are_refused(oauth_client, user):
    client, _ = oauth_client
    assert cache._instance(Client, cache._row(user)) is None  # another model
    assert cache._instance(Client, b"not a pickle") is None
    assert cache._instance(Client, pickle.dumps(("a", "b"))) is None
    assert cache._instance(Client, pickle.dumps(client)) is None  # a pickled instance
    assert cache._instance(Client, None) is None
