"""Secrets never leak: not into a log, a response, a header or a command's output.

One full lifecycle runs with every log captured at DEBUG (the root logger,
``django.request``, ``django.db.backends`` with ``DEBUG = True`` so that SQL is
logged with its parameters, the app's loggers) and every response kept, body
and headers: clients made with ``create_client``, client-credentials and
password logins, a wrong password, a wrong client secret, a refresh inside the
grace window, a replay after it (reuse detection), revocation, introspection,
the sessions API, logout, logout-all, key rotations to each algorithm, the
discovery documents, and the admin's changelist and change pages of clients,
pairs and signing keys fetched by a superuser.

None of these may appear anywhere in that text: a refresh token, an access
token, a client secret (right or wrong), a password (right or wrong), the
Basic credentials, private key material (PKCS#8 DER in base64, PEM, hex, the
JWK private members ``d``, ``p``, ``q``...), ``SECRET_KEY``, nor the SHA-256
digest of a token or secret. Where docs/http-api.md requires it, a value may appear
in exactly one place: a token response carries its own two tokens, and
``create_client`` prints the secret it made, once.

The digests are the one exception found, kept by the second test: Django's SQL
debug log prints query parameters, and the stored form of a refresh token or
client secret *is* its digest, so the digests reach ``django.db.backends`` (and
only it) when SQL debug logging is on. See that test for why this is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import pickle
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from conftest import FORM, PASSWORD, basic_auth
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from freezegun import freeze_time
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from token_lifecycle import cache, keys
from token_lifecycle.models import Client, SigningKey, TokenPair

TOKEN_URL = "/auth/token/"
ADMIN_PASSWORD = "admin-password-0f9c2d7e"
WRONG_PASSWORD = "wrong-password-6b1e4a93"
WRONG_SECRET = "cs_wrongSecretValue0123456789abcdefghijklmnopq"
JSON = "application/json"
LOGGERS = [
    "",
    "django",
    "django.request",
    "django.db.backends",
    "django.security",
    "token_lifecycle",
]
SQL_LOGGER = "django.db.backends"
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({})))


# -- Capturing every log record, response and command output -----------------------------


@dataclass
class Text:
    """One piece of captured text, and the secrets it may legitimately hold."""

    source: str
    text: str
    allowed: frozenset[str] = frozenset()


@dataclass
class Capture:
    logs: list[Text] = field(default_factory=list)
    outputs: list[Text] = field(default_factory=list)

    def response(self, label: str, response, allowed=()) -> None:
        headers = "\n".join(f"{name}: {value}" for name, value in response.items())
        cookies = response.cookies.output()
        body = response.content.decode("utf-8", "replace")
        text = f"{response.status_code}\n{headers}\n{cookies}\n\n{body}"
        self.outputs.append(Text(f"response {label}", text, frozenset(allowed)))

    def command(self, label: str, *args, allowed=()) -> str:
        stdout, stderr = io.StringIO(), io.StringIO()
        call_command(*args, stdout=stdout, stderr=stderr)
        output = stdout.getvalue() + stderr.getvalue()
        self.outputs.append(Text(f"command {label}", output, frozenset(allowed)))
        return stdout.getvalue()


class _Handler(logging.Handler):
    """Keeps each record as text: the formatted message, the traceback and every extra."""

    def __init__(self, capture: Capture) -> None:
        super().__init__(level=logging.DEBUG)
        self.capture = capture
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        extras = {
            name: value for name, value in vars(record).items() if name not in _RECORD_ATTRIBUTES
        }
        text = self.format(record) + "\n" + "\n".join(f"{k}={v!r}" for k, v in extras.items())
        self.capture.logs.append(Text(f"log {record.name}", text))


@pytest.fixture
def capture(settings):
    """Every log record at DEBUG, SQL included (``DEBUG = True``), into a :class:`Capture`."""
    settings.DEBUG = True
    captured = Capture()
    handler = _Handler(captured)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    previous = [(logger.level, logger.propagate, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger.name != "root":
            logger.propagate = True
    logging.getLogger().addHandler(handler)
    forced = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield captured
    finally:
        connection.force_debug_cursor = forced
        logging.getLogger().removeHandler(handler)
        for logger, (level, propagate, disabled) in zip(loggers, previous, strict=True):
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


# -- Every secret the lifecycle makes ------------------------------------------------------


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def private_key_material() -> dict[str, str]:
    """Every form in which a stored private key could leak, by label.

    A PEM line of an RSA key may lie wholly inside the public modulus, which the
    JWKS rightly publishes: such lines are public and left out.
    """
    found = {}
    public = json.dumps(list(SigningKey.objects.values_list("public_jwk", flat=True)))
    for row in SigningKey.objects.all():
        der = keys.decrypt_private_key(row.private_key_ciphertext, row.kid)
        key = serialization.load_der_private_key(der, password=None)
        label = f"private key {row.kid[:8]} ({row.algorithm})"
        b64 = base64.b64encode(der).decode()
        found[f"{label} DER base64"] = b64
        found[f"{label} DER base64url"] = base64.urlsafe_b64encode(der).decode().rstrip("=")
        found[f"{label} DER hex"] = der.hex()
        formats = {"PKCS8": serialization.PrivateFormat.PKCS8}
        if row.algorithm != "EdDSA":
            formats["traditional"] = serialization.PrivateFormat.TraditionalOpenSSL
        for name, private_format in formats.items():
            pem = key.private_bytes(
                serialization.Encoding.PEM, private_format, serialization.NoEncryption()
            ).decode()
            for number, line in enumerate(pem.splitlines()):
                if not line.startswith("-----") and len(line) >= 16 and line not in public:
                    found[f"{label} PEM {name} line {number}"] = line
        converter = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
        jwk = converter[row.algorithm].to_jwk(key, as_dict=True)
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            if member in jwk:
                found[f"{label} JWK {member}"] = jwk[member]
    return found


@dataclass
class Lifecycle:
    capture: Capture
    tokens: dict[str, str]  # label -> refresh or access token
    secrets: dict[str, str]  # label -> client secret, password, Basic credentials

    def forbidden(self) -> dict[str, str]:
        """Label -> value of everything that must never be seen."""
        values = {**self.tokens, **self.secrets, **private_key_material()}
        values["SECRET_KEY"] = django_settings.SECRET_KEY
        for label, value in [*self.tokens.items(), *self.secrets.items()]:
            if label.startswith(("refresh", "client secret", "wrong client secret")):
                values[f"digest sha256({label})"] = digest(value)
        for row in TokenPair.objects.all():
            values[f"stored digest of pair {row.pk}"] = row.refresh_token_digest
        for client in Client.objects.exclude(client_secret_digest=""):
            values[f"stored digest of client {client.name}"] = client.client_secret_digest
        return values

    def digests(self) -> dict[str, str]:
        return {label: value for label, value in self.forbidden().items() if "digest" in label}


def leaks(texts: list[Text], forbidden: dict[str, str]) -> list[str]:
    """Where each forbidden value appears outside the text allowed to hold it."""
    found = []
    for item in texts:
        for label, value in forbidden.items():
            if value in item.allowed:
                continue
            index = item.text.find(value)
            if index >= 0:
                context = item.text[max(0, index - 80) : index].replace("\n", " ")
                found.append(f"{label} in {item.source}: ...{context}[HERE]")
    return found


# -- The lifecycle ---------------------------------------------------------------------------


@pytest.fixture
def lifecycle(capture, client, make_user) -> Lifecycle:
    tokens: dict[str, str] = {}
    secrets = {
        "password of alice": PASSWORD,
        "password of the admin": ADMIN_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "wrong client secret": WRONG_SECRET,
    }
    make_user("alice")
    make_user("owner")
    get_user_model().objects.create_superuser("admin", "admin@example.com", ADMIN_PASSWORD)

    def post(label: str, url: str, params: dict, *, basic=None, as_json=False):
        headers = {}
        if basic:
            headers["HTTP_AUTHORIZATION"] = basic_auth(*basic)
            secrets[f"Basic credentials ({label})"] = headers["HTTP_AUTHORIZATION"].split()[1]
        if as_json:
            response = client.post(url, json.dumps(params), content_type=JSON, **headers)
        else:
            response = client.post(url, urlencode(params), content_type=FORM, **headers)
        allowed = []
        if url == TOKEN_URL and response.status_code == 200:
            body = response.json()
            tokens[f"refresh token ({label})"] = body["refresh_token"]
            tokens[f"access token ({label})"] = body["access_token"]
            allowed = [body["refresh_token"], body["access_token"]]
        capture.response(label, response, allowed)
        return response

    def get(label: str, url: str, *, bearer=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer else {}
        response = client.get(url, **headers)
        capture.response(label, response)
        return response

    def bearer_post(label: str, url: str, bearer: str):
        response = client.post(url, HTTP_AUTHORIZATION=f"Bearer {bearer}")
        capture.response(label, response)
        return response

    # Clients, through the management command: the secret is printed once, there only.
    created = json.loads(
        capture.command(
            "create_client --json",
            *("create_client", "Partner", "--owner", "owner", "--json"),
            *("--grant", "client_credentials", "--grant", "password"),
        )
    )
    client_id, secret = created["client_id"], created["client_secret"]
    secrets["client secret (create_client --json)"] = secret
    capture.outputs[-1].allowed = frozenset([secret])
    text_output = capture.command(
        "create_client", "create_client", "Partner B", "--owner", "owner"
    )
    second_id = re.search(r"client_id:\s+(\S+)", text_output).group(1)
    second_secret = re.search(r"client_secret:\s+(\S+)", text_output).group(1)
    secrets["client secret (create_client)"] = second_secret
    capture.outputs[-1].allowed = frozenset([second_secret])
    capture.command(
        "create_client --public",
        *("create_client", "Mobile", "--owner", "owner", "--public", "--json"),
    )
    partner = (client_id, secret)

    # Logins, good and bad.
    assert (
        post(
            "client credentials", TOKEN_URL, {"grant_type": "client_credentials"}, basic=partner
        ).status_code
        == 200
    )
    login = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    body_credentials = {"client_id": client_id, "client_secret": secret}
    first = post("password login", TOKEN_URL, {**login, **body_credentials}, as_json=True)
    assert first.status_code == 200
    refresh_1, access_1 = first.json()["refresh_token"], first.json()["access_token"]
    wrong = {**login, "password": WRONG_PASSWORD}
    assert post("wrong password", TOKEN_URL, wrong, basic=partner).status_code == 400
    bad_client = (client_id, WRONG_SECRET)
    assert post("wrong client secret", TOKEN_URL, login, basic=bad_client).status_code == 401
    other_client = (second_id, second_secret)
    assert (
        post(
            "other client's refresh token",
            TOKEN_URL,
            {"grant_type": "refresh_token", "refresh_token": refresh_1},
            basic=other_client,
        ).status_code
        == 400
    )

    # The sessions API.
    assert get("whoami", "/api/whoami/", bearer=access_1).status_code == 200
    assert get("pairs", "/auth/pairs/", bearer=access_1).status_code == 200
    assert get("refresh token as bearer", "/auth/pairs/", bearer=refresh_1).status_code == 401

    # Refresh, twice inside the grace window.
    refresh = {"grant_type": "refresh_token", "refresh_token": refresh_1}
    second = post("refresh", TOKEN_URL, refresh, basic=partner)
    assert second.status_code == 200
    assert post("refresh in grace", TOKEN_URL, refresh, basic=partner).status_code == 200
    refresh_2 = second.json()["refresh_token"]

    # Introspection and revocation.
    for label, token in [("access", access_1), ("refresh", refresh_2)]:
        answer = post(
            f"introspect {label}", "/auth/token/introspect/", {"token": token}, basic=partner
        )
        assert answer.json()["active"] is True
    third = tokens["refresh token (refresh in grace)"]
    assert (
        post("revoke", "/auth/token/revoke/", {"token": third}, basic=partner).status_code == 200
    )
    revoked = {"token": third, "token_type_hint": "refresh_token"}
    assert post(
        "introspect revoked", "/auth/token/introspect/", revoked, basic=partner
    ).json() == {"active": False}

    # Reuse detection: the first refresh token replayed after its grace window.
    with freeze_time(timezone.now() + timedelta(hours=7)):
        assert post("replay after grace", TOKEN_URL, refresh, basic=partner).status_code == 400
    assert TokenPair.objects.filter(revoke_reason="reuse_detected").exists()

    # Logout, logout-all.
    fourth = post("login for logout", TOKEN_URL, login, basic=partner).json()
    assert bearer_post("logout", "/auth/logout/", fourth["access_token"]).status_code == 200
    fifth = post("login for logout-all", TOKEN_URL, login, basic=partner).json()
    assert bearer_post("logout-all", "/auth/logout-all/", fifth["access_token"]).status_code == 200
    assert (
        get("whoami after logout-all", "/api/whoami/", bearer=fifth["access_token"]).status_code
        == 401
    )

    # Key rotations, to each algorithm, each new key signing a login.
    for algorithm in ("ES256", "EdDSA", "RS256"):
        capture.command(
            f"rotate_signing_key {algorithm}",
            *("rotate_signing_key", "--algorithm", algorithm, "--immediately"),
        )
        issued = post(f"login after rotation to {algorithm}", TOKEN_URL, login, basic=partner)
        assert (
            get(
                f"whoami {algorithm}", "/api/whoami/", bearer=issued.json()["access_token"]
            ).status_code
            == 200
        )
    assert get("jwks", "/auth/.well-known/jwks.json").status_code == 200
    assert get("metadata", "/auth/.well-known/oauth-authorization-server").status_code == 200

    # The admin, as a superuser: only the changelist and change pages that exist now.
    login_page = client.post(
        "/admin/login/?next=/admin/", {"username": "admin", "password": ADMIN_PASSWORD}
    )
    capture.response("admin login", login_page)
    assert login_page.status_code == 302
    for model in (Client, TokenPair, SigningKey):
        name = model._meta.model_name
        try:
            changelist = reverse(f"admin:token_lifecycle_{name}_changelist")
        except NoReverseMatch:
            continue
        assert get(f"admin {name} changelist", changelist).status_code == 200
        for obj in model.objects.all():
            try:
                url = reverse(f"admin:token_lifecycle_{name}_change", args=[obj.pk])
            except NoReverseMatch:
                break
            assert get(f"admin {name} {obj.pk}", url).status_code in (200, 302)

    return Lifecycle(capture, tokens, secrets)


# -- The properties ----------------------------------------------------------------------------


def test_no_secret_in_any_log_response_or_command_output(lifecycle):
    """Outside the SQL debug log, nothing: no token, secret, password, key or digest."""
    capture = lifecycle.capture
    assert len(lifecycle.tokens) >= 16
    assert sum(1 for item in capture.outputs if item.source.startswith("response admin")) >= 10
    other_logs = [item for item in capture.logs if not item.source.startswith(f"log {SQL_LOGGER}")]
    assert other_logs, "nothing was logged: is the capture working?"

    found = leaks(capture.outputs + other_logs, lifecycle.forbidden())

    assert not found, "\n".join(found)


def test_the_sql_debug_log_holds_digests_and_nothing_else_secret(lifecycle):
    """Django's SQL debug log prints query parameters: the digests are there, nothing more.

    A refresh token and a client secret are stored as their SHA-256 digest, so
    the INSERT that stores one and the SELECT that looks one up carry it as a
    parameter, and ``django.db.backends`` logs it at DEBUG (with ``DEBUG =
    True``, or ``force_debug_cursor``). Accepted, not a leak to fix:

    - a digest is what the database already holds, and it is not a credential:
      no endpoint takes one, and the SHA-256 of 256 random bits cannot be
      reversed to the token or secret it came from;
    - query logging is a development setting (``DEBUG = True``, which must be
      off in production) or an explicit ``django.db.backends`` DEBUG logger;
    - Django logs its own password hashes the same way.

    What must not reach this log is the credentials themselves: raw tokens,
    secrets, passwords, private key material (only its AES-GCM ciphertext is
    stored) and ``SECRET_KEY``.
    """
    sql = [item for item in lifecycle.capture.logs if item.source.startswith(f"log {SQL_LOGGER}")]
    assert len(sql) > 50
    forbidden = lifecycle.forbidden()
    digests = lifecycle.digests()
    credentials = {label: value for label, value in forbidden.items() if label not in digests}

    assert not leaks(sql, credentials), "\n".join(leaks(sql, credentials))
    seen = {label for label, value in digests.items() if any(value in item.text for item in sql)}
    # Documents the finding; if it stops being true, update this note and the README's.
    assert any("refresh token" in label for label in seen), seen
    assert any("client secret" in label for label in seen), seen


def test_the_capture_sees_what_is_logged_and_answered(db, capture, client):
    """The harness itself: a secret in a log record or a response is found, and located."""
    secret = "rt_" + "s" * 43
    logging.getLogger("token_lifecycle.anywhere").debug("refreshing %s", {"token": secret})
    capture.response("echo", client.get("/auth/.well-known/jwks.json", {"x": secret}))
    capture.outputs[-1].text += secret  # as if the body echoed it

    found = leaks(capture.logs + capture.outputs, {"planted": secret})

    assert [line.split(":")[0] for line in found] == [
        "planted in log token_lifecycle.anywhere",
        "planted in response echo",
    ]


def test_the_validation_cache_holds_no_password_hash(login, whoami, user):
    """The cached user is loaded without its password hash (crackable offline if weak).

    The client's secret digest may be cached (client authentication reads it
    from there): a SHA-256 of 256 random bits can be neither reversed nor
    presented as a credential.
    """
    tokens = login()
    assert whoami(tokens["access_token"]).status_code == 200  # fills the cache
    client = Client.objects.get()
    cached = caches["default"].get_many(
        [cache._user_key(user.pk), cache._client_key(client.client_id)]
    )
    assert len(cached) == 2
    stored = b"".join(pickle.dumps(value) for value in cached.values())

    assert user.password.encode() not in stored
