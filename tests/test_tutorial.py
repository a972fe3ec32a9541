"""docs/tutorial.md, run as printed: a fresh ``startproject``, the snippets, a live server.

Each code block of the tutorial that the test runs is preceded by a marker:

- ``<!-- tutorial: append PATH -->`` / ``<!-- tutorial: write PATH -->``: the
  Python block is appended to / becomes the file PATH of the project;
- ``<!-- tutorial: shell -->``: a console block whose ``$ `` lines are run in
  order, and whose other lines are the output they must print;
- ``<!-- tutorial: parse -->``: a console block only parsed (an alternative the
  tutorial's client may not use).

Shell lines understood: ``django-admin startproject``, ``cd``, ``python
manage.py ...`` (``runserver`` starts a live server on a free port instead of
the printed one), ``NAME=value  # paste the KEY printed above``, and ``curl``
with ``-s -i -u -d -H -X``. ``curl`` lines are performed with httpx from what
they parse to, so the requests made are the printed ones: only the host and
port of the URL are replaced. Anything else fails the test, as does any
difference from the printed output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
PRINTED_ORIGIN = "http://127.0.0.1:8000"
MARKED_BLOCK = re.compile(
    r"^<!-- tutorial: (?P<marker>[^>]*?) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```$",
    re.DOTALL | re.MULTILINE,
)
ASSIGNMENT = re.compile(
    r"^(?P<name>[A-Z_]+)=(?P<value>\S+)\s+# paste the (?P<key>\w+) printed above$"
)
# Values that differ from one run to the next: the printed ones are examples.
VARYING = {"client_id", "client_secret", "access_token", "refresh_token"}


def blocks(text: str) -> list[tuple[str, str, str]]:
    return [(m["marker"], m["lang"], m["body"]) for m in MARKED_BLOCK.finditer(text)]


def commands(body: str) -> list[tuple[str, list[str]]]:
    """``[(command, printed output lines)]`` of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1][1].append(line)
    return steps


def parse_curl(command: str, variables: dict[str, str]) -> dict:
    """A ``curl`` line as a request: method, url, headers, form data, Basic auth."""
    words = shlex.split(command)
    assert words[0] == "curl", command

    def expand(word: str) -> str:
        return re.sub(r"\$([A-Z_]+)", lambda m: variables[m[1]], word)

    request = {"method": None, "url": None, "headers": {}, "data": [], "auth": None}
    include = False
    rest = iter(words[1:])
    for word in rest:
        if word == "-s":
            continue
        if word == "-i":
            include = True
        elif word == "-u":
            user, _, password = expand(next(rest)).partition(":")
            request["auth"] = (user, password)
        elif word == "-d":
            key, _, value = expand(next(rest)).partition("=")
            request["data"].append((key, value))
        elif word == "-H":
            name, _, value = expand(next(rest)).partition(": ")
            request["headers"][name] = value
        elif word == "-X":
            request["method"] = next(rest)
        elif word.startswith("http"):
            assert request["url"] is None, command
            request["url"] = word
        else:
            pytest.fail(f"curl option the test does not know: {word!r} in {command!r}")
    assert request["url"] and request["url"].startswith(PRINTED_ORIGIN + "/"), command
    request["method"] = request["method"] or ("POST" if request["data"] else "GET")
    request["include"] = include
    return request


def check_json(printed: str, answer: dict) -> dict:
    expected = json.loads(printed)
    assert set(answer) == set(expected), (answer, expected)
    for key, value in expected.items():
        if key in VARYING or key.endswith("expires_in"):
            assert type(answer[key]) is type(value), (key, answer[key])
        else:
            assert answer[key] == value, (key, answer[key], value)
    return expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Tutorial:
    """Runs the tutorial's blocks in order, in ``root``."""

    def __init__(self, root: Path, password: str):
        self.cwd = root
        self.password = password
        self.variables: dict[str, str] = {}
        self.last_json: dict | None = None
        self.last_printed: dict | None = None  # what the tutorial shows the last command print
        self.server: subprocess.Popen | None = None
        self.origin: str | None = None
        self.requests: list[tuple[dict, httpx.Response]] = []
        # manage.py's setdefault must win over the test run's own settings.
        self.env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        self.env["DJANGO_SUPERUSER_PASSWORD"] = password

    def run(self, argv: list[str], printed: list[str]) -> None:
        if argv[:2] == ["django-admin", "startproject"]:
            argv = [sys.executable, "-m", "django", *argv[1:]]
        elif argv[:2] == ["python", "manage.py"]:
            argv = [sys.executable, *argv[1:]]
            if argv[2] == "createsuperuser":
                argv.append("--noinput")  # the password comes from the environment
            if argv[2] == "runserver":
                return self.start_server(argv)
        else:
            pytest.fail(f"command the test does not know: {argv}")
        done = subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        # System checks print to stderr; the tutorial's settings raise none.
        assert "WARNINGS" not in done.stderr and "ERRORS" not in done.stderr, done.stderr
        if printed:
            self.last_json = json.loads(done.stdout)
            self.last_printed = check_json("\n".join(printed), self.last_json)

    def start_server(self, argv: list[str]) -> None:
        port = free_port()
        self.origin = f"http://127.0.0.1:{port}"
        argv = [*argv[:3], f"127.0.0.1:{port}", "--noreload"]
        self.server = subprocess.Popen(
            argv, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(self.origin + "/auth/.well-known/jwks.json", timeout=1)
                return
            except httpx.TransportError:
                assert self.server.poll() is None, self.server.stderr.read().decode()
                assert time.monotonic() < deadline, "runserver did not answer"
                time.sleep(0.1)

    def curl(self, command: str, printed: list[str]) -> None:
        assert self.origin, "curl before runserver"
        request = parse_curl(command, self.variables)
        response = httpx.request(
            request["method"],
            self.origin + request["url"].removeprefix(PRINTED_ORIGIN),
            headers=request["headers"],
            data=dict(request["data"]) or None,
            auth=request["auth"],
            timeout=10,
        )
        self.requests.append((request, response))
        if request["include"]:
            status, *headers = printed
            assert status == f"HTTP/1.1 {response.status_code} {response.reason_phrase}"
            for header in headers:
                name, _, value = header.partition(": ")
                assert response.headers.get(name) == value, (name, response.headers)
            return
        assert response.status_code == 200, (command, response.status_code, response.text)
        self.last_json = response.json()
        self.last_printed = check_json("\n".join(printed), self.last_json)

    def shell(self, body: str) -> None:
        for command, printed in commands(body):
            assignment = ASSIGNMENT.match(command)
            if assignment:
                assert not printed
                assert self.last_json is not None, command
                # The value shown is the one printed above, so the example reads true.
                assert assignment["value"] == self.last_printed[assignment["key"]], command
                self.variables[assignment["name"]] = self.last_json[assignment["key"]]
            elif command.startswith("cd "):
                self.cwd = self.cwd / command[3:]
            elif command.startswith("curl "):
                self.curl(command, printed)
            else:
                self.run(shlex.split(command), printed)

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait(timeout=10)
            self.server.stderr.close()


def test_tutorial_runs_as_printed(tmp_path):
    text = TUTORIAL.read_text()
    found = blocks(text)
    markers = [marker.split()[0] for marker, _, _ in found]
    assert markers.count("shell") >= 5 and "parse" in markers, markers
    # Every console block of the tutorial is either run or parsed.
    assert text.count("```console") == markers.count("shell") + markers.count("parse")

    # The user's password: set for createsuperuser, sent by the password grant.
    (password,) = set(re.findall(r"password=(\S+)", text))
    tutorial = Tutorial(tmp_path, password)
    try:
        for marker, lang, body in found:
            action, _, path = marker.partition(" ")
            if action in ("append", "write"):
                assert lang == "python", marker
                target = tutorial.cwd / path
                assert target.parent.is_dir(), marker
                mode = "a" if action == "append" else "w"
                with target.open(mode) as file:
                    file.write(("\n" if mode == "a" else "") + body + "\n")
            elif action == "shell":
                tutorial.shell(body)
            else:
                assert action == "parse", marker
                for command, _ in commands(body):
                    request = parse_curl(command, {"CLIENT_ID": "id", "CLIENT_SECRET": "s"})
                    assert request["url"] == PRINTED_ORIGIN + "/auth/token/"
                    assert ("grant_type", "client_credentials") in request["data"]
    finally:
        tutorial.stop()

    # The story the tutorial tells, step by step.
    paths = [(r["method"], r["url"].removeprefix(PRINTED_ORIGIN)) for r, _ in tutorial.requests]
    assert paths == [
        ("POST", "/auth/token/"),
        ("GET", "/api/whoami/"),
        ("POST", "/auth/token/"),
        ("POST", "/auth/logout/"),
        ("GET", "/api/whoami/"),
    ]
    (login, _), (_, whoami), (refresh, refreshed), (_, logout), (_, refused) = tutorial.requests
    assert ("grant_type", "password") in login["data"]
    assert whoami.json()["username"] == "alice"
    assert whoami.json()["client_id"] == tutorial.variables["CLIENT_ID"]
    assert ("grant_type", "refresh_token") in refresh["data"]
    assert {"access_token", "refresh_token"} <= set(refreshed.json())
    assert logout.json() == {"revoked": 1}
    assert refused.status_code == 401
    challenge = refused.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
