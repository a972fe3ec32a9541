"""Rate limits of the token endpoint (token_lifecycle/oauth/throttling.py)."""

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

    def do(password: str = "wrong", *, username: str = "alice", ip: str = "10.0.0.1", **meta):
        client, secret = oauth_client
        return token_request(
            {"grant_type": "password", "username": username, "password": password},
            auth=(client.client_id, secret),
            REMOTE_ADDR=ip,
            **meta,
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


class TestClientAddress:
    """Per-IP limits count REMOTE_ADDR unless NUM_PROXIES says which proxies to trust."""

    def test_a_forged_x_forwarded_for_does_not_escape_the_per_ip_limit(self, attempt, rates):
        rates(password_ip="5/min", password_username=None)
        with freeze_time(T0):
            for index in range(5):
                attempt(HTTP_X_FORWARDED_FOR=f"198.51.100.{index}")
            assert_slow_down(attempt(PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99"))
            assert attempt(PASSWORD, ip="10.0.0.2").status_code == 200

    def test_behind_a_trusted_proxy_the_forwarded_address_counts(self, attempt, rates, settings):
        rates(password_ip="5/min", password_username=None)
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
        proxy = "10.0.0.1"  # every request arrives from the proxy
        with freeze_time(T0):
            for _ in range(5):
                attempt(ip=proxy, HTTP_X_FORWARDED_FOR="forged, 203.0.113.7")
            limited = attempt(PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7")
            assert_slow_down(limited)
            other = attempt(PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.8")
            assert other.status_code == 200

    def test_header_text_never_becomes_a_cache_key(self, attempt, rates, settings, monkeypatch):
        from django.core.cache import cache

        rates(token="100/min")
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
        keys = []
        for name in ("get", "set", "add", "delete"):
            original = getattr(cache, name)

            def spy(key, *args, _original=original, **kwargs):
                keys.append(key)
                return _original(key, *args, **kwargs)

            monkeypatch.setattr(cache, name, spy)
        forwarded = "\x8bh\xe0a} \x02 / " + "x" * 300
        attempt(HTTP_X_FORWARDED_FOR=forwarded, username="mallory \u00e9\u2028")
        throttle_keys = [key for key in keys if key.startswith("throttle_")]
        assert len(throttle_keys) >= 3  # the token scope, and the two failure counters
        assert all(key.isascii() and key.isprintable() and len(key) < 120 for key in throttle_keys)
        assert not any("mallory" in key or "xxx" in key for key in throttle_keys)


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
