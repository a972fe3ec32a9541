"""Hardening of the account side: every change of a password hash revokes, and the
failed-password limit holds under concurrency.

The concurrency tests run on the project's default cache: local memory by
default, Redis when ``CACHE_URL`` is a ``redis://`` URL (then every thread goes
through Redis's ``INCR``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from conftest import FORM, PASSWORD, error_report
from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher, make_password
from django.db import connection, connections
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from token_lifecycle import services
from token_lifecycle.models import TokenPair
from token_lifecycle.oauth.errors import TooManyRequests
from token_lifecycle.oauth.throttling import PasswordFailureLimiter
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
USERNAME_LIMIT = 10  # the default "10/min" of token_lifecycle.password_username
COUNTING_HASHER = "test_hardening_accounts.CountingHasher"


# -- Item 2: a changed password hash revokes ------------------------------------------


@pytest.fixture
def pairs(login, token_request, make_client, user):
    """Alice's pairs: two logins, and a client-credentials pair of a client she owns."""
    owned, secret = make_client("alice's own", owner=user)
    issued = [login(), login()]
    response = token_request({"grant_type": "client_credentials"}, auth=(owned.client_id, secret))
    issued.append(response.json())
    return issued


def reasons() -> list[str]:
    return sorted(TokenPair.objects.values_list("revoke_reason", flat=True))


def refresh(token_request, oauth_client, pair: dict):
    client, secret = oauth_client
    return token_request(
        {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
        auth=(client.client_id, secret),
    )


def test_set_unusable_password_then_save_revokes(pairs, user, whoami, token_request, oauth_client):
    user.set_unusable_password()
    user.save()
    assert reasons() == [RevokeReason.PASSWORD_CHANGE] * 3
    assert whoami(pairs[0]["access_token"]).status_code == 401
    assert refresh(token_request, oauth_client, pairs[0]).json()["error"] == "invalid_grant"


def test_the_admin_disabling_password_authentication_revokes(pairs, user, client, make_user):
    """Django 5.1+'s admin: "Password-based authentication: Disabled" on the password page."""
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"usable_password": "false", "unset-password": "Disable password-based authentication"},
    )
    assert response.status_code == 302, response.content[:300]
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert reasons() == [RevokeReason.PASSWORD_CHANGE] * 3


def test_an_unusable_password_saved_alone_revokes_even_after_an_earlier_change(
    pairs, user, oauth_client, issue_for
):
    """``update_fields=["password"]`` with ``_password`` cleared looks like Django's rehash
    at login; an unusable hash is never one."""
    user.set_password("first new password")
    user.save()  # revokes the three pairs, and leaves _password = None on the instance
    assert "_password" in user.__dict__ and user._password is None
    later = issue_for(oauth_client[0], user)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    later.refresh_from_db()
    assert later.revoke_reason == RevokeReason.PASSWORD_CHANGE


@pytest.fixture
def issue_for():
    """A pair issued by the services directly (no password needed)."""

    def issue(client, user) -> TokenPair:
        issued = services.issue_pair(
            client=client, user=user, issuer="http://testserver/auth", grant_type="password"
        )
        return issued.pair

    return issue


def test_a_hash_assigned_directly_revokes(pairs, user):
    user.password = make_password("assigned elsewhere")
    user.save()
    assert reasons() == [RevokeReason.PASSWORD_CHANGE] * 3


def test_a_hash_assigned_and_saved_alone_revokes(pairs, user):
    user.password = make_password("assigned elsewhere")
    user.save(update_fields=["password"])
    assert reasons() == [RevokeReason.PASSWORD_CHANGE] * 3


class QuickPBKDF2Hasher(PBKDF2PasswordHasher):
    iterations = 1000  # the algorithm a login upgrades to, without its cost


def test_a_rehash_at_login_revokes_nothing_and_costs_no_query(
    pairs, user, settings, django_assert_num_queries
):
    settings.PASSWORD_HASHERS = [
        "test_hardening_accounts.QuickPBKDF2Hasher",  # now preferred: MD5 is upgraded
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    with django_assert_num_queries(1):  # the UPDATE of the hash, no SELECT of ours
        assert user.check_password(PASSWORD)
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$1000$")
    assert reasons() == [""] * 3


def test_saves_that_cannot_change_the_hash_cost_no_query(pairs, user, django_assert_num_queries):
    with django_assert_num_queries(1):  # what every login does: the UPDATE only
        user.save(update_fields=["last_login"])
    with django_assert_num_queries(1):
        user.first_name = "Alice"
        user.save(update_fields=["first_name"])
    user.set_password("new")
    with CaptureQueriesContext(connection) as queries:
        user.save()  # set_password is known without reading the row
    assert not [q for q in queries if q["sql"].startswith("SELECT") and "auth_user" in q["sql"]]
    assert reasons() == [RevokeReason.PASSWORD_CHANGE] * 3


def test_a_full_save_with_the_same_hash_revokes_nothing(pairs, user, django_assert_num_queries):
    user.first_name = "Alice"
    with django_assert_num_queries(2):  # our SELECT of the stored hash, then the UPDATE
        user.save()
    assert reasons() == [""] * 3


def test_the_setting_off_turns_every_path_off(pairs, user, settings):
    settings.TOKEN_LIFECYCLE = {"REVOKE_ON_PASSWORD_CHANGE": False}
    user.set_unusable_password()
    user.save()
    user.password = make_password("assigned")
    user.save(update_fields=["password"])
    assert reasons() == [""] * 3


# -- Item 4: the failed-password limit under concurrency ------------------------------


class CountingHasher(MD5PasswordHasher):
    """MD5 that counts the passwords it verifies, and takes a moment to do it."""

    algorithm = "counting_md5"
    verified = 0
    _lock = threading.Lock()

    def verify(self, password: str, encoded: str) -> bool:
        with CountingHasher._lock:
            CountingHasher.verified += 1
        time.sleep(0.02)  # like a real hasher: parallel guesses overlap while hashing
        return super().verify(password, encoded)


@pytest.fixture
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = [COUNTING_HASHER]
    CountingHasher.verified = 0
    return CountingHasher


def run_at_once(count: int, work) -> list:
    """``work(index)`` in ``count`` threads released together; their results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_at_the_endpoint_hash_at_most_the_limit(
    counting_hasher, make_user, make_client
):
    """Forty wrong passwords for one username at once: at most 10 reach the hasher."""
    make_user("alice")
    client, secret = make_client()
    body = urlencode(
        {
            "grant_type": "password",
            "username": "alice",
            "password": "wrong",
            "client_id": client.client_id,
            "client_secret": secret,
        }
    )

    def guess(index: int) -> int:
        return HttpClient().post("/auth/token/", body, content_type=FORM).status_code

    statuses = run_at_once(40, guess)
    assert counting_hasher.verified <= USERNAME_LIMIT
    assert statuses.count(400) == counting_hasher.verified >= 1
    assert statuses.count(429) == 40 - counting_hasher.verified


def test_parallel_attempts_through_the_limiter_get_exactly_the_limit(counting_hasher):
    """200 threads through check() / failed(): exactly 10 may hash, whatever the timing.

    Each from its own address (a distributed guesser), so that only the
    per-username count decides.
    """
    factory = APIRequestFactory()
    hasher = counting_hasher()
    stored = hasher.encode("the right password", hasher.salt())

    def attempt(index: int) -> bool:
        address = f"10.1.{index // 250}.{index % 250}"
        request = Request(factory.post("/auth/token/", REMOTE_ADDR=address))
        limiter = PasswordFailureLimiter(request, "alice")
        try:
            limiter.check()
        except TooManyRequests:
            return False
        hasher.verify("a wrong guess", stored)
        limiter.failed()
        return True

    with freeze_time(T0 + timedelta(seconds=5)):  # all inside one window
        allowed = run_at_once(200, attempt)
    assert allowed.count(True) == counting_hasher.verified == USERNAME_LIMIT


def test_a_locked_username_says_when_its_window_ends(token_request, oauth_client, user):
    client, secret = oauth_client

    def attempt(password: str):
        return token_request(
            {"grant_type": "password", "username": "alice", "password": password},
            auth=(client.client_id, secret),
        )

    with freeze_time(T0 + timedelta(seconds=45)):
        for _ in range(USERNAME_LIMIT):
            assert attempt("wrong").json()["error"] == "invalid_grant"
        locked = attempt(PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["error"] == "slow_down"
    assert locked["Retry-After"] == "15"  # the minute's window ends at T0 + 60 s
    with freeze_time(T0 + timedelta(seconds=60)):
        assert attempt(PASSWORD).status_code == 200


def test_a_success_gives_its_place_back_to_the_per_ip_count(
    token_request, oauth_client, user, settings
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"token_lifecycle.password_ip": "3/min"},
    }
    client, secret = oauth_client
    params = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    with freeze_time(T0):
        statuses = [
            token_request(params, auth=(client.client_id, secret)).status_code for _ in range(6)
        ]
    assert statuses == [200] * 6


# -- Item 7: no password, secret or token in Django's error reports -------------------


def crash(*args, **kwargs):
    raise RuntimeError("the service layer crashed")


def assert_reported_without(reports: list[str], *secrets: str) -> None:
    assert reports and all("the service layer crashed" in report for report in reports)
    leaked = [s for s in secrets if any(s in report for report in reports)]
    assert not leaked


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_a_crashing_password_grant_reports_no_password_or_secret(
    token_request, oauth_client, user, monkeypatch, encoding
):
    client, secret = oauth_client
    monkeypatch.setattr(services, "issue_pair", crash)
    with error_report() as reports, pytest.raises(RuntimeError):
        token_request(
            {"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=(client.client_id, secret),
            encoding=encoding,
        )
    assert_reported_without(reports, PASSWORD, secret)


def test_a_crashing_refresh_reports_no_refresh_token(
    token_request, oauth_client, login, monkeypatch
):
    client, secret = oauth_client
    refresh_token = login()["refresh_token"]
    monkeypatch.setattr(services, "refresh_pair", crash)
    with error_report() as reports, pytest.raises(RuntimeError):
        token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, secret),
            style="basic",
        )
    assert_reported_without(reports, refresh_token, secret)


@pytest.mark.parametrize("endpoint", ["/auth/token/revoke/", "/auth/token/introspect/"])
def test_crashing_revocation_and_introspection_report_no_token(
    oauth_post, oauth_client, login, monkeypatch, endpoint
):
    client, secret = oauth_client
    pair = login()
    monkeypatch.setattr(services, "pair_for_token", crash)
    for token in (pair["access_token"], pair["refresh_token"]):
        with error_report() as reports, pytest.raises(RuntimeError):
            oauth_post(endpoint, {"token": token}, auth=(client.client_id, secret))
        assert_reported_without(reports, token, secret)
