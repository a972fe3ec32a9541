"""Hardening of ``token_lifecycle.client``: wrong credentials never get a stored
session, store keys carry no credential, and the file store refuses a directory
that others can write to.

Against a scripted token endpoint (``httpx.MockTransport``) that checks the
client secret and the password, like the real one.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import os
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest

from token_lifecycle.client import (
    PROCESS_STORE,
    ClientAuthenticationFailed,
    ClientCredentials,
    FileTokenStore,
    InvalidCredentials,
    PasswordGrant,
    TokenAuth,
    TokenSet,
)

TOKEN_URL = "https://auth.test/auth/token/"
CLIENT_ID = "client-hardening"
SECRET = "cs_the-right-secret"
PASSWORD = "the right password"


class Endpoint:
    """A token endpoint that logs in only with the right secret and password."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)
        self.logins = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        if scheme != "Basic" or (unquote_plus(client_id), unquote_plus(secret)) != (
            CLIENT_ID,
            SECRET,
        ):
            return httpx.Response(
                401,
                json={
                    "error": "invalid_client",
                    "error_description": "Client authentication failed.",
                },
                headers={"WWW-Authenticate": 'Basic realm="api"'},
            )
        form = {name: values[0] for name, values in parse_qs(request.content.decode()).items()}
        if form["grant_type"] == "password" and form.get("password") != PASSWORD:
            return httpx.Response(
                400,
                json={
                    "error": "invalid_grant",
                    "error_description": "Invalid username or password.",
                },
            )
        self.logins += 1
        number = next(self.numbers)
        return httpx.Response(
            200,
            json={
                "access_token": f"at-{number}",
                "token_type": "Bearer",
                "expires_in": 900,
                "refresh_token": f"rt_{number}",
                "refresh_expires_in": 3600,
            },
        )


@pytest.fixture
def endpoint():
    return Endpoint()


@pytest.fixture
def make_auth(endpoint):
    """TokenAuth objects on the process-wide default store, forgotten afterwards."""
    made: list[TokenAuth] = []

    def make(secret: str, grant=None, **options) -> TokenAuth:
        http = httpx.Client(transport=httpx.MockTransport(endpoint))
        auth = TokenAuth(TOKEN_URL, CLIENT_ID, secret, grant=grant, token_client=http, **options)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        PROCESS_STORE.delete(auth.store_key)


def test_wrong_credentials_never_get_the_session_of_right_ones(make_auth, endpoint):
    right = make_auth(SECRET, PasswordGrant("alice", PASSWORD))
    session = right.tokens()
    with pytest.raises(ClientAuthenticationFailed):
        make_auth("cs_wrong", PasswordGrant("alice", "a wrong password")).tokens()
    with pytest.raises(ClientAuthenticationFailed):
        make_auth("cs_wrong", PasswordGrant("alice", PASSWORD)).tokens()
    with pytest.raises(InvalidCredentials):
        make_auth(SECRET, PasswordGrant("alice", "a wrong password")).tokens()
    # The same credentials still share the pair: no second login.
    assert make_auth(SECRET, PasswordGrant("alice", PASSWORD)).tokens() == session
    assert endpoint.logins == 1


def test_a_wrong_client_secret_never_gets_the_client_credentials_session(make_auth, endpoint):
    make_auth(SECRET, ClientCredentials()).tokens()
    with pytest.raises(ClientAuthenticationFailed):
        make_auth("cs_wrong", ClientCredentials()).tokens()
    assert endpoint.logins == 1


def test_store_keys_and_logs_carry_no_credential(make_auth, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="token_lifecycle.client")
    store = FileTokenStore(tmp_path / "tokens")
    auth = make_auth(SECRET, PasswordGrant("alice", PASSWORD), store=store)
    auth.tokens()
    names = " ".join(os.listdir(tmp_path / "tokens"))
    seen = f"{auth.store_key} {names} {caplog.text}"
    assert auth.store_key in names and auth.store_key in caplog.text
    for credential in (SECRET, PASSWORD):
        fast_digest = hashlib.sha256(credential.encode()).hexdigest()
        assert credential not in seen
        assert fast_digest[:16] not in seen


def test_a_password_callback_is_not_asked_to_name_the_pair(make_auth, endpoint):
    asked = []

    def password() -> str:
        asked.append(True)
        return PASSWORD

    first = make_auth(SECRET, PasswordGrant("alice", password))
    second = make_auth(SECRET, PasswordGrant("alice", password))
    assert asked == []
    assert first.store_key == second.store_key
    assert first.tokens() == second.tokens()
    assert len(asked) == endpoint.logins == 1


# -- FileTokenStore: a directory others can write to ----------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o1777, 0o720])
def test_file_store_refuses_a_directory_others_can_write_to(tmp_path, mode):
    directory = tmp_path / "tokens"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(PermissionError, match="chmod go-w"):
        FileTokenStore(directory)


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755])
def test_file_store_accepts_a_directory_only_its_owner_writes(tmp_path, mode):
    directory = tmp_path / "tokens"
    directory.mkdir()
    directory.chmod(mode)
    store = FileTokenStore(directory)
    tokens = TokenSet("at", 2e9, "rt_x", 2e9, obtained_at=1.7e9)
    store.save("k", tokens)
    assert store.load("k") == tokens


def test_file_store_creates_its_directory_private(tmp_path):
    FileTokenStore(tmp_path / "new" / "tokens")
    assert (tmp_path / "new" / "tokens").stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_file_store_refuses_a_directory_of_another_user(tmp_path):
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)  # nobody
    with pytest.raises(PermissionError, match="belongs to uid 65534"):
        FileTokenStore(directory)
