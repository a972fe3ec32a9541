"""A resource server's cost per request: ``token_lifecycle.remote`` beside simplejwt, stateless.

This process is configured as a resource server (``rest_framework`` only: no
``token_lifecycle`` app, no model, no database), with the stack's cache. The
authorization server is the benchmark project served by gunicorn on a free
port, on the stack's database (``run.py`` created its fixtures); a client with
``can_introspect`` is added to it first (``remote.py --prepare``, in the
benchmark project's settings).

Cases, all ``authenticate()`` on a fresh DRF request, interleaved:

- ``simplejwt-stateless``: ``JWTStatelessUserAuthentication``, RS256, no
  revocation at all: the floor of a local check;
- ``remote warm``: JWKS cached, introspection answer cached (the steady state);
- ``remote cold``: the answer dropped before each call, so each call makes one
  introspection round trip to the local server.

Writes ``{"cases": {...}, "stack": ...}`` to the path given.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, REPO_DIR, Case, measure, quick, write_json

TARGET_WARM_RATIO = 1.5


def prepare() -> None:
    """In the benchmark project: an introspecting client and an app client; prints them."""
    from common import setup_django

    setup_django()
    from django.contrib.auth import get_user_model

    from token_lifecycle.models import Client

    owner, _ = get_user_model().objects.get_or_create(username="remote-bench-owner")
    created = {}
    for name, fields in (
        ("remote bench resource server", {"can_introspect": True}),
        ("remote bench app", {"grant_types": "client_credentials"}),
    ):
        Client.objects.filter(name=name).delete()
        client = Client(name=name, owner=owner, **fields)
        secret = client.set_new_secret()
        client.save()
        created[name] = (client.client_id, secret)
    print(json.dumps(created))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_authorization_server(env: dict[str, str], port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--log-level",
            "warning",
            "bench_project.wsgi:application",
        ],
        env=env,
        cwd=REPO_DIR,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{port}/auth/.well-known/jwks.json"
            urllib.request.urlopen(url, timeout=2).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the authorization server did not start")


def configure(issuer: str, resource: tuple[str, str]) -> None:
    """This process as a resource server: no token_lifecycle app, the stack's cache."""
    import django
    from django.conf import settings

    from example_project.env import cache_from_url

    pem = (Path(os.environ["BENCH_WORKDIR"]) / "simplejwt_rs256.pem").read_text()
    from cryptography.hazmat.primitives import serialization

    public_pem = (
        serialization.load_pem_private_key(pem.encode(), password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings.configure(
        SECRET_KEY="remote-bench-only",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        DATABASES={},
        CACHES={"default": cache_from_url(os.environ.get("BENCH_CACHE_URL", "locmem://"))},
        USE_TZ=True,
        ALLOWED_HOSTS=["testserver"],
        REST_FRAMEWORK={"UNAUTHENTICATED_USER": None},
        TOKEN_LIFECYCLE_REMOTE={
            "ISSUER": issuer,
            "CLIENT_ID": resource[0],
            "CLIENT_SECRET": resource[1],
        },
        SIMPLE_JWT={
            "ALGORITHM": "RS256",
            "SIGNING_KEY": pem,
            "VERIFYING_KEY": public_pem,
            "AUTH_HEADER_TYPES": ("Bearer",),
        },
    )
    django.setup()


def client_credentials_token(base: str, app: tuple[str, str]) -> str:
    body = urlencode(
        {"grant_type": "client_credentials", "client_id": app[0], "client_secret": app[1]}
    )
    request = urllib.request.Request(f"{base}/auth/token/", data=body.encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def run(output: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(REPO_DIR)]),
    }
    created = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--prepare"],
            env=env,
            cwd=REPO_DIR,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_authorization_server(env, port)
    try:
        configure(f"{base}/auth", created["remote bench resource server"])
        results = measure_cases(base, created["remote bench app"])
    finally:
        server.terminate()
        server.wait(10)
    write_json(output, results)


def measure_cases(base: str, app: tuple[str, str]) -> dict:
    from django.core.cache import cache
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory
    from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
    from rest_framework_simplejwt.tokens import AccessToken

    from token_lifecycle.remote import RemoteTokenAuthentication
    from token_lifecycle.remote.introspection import cache_key
    from token_lifecycle.remote.settings import remote_settings

    assert "token_lifecycle.models" not in sys.modules
    factory = APIRequestFactory()
    ours = client_credentials_token(base, app)
    simplejwt = AccessToken()
    simplejwt["user_id"] = 1
    simplejwt_token = str(simplejwt)
    remote, stateless = RemoteTokenAuthentication(), JWTStatelessUserAuthentication()

    def requests(token: str):
        return lambda n: [
            Request(factory.get("/api/resource/", HTTP_AUTHORIZATION=f"Bearer {token}"))
            for _ in range(n)
        ]

    for auth, token in ((remote, ours), (stateless, simplejwt_token)):
        assert auth.authenticate(requests(token)(1)[0]) is not None
    answer_key = cache_key(ours, remote_settings().issuer)
    rounds = 7 if quick() else 21
    warm = measure(
        [
            Case("simplejwt-stateless", requests(simplejwt_token), stateless.authenticate),
            Case("remote warm", requests(ours), remote.authenticate),
        ],
        rounds=rounds,
        round_seconds=0.06,
        min_calls=20,
    )
    cold = measure(
        [
            Case(
                "remote cold",
                requests(ours),
                remote.authenticate,
                per_call_setup=lambda: cache.delete(answer_key),
            )
        ],
        rounds=rounds,
        round_seconds=0.1,
        max_calls=50,
    )
    cases = {**warm, **cold}
    return {
        "stack": os.environ.get("BENCH_STACK"),
        "cases": cases,
        "warm_ratio": cases["remote warm"]["median"] / cases["simplejwt-stateless"]["median"],
        "cold_ratio": cases["remote cold"]["median"] / cases["simplejwt-stateless"]["median"],
        "target_warm_ratio": TARGET_WARM_RATIO,
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--prepare"]:
        prepare()
    else:
        run(Path(sys.argv[1]))
