"""The per-request path: query counts, and revocation honoured through the caches.

Speed is measured in ``bench/`` (``make bench``), not here: these tests count
queries and check that every way a pair dies is seen on the next request.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import bearer_authenticate, bearer_refused
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings
from freezegun import freeze_time

from token_lifecycle import keys, services, tokens, validation
from token_lifecycle.models import TokenPair
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
        tokens._verified.clear()
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
        state_read_before = validation._pair_state(issued.pair, time.time() + 300)
        assert state_read_before != validation.REVOKED
        services.revoke_pair(issued.pair, RevokeReason.ADMIN)
        cache = caches["default"]
        validation._fill(
            cache, str(issued.pair.pk), state_read_before, issued.pair.user, issued.pair.client
        )
        assert bearer_refused(issued.access_token)


class BrokenCache:
    """A cache whose every operation fails, like Redis when it is down."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("cache down")

        return fail


def test_a_failing_cache_falls_back_to_the_database(issued, monkeypatch, caplog):
    monkeypatch.setattr(validation, "_cache", lambda: BrokenCache())
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
