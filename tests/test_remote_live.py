"""A live main server and a live resource server, each in its own process, as deployed.

The main server is the example project (``manage.py runserver``) on its own
SQLite file, with a file-based cache so that ``rotate_signing_key`` run from
another process reaches it at once (as Redis would). The resource server is
``example_project.resource_server`` with ``CACHE_SECONDS`` of 3. The scenario
runs in order and prints its timeline (``pytest -s`` shows it):

1. a token works on both;
2. after logout the main server refuses it at once, the resource server only
   once its cached answer expires: between the bound and the bound plus 1 s;
3. after a key rotation, tokens signed by the new key verify on the
   resource server without a restart;
4. the main server stopped: cached tokens keep working, new ones get 503.
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
from pathlib import Path

import jwt
import pytest
from conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
CACHE_SECONDS = 3
JWKS_MAX_AGE = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, *, token: str | None = None, data: dict | None = None, auth=None):
    """``(status, headers, body)`` of a GET, or of a form POST when ``data`` is given."""
    from urllib.parse import urlencode

    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = None if data is None else urlencode(data).encode()
    if auth is not None:
        data = {**(data or {}), "client_id": auth[0], "client_secret": auth[1]}
        body = urlencode(data).encode()
    req = urllib.request.Request(
        url, data=body, headers=headers, method="GET" if data is None else "POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.handle.poll() is None, self.log.read_text()
            try:
                urllib.request.urlopen(url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # answering, if only with an error
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"not ready: {url}\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.handle.poll() is None:
            self.handle.terminate()
            try:
                self.handle.wait(10)
            except subprocess.TimeoutExpired:
                self.handle.kill()
                self.handle.wait()


class Stack:
    """The two servers, the app's client, the resource server's client and user alice."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        (workdir / "live_main_settings.py").write_text(
            "from example_project.settings import *  # noqa: F403\n"
            "# Shared between the server and manage.py commands, as Redis would be.\n"
            "CACHES = {'default': {'BACKEND': "
            "'django.core.cache.backends.filebased.FileBasedCache', "
            f"'LOCATION': {str(workdir / 'cache')!r}}}}}\n"
        )
        self.main_port, self.resource_port = free_port(), free_port()
        self.main = f"http://127.0.0.1:{self.main_port}"
        self.resource = f"http://127.0.0.1:{self.resource_port}"
        self.main_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]),
            "DJANGO_SETTINGS_MODULE": "live_main_settings",
            "DATABASE_URL": f"sqlite:///{workdir / 'main.sqlite3'}",
            "TOKEN_LIFECYCLE_JWKS_MAX_AGE": f"{JWKS_MAX_AGE}s",
        }
        self.manage("migrate", "--noinput")
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_user('alice', password={PASSWORD!r})",
        )
        app = self.client_json("App", "--grant", "password")
        self.app = (app["client_id"], app["client_secret"])
        resource = self.client_json("Resource server", "--can-introspect")
        self.processes: list[Process] = []
        self.main_server = self.start(
            [
                sys.executable,
                "manage.py",
                "runserver",
                "--noreload",
                f"127.0.0.1:{self.main_port}",
            ],
            self.main_env,
            "main.log",
        )
        self.main_server.wait_ready(f"{self.main}/auth/.well-known/jwks.json")
        resource_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "example_project.resource_server.settings",
            "RESOURCE_SERVER_ISSUER": f"{self.main}/auth",
            "RESOURCE_SERVER_CLIENT_ID": resource["client_id"],
            "RESOURCE_SERVER_CLIENT_SECRET": resource["client_secret"],
            "RESOURCE_SERVER_CACHE_SECONDS": str(CACHE_SECONDS),
        }
        self.resource_server = self.start(
            [
                sys.executable,
                "-m",
                "django",
                "runserver",
                "--noreload",
                f"127.0.0.1:{self.resource_port}",
            ],
            resource_env,
            "resource.log",
        )
        self.resource_server.wait_ready(f"{self.resource}/api/resource/")

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=self.main_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def client_json(self, name: str, *options: str) -> dict:
        return json.loads(
            self.manage("create_client", name, "--owner", "alice", "--json", *options)
        )

    def start(self, args: list[str], env: dict, log: str) -> Process:
        process = Process(args, env, self.workdir / log)
        self.processes.append(process)
        return process

    def login(self) -> str:
        status, _, body = request(
            f"{self.main}/auth/token/",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=self.app,
        )
        assert status == 200, body
        return json.loads(body)["access_token"]

    def on_main(self, token: str) -> int:
        return request(f"{self.main}/api/whoami/", token=token)[0]

    def on_resource(self, token: str):
        return request(f"{self.resource}/api/resource/", token=token)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def stack(tmp_path):
    deployed = Stack(tmp_path)
    yield deployed
    deployed.stop()


def test_a_token_through_logout_rotation_and_an_outage(stack):
    started = time.monotonic()
    timeline: list[str] = []

    def note(event: str) -> float:
        at = time.monotonic() - started
        timeline.append(f"{at:7.2f} s  {event}")
        return at

    # 1. One token, both servers.
    token = stack.login()
    assert stack.on_main(token) == 200
    before_first = time.monotonic()
    status, _, body = stack.on_resource(token)
    after_first = time.monotonic()
    assert status == 200, body
    assert json.loads(body)["username"] == "alice"
    note("token accepted by the main server and the resource server (answer cached)")

    # 2. Logout: the main server at once, the resource server within the bound.
    status, _, body = request(f"{stack.main}/auth/logout/", data={}, token=token)
    assert status in (200, 204), body
    note("logout on the main server")
    assert stack.on_main(token) == 401
    note("main server refuses the token (at once)")
    while True:
        status, headers, body = stack.on_resource(token)
        now = time.monotonic()
        if status != 200:
            break
        assert now - after_first < CACHE_SECONDS + 1, "still accepted past the bound"
        time.sleep(0.05)
    assert status == 401, body
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    # Never refused before the cached answer (set during the first request) expired.
    assert now - before_first >= CACHE_SECONDS
    assert now - after_first <= CACHE_SECONDS + 1
    note(
        f"resource server refuses it, {now - after_first:.2f} s after its answer was cached "
        f"(bound {CACHE_SECONDS} s)"
    )

    # 3. Rotation. --immediately: the new key signs at once, so the resource server meets
    # its kid before its JWKS copy expires and must refetch (a default rotation publishes
    # the key JWKS_MAX_AGE ahead, and the main server's loaded key lags up to 60 s more).
    old_kid = jwt.get_unverified_header(stack.login())["kid"]
    stack.manage("rotate_signing_key", "--immediately")
    note("rotate_signing_key --immediately run in another process")
    deadline = time.monotonic() + 15
    while True:
        rotated = stack.login()
        if jwt.get_unverified_header(rotated)["kid"] != old_kid:
            break
        assert time.monotonic() < deadline, "the new key never signed"
        time.sleep(0.2)
    note("main server signs with the new key")
    status, _, body = stack.on_resource(rotated)
    assert status == 200, body
    note("resource server accepts a token of the new key (no restart)")

    # 4. The main server stopped.
    never_seen = stack.login()
    stack.main_server.stop()
    note("main server stopped")
    status, _, body = stack.on_resource(rotated)
    assert status == 200, body
    note("resource server still accepts the token whose answer it cached")
    status, headers, body = stack.on_resource(never_seen)
    assert status == 503, body
    assert headers["Retry-After"] == "5"
    assert headers["WWW-Authenticate"].startswith('Bearer realm="api"')
    note("resource server answers 503 with Retry-After for a token it never saw")
    print("\n" + "\n".join(timeline))
