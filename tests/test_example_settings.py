"""The example project's configurations, and the Redis database of the test suite.

- Default (``example_project.settings``, as the test suite and ``manage.py``
  use it): DEBUG off.
- ``make demo``: DEBUG on, served on 127.0.0.1:8000 only.
- ``example_project.settings_production``: everything from the environment,
  ``check --deploy`` clean.

In no configuration does a request with an unknown ``Host`` get Django's
debug page (which shows the settings): real servers are started the way
``manage.py runserver`` and ``make demo`` start them.

Last, the suite's Redis tests use only a Redis database given explicitly.
"""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

ROOT = Path(__file__).resolve().parent.parent
UNKNOWN_HOSTS = ["evil.example", "evil.example:8000", "127.0.0.1.evil.example"]
PATHS = ["/", "/api/whoami/", "/admin/", "/auth/token/", "/static/admin/css/base.css"]
DEBUG_PAGE_MARKS = [b"DEBUG = True", b"Traceback", b"DisallowedHost", b"Invalid HTTP_HOST"]
#: Variables of the outer run that must not leak into the configurations started here.
OUTER = ("DJANGO_", "TOKEN_LIFECYCLE_", "CACHE_URL", "DATABASE_URL")


def clean_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(OUTER)}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=f"sqlite:///{tmp_path / 'example.sqlite3'}",
        CACHE_URL="locmem://",
    )
    env.update(variables)
    return env


def run(tmp_path: Path, argv: list[str], **variables: str) -> subprocess.CompletedProcess:
    """``sys.executable argv...`` in the repository, with only the given variables set."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=clean_env(tmp_path, **variables),
        capture_output=True,
        text=True,
        timeout=120,
    )


def python(tmp_path: Path, code: str, **variables: str) -> subprocess.CompletedProcess:
    return run(tmp_path, ["-c", code], **variables)


# -- DEBUG ---------------------------------------------------------------------


def test_debug_is_off_by_default(tmp_path):
    done = python(tmp_path, "from example_project import settings; print(settings.DEBUG)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def demo_server_command() -> tuple[dict[str, str], list[str]]:
    """The variables and arguments of the server ``make demo`` starts, from ``make -n``."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    dry_run = subprocess.run(
        [make, "--no-print-directory", "-n", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [line] = [line for line in dry_run.splitlines() if "runserver" in line]
    words = shlex.split(line)
    variables = {}
    while "=" in words[0] and not words[0].startswith(("/", ".")):
        name, _, value = words.pop(0).partition("=")
        variables[name] = value
    return variables, words


def test_make_demo_turns_debug_on_for_127_0_0_1_only():
    variables, words = demo_server_command()
    assert variables.get("DJANGO_DEBUG") == "1"
    assert words[-1] == "127.0.0.1:8000"


# -- Unknown hosts never get a debug page --------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that the autoreloader's child goes with it
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"the server did not start:\n{log.read_text()}")

    def get(self, path: str, host: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=30)


def start(configuration: str, tmp_path: Path) -> Server:
    port = free_port()
    if configuration == "demo":
        variables, words = demo_server_command()
        assert "127.0.0.1:8000" in words
        argv = [
            sys.executable,
            *(f"127.0.0.1:{port}" if word == "127.0.0.1:8000" else word for word in words[1:]),
        ]
        env = clean_env(tmp_path, **variables)
    else:  # python manage.py runserver, with nothing set
        argv = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"]
        env = clean_env(tmp_path)
    return Server(argv, env, port, tmp_path / "server.log")


@pytest.fixture(params=["default", "demo"])
def server(request, tmp_path):
    running = start(request.param, tmp_path)
    yield running
    running.stop()


def test_an_unknown_host_never_gets_a_debug_page(server):
    for host in UNKNOWN_HOSTS:
        for path in PATHS:
            status, body = server.get(path, host)
            assert status == 400, (host, path, body[:300])
            assert b"Bad Request (400)" in body
            for mark in DEBUG_PAGE_MARKS:
                assert mark not in body, (host, path, mark)


def test_known_hosts_are_served(server):
    status, _ = server.get("/api/whoami/", f"127.0.0.1:{server.port}")
    assert status == 401  # a page of the API, asking for a token
    status, _ = server.get("/api/whoami/", "localhost")
    assert status == 401


def test_the_demo_still_serves_the_admin_css(tmp_path):
    running = start("demo", tmp_path)
    try:
        status, body = running.get("/static/admin/css/base.css", f"127.0.0.1:{running.port}")
    finally:
        running.stop()
    assert status == 200 and b"{" in body


def test_with_debug_on_an_unknown_host_gets_the_plain_400(client, settings):
    settings.DEBUG = True
    response = client.get("/api/whoami/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert b"Bad Request (400)" in response.content
    for mark in DEBUG_PAGE_MARKS:
        assert mark not in response.content


# -- Production --------------------------------------------------------------------


def production_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    variables = {
        "DJANGO_SETTINGS_MODULE": "example_project.settings_production",
        "DJANGO_SECRET_KEY": get_random_secret_key(),
        "DJANGO_ALLOWED_HOSTS": "api.example.com, auth.example.com",
        "TOKEN_LIFECYCLE_ISSUER": "https://api.example.com/auth",
        # Never contacted: nothing answers on port 1.
        "CACHE_URL": "redis://127.0.0.1:1/0",
    }
    variables.update(changes)
    return {name: value for name, value in variables.items() if value is not None}


def manage(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    return run(tmp_path, ["manage.py", *args], **variables)


def test_production_settings_pass_check_deploy(tmp_path):
    done = manage(
        tmp_path,
        "check",
        "--deploy",
        "--database",
        "default",
        "--fail-level",
        "WARNING",
        **production_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_production_settings_are_production(tmp_path):
    done = python(
        tmp_path,
        "from django.conf import settings as s\n"
        "print(s.DEBUG, s.ALLOWED_HOSTS, s.CACHES['default']['BACKEND'], "
        "s.TOKEN_LIFECYCLE['ISSUER'], s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0)",
        **production_env(tmp_path, DJANGO_DEBUG="1"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "False ['api.example.com', 'auth.example.com'] "
        "token_lifecycle.redis_cache.RedisCache https://api.example.com/auth True True True True"
    )


@pytest.mark.parametrize(
    "variable",
    ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "TOKEN_LIFECYCLE_ISSUER", "CACHE_URL"],
)
@pytest.mark.parametrize("value", [None, ""])
def test_production_settings_refuse_to_start_without(tmp_path, variable, value):
    done = manage(tmp_path, "check", **production_env(tmp_path, **{variable: value}))
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and variable in done.stderr


@pytest.mark.parametrize("cache_url", ["locmem://", "dummy://"])
def test_production_settings_refuse_a_cache_that_is_not_shared(tmp_path, cache_url):
    done = manage(tmp_path, "check", **production_env(tmp_path, CACHE_URL=cache_url))
    assert done.returncode != 0
    assert "CACHE_URL must be redis://" in done.stderr


# -- The test suite's Redis database ------------------------------------------------------

REDIS_GUARD = """
import socket

_connect = socket.socket.connect


def connect(self, address):
    # The port of any local Redis: record the attempt and refuse it.
    if isinstance(address, tuple) and address[1] == 6379:
        with open({marker!r}, "a") as log:
            log.write(repr(address) + "\\n")
        raise ConnectionRefusedError("blocked by the test")
    return _connect(self, address)


socket.socket.connect = connect
"""


def suite_redis_url(tmp_path: Path, **variables: str) -> str:
    done = python(
        tmp_path,
        "import sys; sys.path.insert(0, 'tests')\n"
        "import django; django.setup()\n"
        "import conftest; print(conftest.REDIS_URL)",
        DJANGO_SETTINGS_MODULE="example_project.settings",
        **variables,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_without_a_url_the_suite_has_no_redis_database(tmp_path):
    assert suite_redis_url(tmp_path) == "None"
    assert suite_redis_url(tmp_path, CACHE_URL="locmem://") == "None"


@pytest.mark.parametrize(
    ("variables", "url"),
    [
        ({"TOKEN_LIFECYCLE_TEST_REDIS_URL": "redis://127.0.0.1:1/3"}, "redis://127.0.0.1:1/3"),
        ({"CACHE_URL": "redis://127.0.0.1:1/2"}, "redis://127.0.0.1:1/2"),
        (
            {
                "TOKEN_LIFECYCLE_TEST_REDIS_URL": "redis://127.0.0.1:1/3",
                "CACHE_URL": "redis://127.0.0.1:1/2",
            },
            "redis://127.0.0.1:1/3",
        ),
    ],
)
def test_the_redis_database_is_the_one_given(tmp_path, variables, url):
    assert suite_redis_url(tmp_path, **variables) == url


def run_redis_tests(tmp_path: Path, **variables: str) -> tuple[subprocess.CompletedProcess, Path]:
    """The Redis tests of test_redis_cache.py in a fresh pytest, every connection to
    port 6379 refused and recorded."""
    marker = tmp_path / "redis-connections.log"
    (tmp_path / "redis_guard.py").write_text(REDIS_GUARD.replace("{marker!r}", repr(str(marker))))
    env = clean_env(tmp_path, **variables)
    env.pop("CACHE_URL")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "redis_guard",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rsf",
            "tests/test_redis_cache.py::TestAgainstRedis",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, marker


def test_redis_tests_skip_without_a_url_and_never_connect(tmp_path):
    done, marker = run_redis_tests(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" in done.stdout and "passed" not in done.stdout
    assert "needs Redis: set TOKEN_LIFECYCLE_TEST_REDIS_URL" in done.stdout
    assert not marker.exists(), marker.read_text()


def test_required_redis_without_a_url_is_a_failure(tmp_path):
    done, marker = run_redis_tests(tmp_path, TOKEN_LIFECYCLE_REQUIRE_REDIS="1")
    assert done.returncode == 1
    assert "required but unavailable: needs Redis: set TOKEN_LIFECYCLE_TEST_REDIS_URL" in (
        done.stdout
    )
    assert not marker.exists(), marker.read_text()
