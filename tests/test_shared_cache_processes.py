"""Two server processes sharing Redis: a revocation is seen on the very next request.

Each process keeps its own verified-token cache and its own loaded keys; only
the validation cache (Redis) and the database are shared. The processes are
real gunicorn servers of the example project on the test database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from conftest import REDIS_URL, basic_auth
from django.db import connection
from django.test import override_settings

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ISSUER = "https://api.example.test/auth"
REDIS_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One gunicorn process (one worker) of the example project."""

    def __init__(self) -> None:
        self.port = free_port()
        database = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}",
            "CACHE_URL": REDIS_URL,
            "TOKEN_LIFECYCLE_ISSUER": ISSUER,
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "example_project.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--log-level",
                "warning",
            ],
            env=env,
        )
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path: str, params: dict, headers: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url(path), data=urlencode(params).encode(), headers=headers, method="POST"
        )
        return self._send(request)

    def whoami(self, access_token: str) -> int:
        request = urllib.request.Request(
            self.url("/api/whoami/"), headers={"Authorization": f"Bearer {access_token}"}
        )
        return self._send(request)[0]

    @staticmethod
    def _send(request) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                body = response.read()
                return response.status, json.loads(body) if body else {}
        except urllib.error.HTTPError as error:
            return error.code, {}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture
def servers(oauth_client):
    with override_settings(CACHES=REDIS_CACHES, TOKEN_LIFECYCLE={"ISSUER": ISSUER}):
        from django.core.cache import cache

        cache.clear()  # this Redis database is the tests' own
        started = [Server(), Server()]
        try:
            yield started
        finally:
            for server in started:
                server.stop()
            connection.close()


def login(server: Server, oauth_client) -> dict:
    """A client-credentials pair (the server processes use Django's default password hashers,
    not the fast one this test process uses, so a password grant would not match)."""
    client, secret = oauth_client
    status, pair = server.post(
        "/auth/token/",
        {"grant_type": "client_credentials"},
        {"Authorization": basic_auth(client.client_id, secret)},
    )
    assert status == 200
    return pair


def redis_reads() -> int:
    import redis

    stats = redis.Redis.from_url(REDIS_URL).info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("get", "mget"))


def test_logout_in_one_process_is_seen_by_the_other_on_the_next_request(servers, oauth_client):
    first, second = servers
    pair = login(first, oauth_client)
    for _ in range(3):  # both processes warm: verified token, validation entries
        assert first.whoami(pair["access_token"]) == 200
        assert second.whoami(pair["access_token"]) == 200
    # Warm requests are answered from each process's near cache: no Redis read at all.
    reads = redis_reads()
    for _ in range(5):
        assert first.whoami(pair["access_token"]) == 200
        assert second.whoami(pair["access_token"]) == 200
    assert redis_reads() == reads
    status, _ = first.post(
        "/auth/logout/", {}, {"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert status == 200
    assert second.whoami(pair["access_token"]) == 401


def test_revocation_endpoint_and_eviction_cross_processes(servers, oauth_client, settings):
    first, second = servers
    client, secret = oauth_client
    pair = login(second, oauth_client)
    assert first.whoami(pair["access_token"]) == 200
    status, _ = second.post(
        "/auth/token/revoke/",
        {"token": pair["refresh_token"]},
        {"Authorization": basic_auth(client.client_id, secret)},
    )
    assert status == 200
    assert first.whoami(pair["access_token"]) == 401


def test_deactivation_by_an_admin_process_is_seen_at_once(servers, oauth_client):
    """The test process plays the admin: it saves the client inactive, with the same Redis."""
    first, second = servers
    pair = login(first, oauth_client)
    assert second.whoami(pair["access_token"]) == 200
    client, _ = oauth_client
    client.is_active = False
    client.save()
    assert first.whoami(pair["access_token"]) == 401
    assert second.whoami(pair["access_token"]) == 401
