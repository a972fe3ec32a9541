"""docs/lifecycle.md end to end: each rule at its exact boundary through the real endpoints.

The clock is frozen with freezegun and moved to one second before and exactly
at each boundary. Expiry instants are exclusive (docs/lifecycle.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.test import override_settings
from freezegun import freeze_time

from token_lifecycle.models import TokenPair
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def clock():
    with freeze_time(T0) as frozen:
        yield frozen


@pytest.fixture
def refresh(token_request, oauth_client):
    """Refresh with a token; returns the response."""

    def do(refresh_token: str, creds=None):
        client_obj, secret = oauth_client
        return token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=creds or (client_obj.client_id, secret),
        )

    return do


def error_of(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["error"]


def live_pairs(**filters) -> int:
    from token_lifecycle.clock import now as app_clock

    return TokenPair.objects.live(app_clock()).filter(**filters).count()


class TestAccessTokenExpiry:
    def test_valid_one_second_before_and_refused_at_expiry(self, clock, login, whoami):
        pair = login()
        assert pair["expires_in"] == 15 * 24 * 3600
        clock.move_to(T0 + 15 * DAY - SECOND)
        assert whoami(pair["access_token"]).status_code == 200
        clock.move_to(T0 + 15 * DAY)
        response = whoami(pair["access_token"])
        assert response.status_code == 401
        assert 'error="invalid_token"' in response["WWW-Authenticate"]

    def test_old_access_token_keeps_its_own_expiry_after_refresh(
        self, clock, login, refresh, whoami
    ):
        pair = login()
        clock.move_to(T0 + DAY)
        assert refresh(pair["refresh_token"]).status_code == 200
        clock.move_to(T0 + 15 * DAY - SECOND)
        assert whoami(pair["access_token"]).status_code == 200
        clock.move_to(T0 + 15 * DAY)
        assert whoami(pair["access_token"]).status_code == 401


class TestRefreshTokenExpiry:
    def test_usable_one_second_before_expiry(self, clock, login, refresh):
        pair = login()
        clock.move_to(T0 + 30 * DAY - SECOND)
        response = refresh(pair["refresh_token"])
        assert response.status_code == 200
        # Sliding expiry: the new pair has fresh lifetimes.
        assert response.json()["refresh_expires_in"] == 30 * 24 * 3600

    def test_refused_at_expiry_without_reuse_detection(self, clock, login, refresh):
        pair = login()
        clock.move_to(T0 + 30 * DAY)
        assert error_of(refresh(pair["refresh_token"])) == "invalid_grant"
        assert TokenPair.objects.get().revoked_at is None


class TestGraceWindow:
    FIRST_USE = T0 + 10 * DAY

    def test_each_use_inside_the_window_issues_a_new_pair(self, clock, login, refresh):
        pair = login()
        clock.move_to(self.FIRST_USE)
        first = refresh(pair["refresh_token"])
        clock.move_to(self.FIRST_USE + 6 * HOUR - SECOND)
        second = refresh(pair["refresh_token"])
        assert first.status_code == second.status_code == 200
        assert first.json()["refresh_token"] != second.json()["refresh_token"]
        assert TokenPair.objects.count() == 3

    def test_refused_at_the_end_of_the_window_and_family_revoked(
        self, clock, login, refresh, whoami
    ):
        pair = login()
        clock.move_to(self.FIRST_USE)
        child = refresh(pair["refresh_token"]).json()
        clock.move_to(self.FIRST_USE + 6 * HOUR)
        assert error_of(refresh(pair["refresh_token"])) == "invalid_grant"
        # Reuse detection: the whole family is dead, including the child.
        assert whoami(child["access_token"]).status_code == 401
        assert error_of(refresh(child["refresh_token"])) == "invalid_grant"
        reasons = set(TokenPair.objects.values_list("revoke_reason", flat=True))
        assert reasons == {RevokeReason.REUSE_DETECTED}

    def test_window_counts_from_first_use_and_is_not_extended(self, clock, login, refresh):
        pair = login()
        clock.move_to(self.FIRST_USE)
        assert refresh(pair["refresh_token"]).status_code == 200
        clock.move_to(self.FIRST_USE + 5 * HOUR)
        assert refresh(pair["refresh_token"]).status_code == 200
        clock.move_to(self.FIRST_USE + 6 * HOUR)
        assert error_of(refresh(pair["refresh_token"])) == "invalid_grant"

    def test_grace_end_is_stored_from_the_first_use(self, clock, login, refresh):
        pair = login()
        clock.move_to(self.FIRST_USE)
        refresh(pair["refresh_token"])
        clock.move_to(self.FIRST_USE + HOUR)
        refresh(pair["refresh_token"])
        parent = TokenPair.objects.get(parent__isnull=True)
        assert parent.rotated_at == self.FIRST_USE
        assert parent.refresh_grace_ends_at == self.FIRST_USE + 6 * HOUR

    def test_reuse_detection_off_refuses_but_revokes_nothing(
        self, clock, login, refresh, whoami, settings
    ):
        settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "REUSE_DETECTION": False}
        pair = login()
        clock.move_to(self.FIRST_USE)
        child = refresh(pair["refresh_token"]).json()
        clock.move_to(self.FIRST_USE + 6 * HOUR)
        assert error_of(refresh(pair["refresh_token"])) == "invalid_grant"
        assert whoami(child["access_token"]).status_code == 200
        assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()


class TestSessionLifetime:
    @pytest.fixture(autouse=True)
    def _session_limit(self, settings):
        settings.TOKEN_LIFECYCLE = {
            **settings.TOKEN_LIFECYCLE,
            "MAX_SESSION_LIFETIME": timedelta(days=20),
        }

    def test_refresh_just_before_session_end_is_capped(self, clock, login, refresh):
        pair = login()
        clock.move_to(T0 + 20 * DAY - SECOND)
        response = refresh(pair["refresh_token"])
        assert response.status_code == 200
        assert response.json()["expires_in"] == 1
        assert response.json()["refresh_expires_in"] == 1

    def test_refused_at_session_end(self, clock, login, refresh, whoami):
        pair = login()
        clock.move_to(T0 + 19 * DAY)
        child = refresh(pair["refresh_token"]).json()
        clock.move_to(T0 + 20 * DAY - SECOND)
        assert whoami(child["access_token"]).status_code == 200
        clock.move_to(T0 + 20 * DAY)
        assert error_of(refresh(child["refresh_token"])) == "invalid_grant"
        assert whoami(child["access_token"]).status_code == 401

    def test_a_new_login_starts_a_new_session(self, clock, login, refresh):
        login()
        clock.move_to(T0 + 20 * DAY)
        fresh = login()
        assert fresh["refresh_expires_in"] == 20 * 24 * 3600


class TestCap:
    def login_many(self, clock, login, count: int) -> list[dict]:
        pairs = []
        for index in range(count):
            clock.move_to(T0 + index * SECOND)
            pairs.append(login())
        return pairs

    def test_eleventh_pair_evicts_the_oldest(self, clock, login, whoami, user):
        pairs = self.login_many(clock, login, 11)
        assert live_pairs(user=user) == 10
        assert whoami(pairs[0]["access_token"]).status_code == 401
        assert all(whoami(p["access_token"]).status_code == 200 for p in pairs[1:])
        evicted = TokenPair.objects.get(revoked_at__isnull=False)
        assert evicted.revoke_reason == RevokeReason.EVICTED
        assert evicted.issued_at == T0

    def test_evicted_refresh_token_is_refused_without_reuse_detection(
        self, clock, login, refresh, whoami, user
    ):
        first = login()
        clock.move_to(T0 + SECOND)
        child = refresh(first["refresh_token"]).json()  # first is now in its grace window
        for index in range(2, 11):
            clock.move_to(T0 + index * SECOND)
            login()
        # 11 live pairs would exist: the oldest, `first`, was evicted.
        assert live_pairs(user=user) == 10
        assert error_of(refresh(first["refresh_token"])) == "invalid_grant"
        # Its family lives on: an eviction is not a replay.
        assert whoami(child["access_token"]).status_code == 200
        assert refresh(child["refresh_token"]).status_code == 200
        assert not TokenPair.objects.filter(revoke_reason=RevokeReason.REUSE_DETECTED).exists()

    def test_refresh_counts_against_the_cap(self, clock, login, refresh, user):
        pairs = self.login_many(clock, login, 10)
        clock.move_to(T0 + 20 * SECOND)
        assert refresh(pairs[5]["refresh_token"]).status_code == 200
        assert live_pairs(user=user) == 10
        assert TokenPair.objects.get(revoke_reason=RevokeReason.EVICTED).issued_at == T0

    def test_expired_pairs_do_not_count(self, clock, login, user):
        self.login_many(clock, login, 10)
        clock.move_to(T0 + 31 * DAY)
        login()
        assert live_pairs(user=user) == 1
        assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()

    def test_lowering_the_cap_evicts_on_the_next_issue(self, clock, login, settings, user):
        self.login_many(clock, login, 6)
        settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "MAX_PAIRS_PER_CLIENT": 3}
        clock.move_to(T0 + HOUR)
        login()
        assert live_pairs(user=user) == 3
        assert TokenPair.objects.filter(revoke_reason=RevokeReason.EVICTED).count() == 4


class TestPerClientOverrides:
    @pytest.fixture
    def tight_client(self, make_client):
        return make_client(
            "tight",
            access_token_lifetime=HOUR,
            refresh_token_lifetime=2 * HOUR,
            refresh_grace_period=timedelta(minutes=10),
            max_pairs_per_client=2,
        )

    def test_overrides_apply_to_that_client_only(self, clock, login, tight_client, whoami):
        tight, secret = tight_client
        pair = login(client_creds=(tight.client_id, secret))
        assert pair["expires_in"] == 3600
        assert pair["refresh_expires_in"] == 7200
        default_pair = login()
        assert default_pair["expires_in"] == 15 * 24 * 3600
        clock.move_to(T0 + HOUR)
        assert whoami(pair["access_token"]).status_code == 401
        assert whoami(default_pair["access_token"]).status_code == 200

    def test_overridden_grace_and_cap(self, clock, login, refresh, tight_client, user):
        tight, secret = tight_client
        creds = (tight.client_id, secret)
        pair = login(client_creds=creds)
        clock.move_to(T0 + timedelta(minutes=30))
        assert refresh(pair["refresh_token"], creds).status_code == 200
        clock.move_to(T0 + timedelta(minutes=40) - SECOND)
        assert refresh(pair["refresh_token"], creds).status_code == 200
        # Three pairs were issued with a cap of two: the oldest was evicted.
        assert live_pairs(client=tight, user=user) == 2
        clock.move_to(T0 + timedelta(minutes=40))
        assert error_of(refresh(pair["refresh_token"], creds)) == "invalid_grant"

    def test_null_override_follows_the_setting(self, tight_client, settings, make_client):
        other, _ = make_client("defaults")
        settings.TOKEN_LIFECYCLE = {
            **settings.TOKEN_LIFECYCLE,
            "ACCESS_TOKEN_LIFETIME": timedelta(days=2),
        }
        assert other.policy().access_token_lifetime == timedelta(days=2)
        assert tight_client[0].policy().access_token_lifetime == HOUR


class TestClientIndependence:
    def test_caps_are_per_client(self, clock, login, make_client, user):
        second, secret = make_client("second")
        for index in range(10):
            clock.move_to(T0 + index * SECOND)
            login()
            login(client_creds=(second.client_id, secret))
        assert live_pairs(user=user) == 20
        assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()

    def test_reuse_in_one_client_leaves_the_other_alone(
        self, clock, login, refresh, make_client, whoami
    ):
        second, secret = make_client("second")
        other = login(client_creds=(second.client_id, secret))
        pair = login()
        refresh(pair["refresh_token"])
        clock.move_to(T0 + DAY)
        assert error_of(refresh(pair["refresh_token"])) == "invalid_grant"
        assert whoami(other["access_token"]).status_code == 200

    def test_refresh_token_of_another_client_is_invalid(self, login, refresh, make_client):
        second, secret = make_client("second")
        pair = login()
        response = refresh(pair["refresh_token"], (second.client_id, secret))
        assert error_of(response) == "invalid_grant"
        assert TokenPair.objects.get().rotated_at is None

    def test_client_credentials_share_the_owner_principal(
        self, clock, token_request, oauth_client, make_user
    ):
        """docs/lifecycle.md: client-credentials pairs belong to (client, owner)."""
        client_obj, secret = oauth_client
        for index in range(11):
            clock.move_to(T0 + index * SECOND)
            response = token_request(
                {"grant_type": "client_credentials"}, auth=(client_obj.client_id, secret)
            )
            assert response.status_code == 200
        assert live_pairs(client=client_obj, user=client_obj.owner) == 10


@override_settings(TOKEN_LIFECYCLE={"ACCESS_TOKEN_LIFETIME": timedelta(minutes=5)})
def test_settings_are_read_at_request_time(login):
    assert login()["expires_in"] == 300
