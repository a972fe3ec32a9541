"""Shared fixtures.

The suite runs on whatever ``DATABASE_URL`` selects (SQLite by default).
Tests marked ``postgres``, ``redis`` or ``browser`` need PostgreSQL, Redis
or Chromium: they skip without them, unless ``TOKEN_LIFECYCLE_REQUIRE_POSTGRES``
/ ``_REDIS`` / ``_BROWSER`` is 1 (CI sets them), which turns the skip into a
failure so that CI can never pass with those tests unrun.

The Redis tests flush their database, so they only use one given explicitly:
``TOKEN_LIFECYCLE_TEST_REDIS_URL``, else ``CACHE_URL`` when it is
``redis://...``. With neither, they skip even if a Redis answers on this machine.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote_plus, urlencode

import pytest

# Imported now rather than first under a frozen clock: it imports psycopg,
# whose C extension warns when datetime is patched at its import.
import rest_framework.serializers  # noqa: F401
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.signals import got_request_exception
from django.db import connection
from django.views.debug import ExceptionReporter

from token_lifecycle import keys, signals
from token_lifecycle.models import Client

PASSWORD = "correct horse battery staple"
FORM = "application/x-www-form-urlencoded"
REQUIRE_POSTGRES = os.environ.get("TOKEN_LIFECYCLE_REQUIRE_POSTGRES") == "1"


def _explicit_redis_url() -> str | None:
    """The Redis database this run was given to flush, or None: never a guessed one."""
    url = os.environ.get("TOKEN_LIFECYCLE_TEST_REDIS_URL", "").strip()
    if url:
        return url
    cache_url = os.environ.get("CACHE_URL", "").strip()
    return cache_url if cache_url.startswith(("redis://", "rediss://")) else None


REDIS_URL = _explicit_redis_url()
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def pytest_configure(config) -> None:
    if REQUIRE_POSTGRES and "postgres" not in os.environ.get("DATABASE_URL", ""):
        raise pytest.UsageError(
            "TOKEN_LIFECYCLE_REQUIRE_POSTGRES=1 but DATABASE_URL does not select PostgreSQL."
        )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """On SQLite, a test database in a file rather than in memory.

    With an in-memory database Django's live server shares the test's one
    connection between all its request threads, and concurrent requests
    interleave on it (``get()`` by primary key returning two rows, "bad
    parameter or other API misuse"). In a file each thread has its own
    connection and SQLite's locking applies, as in a deployment.
    """
    database = connection.settings_dict
    if connection.vendor == "sqlite" and not database["TEST"].get("NAME"):
        database["TEST"]["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


def _redis_answers() -> bool:
    if REDIS_URL is None:
        return False
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def _missing(item) -> str | None:
    """Why the services an item needs are missing, or None."""
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        return "needs PostgreSQL (set DATABASE_URL=postgres://...)"
    if item.get_closest_marker("redis") and REDIS_URL is None:
        return "needs Redis: set TOKEN_LIFECYCLE_TEST_REDIS_URL (a database the tests may flush)"
    if item.get_closest_marker("redis") and not _redis_answers():
        return f"needs Redis at {REDIS_URL}"
    if item.get_closest_marker("browser") and not os.path.exists(CHROMIUM):
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_runtest_setup(item) -> None:
    reason = _missing(item)
    if reason is None:
        return
    required = {
        "postgres": REQUIRE_POSTGRES,
        "redis": os.environ.get("TOKEN_LIFECYCLE_REQUIRE_REDIS") == "1",
        "browser": os.environ.get("TOKEN_LIFECYCLE_REQUIRE_BROWSER") == "1",
    }
    if any(required[name] for name in required if item.get_closest_marker(name)):
        pytest.fail(f"required but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """The default PBKDF2 costs ~0.3 s per hash: fine in production, slow in 500 tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with no loaded signing key, verified token or validation entry.

    Its database starts empty, and primary keys are reused from test to test.
    """

    def clear() -> None:
        keys.clear_cache()
        keys.access_tokens._verified.clear()
        for cache in caches.all():
            cache.clear()

    clear()
    yield
    clear()


@pytest.fixture
def lifecycle(settings):
    """Change some ``TOKEN_LIFECYCLE`` keys for one test (the rest keep their values)."""

    def configure(**values) -> None:
        settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, **values}

    return configure


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", *, password: str = PASSWORD, **fields):
        return get_user_model().objects.create_user(username, password=password, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def make_client(db, make_user):
    """Create a client; returns ``(client, secret)`` (secret None for public clients)."""

    def make(name: str = "partner", *, owner=None, public: bool = False, **fields):
        if owner is None:
            owner = get_user_model().objects.filter(username="owner").first() or make_user("owner")
        fields.setdefault("grant_types", "password" if public else "client_credentials password")
        client = Client(name=name, owner=owner, is_public=public, **fields)
        secret = None if public else client.set_new_secret()
        client.full_clean()
        client.save()
        return client, secret

    return make


@pytest.fixture
def oauth_client(make_client):
    """A confidential client allowed both grants: ``(client, secret)``."""
    return make_client()


def bearer_authenticate(access_token: str):
    """Run BearerTokenAuthentication on a ``GET /api/whoami/`` carrying the token."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from token_lifecycle.authentication import BearerTokenAuthentication

    django_request = APIRequestFactory().get(
        "/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {access_token}"
    )
    return BearerTokenAuthentication().authenticate(Request(django_request))


def bearer_refused(access_token: str) -> bool:
    from rest_framework.exceptions import AuthenticationFailed

    try:
        bearer_authenticate(access_token)
    except AuthenticationFailed:
        return True
    return False


def basic_auth(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture
def oauth_post(client):
    """POST ``params`` to an OAuth endpoint (token, revoke, introspect).

    ``oauth_post(url, params, auth=(client_id, secret), style="basic"|"body",
    encoding="form"|"json")``; ``auth=None`` sends no client authentication.
    """

    def post(
        url: str, params: dict, *, auth=None, style: str = "body", encoding: str = "form", **extra
    ):
        params = dict(params)
        headers = {}
        if auth is not None:
            client_id, secret = auth
            if style == "basic":
                headers["HTTP_AUTHORIZATION"] = basic_auth(client_id, secret or "")
            else:
                params["client_id"] = client_id
                if secret is not None:
                    params["client_secret"] = secret
        if encoding == "json":
            body, content_type = json.dumps(params), "application/json"
        else:
            body, content_type = urlencode(params), FORM
        return client.post(url, body, content_type=content_type, **headers, **extra)

    return post


@pytest.fixture
def token_request(oauth_post):
    """POST to the token endpoint; the arguments of ``oauth_post`` without the URL."""

    def post(params: dict, **options):
        return oauth_post("/auth/token/", params, **options)

    return post


@pytest.fixture
def login(token_request, oauth_client, user):
    """Password-grant login of ``user`` through ``oauth_client``; returns the token JSON."""

    def do(*, client_creds=None, username: str = "alice", password: str = PASSWORD):
        client_obj, secret = oauth_client
        creds = client_creds or (client_obj.client_id, secret)
        response = token_request(
            {"grant_type": "password", "username": username, "password": password}, auth=creds
        )
        assert response.status_code == 200, response.content
        return response.json()

    return do


@pytest.fixture
def whoami(client):
    def get(access_token: str):
        return client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {access_token}")

    return get


@pytest.fixture
def revoked_signals():
    """Every ``pair_revoked`` sent during the test, as its keyword arguments."""
    received = []

    def handler(sender, **kwargs):
        received.append(kwargs)

    signals.pair_revoked.connect(handler)
    yield received
    signals.pair_revoked.disconnect(handler)


@contextmanager
def error_report() -> Iterator[list[str]]:
    """The text and HTML reports Django's handlers (AdminEmailHandler) would send."""
    reports: list[str] = []

    def capture(sender, request, **kwargs) -> None:
        reporter = ExceptionReporter(request, *sys.exc_info(), is_email=True)
        reports.extend([reporter.get_traceback_text(), reporter.get_traceback_html()])

    got_request_exception.connect(capture)
    try:
        yield reports
    finally:
        got_request_exception.disconnect(capture)
