"""Rate limits of the token endpoint (token_lifecycle/throttling.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import PASSWORD
from freezegun import freeze_time

from token_lifecycle.models import TokenPair

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def rates(settings):
    """Set DRF throttle rates for this test."""

    def set_rates(**scopes):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                f"token_lifecycle.{name}": rate for name, rate in scopes.items()
            },
        }

    return set_rates


@pytest.fixture
def attempt(token_request, oauth_client, user):
    """A password-grant attempt; ``ip`` sets REMOTE_ADDR."""

    def do(password: str = "wrong", *, username: str = "alice", ip: str = "10.0.0.1"):
        client, secret = oauth_client
        return token_request(
            {"grant_type": "password", "username": username, "password": password},
            auth=(client.client_id, secret),
            REMOTE_ADDR=ip,
        )

    return do


def assert_slow_down(response) -> None:
    assert response.status_code == 429
    assert response.json()["error"] == "slow_down"
    assert set(response.json()) == {"error", "error_description"}
    assert int(response["Retry-After"]) >= 1
    assert response["Cache-Control"] == "no-store"


class TestTokenEndpointScope:
    def test_off_unless_configured(self, attempt):
        for _ in range(25):
            assert attempt(PASSWORD).status_code == 200

    def test_limits_every_request_per_ip(self, attempt, rates):
        rates(token="3/min")
        with freeze_time(T0):
            assert [attempt(PASSWORD).status_code for _ in range(3)] == [200] * 3
            assert_slow_down(attempt(PASSWORD))
            assert attempt(PASSWORD, ip="10.0.0.2").status_code == 200
        with freeze_time(T0 + timedelta(minutes=1, seconds=1)):
            assert attempt(PASSWORD).status_code == 200


class TestPasswordFailures:
    def test_ten_failures_lock_the_username_even_for_the_right_password(self, attempt):
        with freeze_time(T0):
            for index in range(10):
                assert attempt(ip=f"10.0.1.{index}").json()["error"] == "invalid_grant"
            locked = attempt(PASSWORD, ip="10.0.2.1")
            assert_slow_down(locked)
            assert int(locked["Retry-After"]) == 60
        assert not TokenPair.objects.exists()
        with freeze_time(T0 + timedelta(seconds=61)):
            assert attempt(PASSWORD).status_code == 200

    def test_other_usernames_are_not_locked(self, attempt, make_user):
        make_user("bob")
        with freeze_time(T0):
            for index in range(10):
                attempt(ip=f"10.0.1.{index}")
            assert attempt(PASSWORD, username="bob", ip="10.0.3.1").status_code == 200

    def test_failures_per_ip_across_usernames(self, attempt, rates, make_user):
        rates(password_ip="5/min")  # and the per-username default stays
        make_user("bob")
        with freeze_time(T0):
            for index in range(5):
                attempt(username=f"guess{index}")
            assert_slow_down(attempt(PASSWORD, username="bob"))
            assert attempt(PASSWORD, username="bob", ip="10.9.9.9").status_code == 200

    def test_a_success_clears_the_usernames_count(self, attempt):
        with freeze_time(T0):
            for _ in range(9):
                attempt(ip="10.0.5.1")
            assert attempt(PASSWORD, ip="10.0.5.1").status_code == 200
            for _ in range(9):
                attempt(ip="10.0.5.2")
            assert attempt(PASSWORD, ip="10.0.5.3").status_code == 200

    def test_limits_can_be_turned_off(self, attempt, rates):
        rates(password_username=None, password_ip=None)
        with freeze_time(T0):
            for _ in range(15):
                attempt()
            assert attempt(PASSWORD).status_code == 200

    def test_successful_logins_are_never_counted(self, attempt):
        with freeze_time(T0):
            assert all(attempt(PASSWORD).status_code == 200 for _ in range(15))


class BrokenCache:
    """A cache whose every operation fails, like Redis when it is down."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("cache down")

        return fail


def test_a_failing_cache_lifts_the_limits_instead_of_failing(attempt, rates, monkeypatch, caplog):
    """Logins and refreshes keep working while Redis is down (logged), like authentication."""
    from rest_framework.throttling import SimpleRateThrottle

    rates(token="1/min")
    monkeypatch.setattr(SimpleRateThrottle, "cache", BrokenCache())
    assert attempt().json()["error"] == "invalid_grant"
    assert attempt(PASSWORD).status_code == 200
    assert attempt(PASSWORD).status_code == 200
    assert "Throttle cache unavailable" in caplog.text
