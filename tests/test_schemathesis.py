"""Schemathesis against the served OpenAPI schema (``GET /api/schema/``), on the WSGI app.

Every operation of the schema gets generated requests, positive (valid per the
schema) and negative (violating it), sent through the example project's WSGI
application. Part of the time a request carries real credentials, so that the
generated bodies reach the grants and the bearer endpoints past authentication:

- bearer operations: ``Authorization: Bearer`` with a freshly issued access token;
- OAuth operations: the real client's HTTP Basic credentials, or its id and
  secret in the body, or a public client's id; sometimes real values for
  ``username``/``password``, ``refresh_token`` and ``token`` too.

Checks: no 5xx (``not_a_server_error``), and the answer conforms to the schema:
a documented status code, content type, headers and body. The run is bounded
(``EXAMPLES`` per operation) and derandomized, so CI sees the same cases each
time.
"""

from __future__ import annotations

import os
from collections import Counter
from contextlib import contextmanager

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("drf_spectacular")

from conftest import PASSWORD, basic_auth  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.python import wsgi  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from token_lifecycle import services  # noqa: E402
from token_lifecycle.models import GrantType  # noqa: E402

#: Examples per operation; raise it for a deeper local run.
EXAMPLES = int(os.environ.get("TOKEN_LIFECYCLE_SCHEMATHESIS_EXAMPLES", "50"))
ISSUER = f"http://{wsgi.HOST}/auth"  # the host the WSGI transport sends
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
OAUTH = {"/auth/token/", "/auth/token/revoke/", "/auth/token/introspect/"}
BEARER = {"/auth/pairs/", "/auth/logout/", "/auth/logout-all/", "/api/whoami/"}
OPERATIONS = [
    ("POST", "/auth/token/"),
    ("POST", "/auth/token/revoke/"),
    ("POST", "/auth/token/introspect/"),
    ("GET", "/auth/pairs/"),
    ("POST", "/auth/logout/"),
    ("POST", "/auth/logout-all/"),
    ("GET", "/api/whoami/"),
    ("GET", "/auth/.well-known/jwks.json"),
    ("GET", "/auth/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/oauth-authorization-server/{issuer_path}"),
]
#: Status codes seen per operation; printed with TOKEN_LIFECYCLE_SCHEMATHESIS_REPORT=1.
STATUSES: dict[str, Counter] = {}


@contextmanager
def inside_the_test_transaction():
    """Keep Django's WSGI handler from closing the test's connection.

    The handler closes "obsolete" connections when a request starts and ends;
    inside a test's transaction that would close the connection holding it.
    Django's test client does the same as this around each request.
    """
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@pytest.fixture(scope="module")
def api_schema():
    from example_project.wsgi import application

    with inside_the_test_transaction():
        return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def wsgi_requests(db):
    with inside_the_test_transaction():
        yield


@pytest.fixture
def world(oauth_client, make_client, user):
    """The real principals that part of the requests authenticate as."""
    client, secret = oauth_client
    public, _ = make_client("mobile", public=True)
    return {"client": client, "secret": secret, "public": public, "user": user}


def fresh_pair(world) -> services.IssuedPair:
    """A new pair for alice, valid for the WSGI transport's issuer (logout may revoke it)."""
    return services.issue_pair(
        client=world["client"],
        user=world["user"],
        issuer=ISSUER,
        grant_type=GrantType.PASSWORD,
    )


def authenticate(case, world, how: str, real_values: str | None) -> None:
    """The custom auth: put real credentials into ``case``, and with ``real_values``
    (``"access"`` or ``"refresh"``: which token ``token`` gets) real parameter values."""
    path = case.operation.path
    if path in BEARER and how == "credentials":
        case.headers = {
            **(case.headers or {}),
            "Authorization": f"Bearer {fresh_pair(world).access_token}",
        }
        return
    if path not in OAUTH or how == "generated":
        return
    body = dict(case.body) if isinstance(case.body, dict) else None
    headers = dict(case.headers or {})
    client = world["client"]
    if how == "credentials":
        headers["Authorization"] = basic_auth(client.client_id, world["secret"])
        if body is not None:
            body.pop("client_id", None)
            body.pop("client_secret", None)
    elif body is not None and how == "body-credentials":
        headers.pop("Authorization", None)
        body.update(client_id=client.client_id, client_secret=world["secret"])
    elif body is not None and how == "public-client":
        headers.pop("Authorization", None)
        body.pop("client_secret", None)
        body["client_id"] = world["public"].client_id
    if body is not None and real_values:
        pair = fresh_pair(world)
        real = {
            "username": world["user"].get_username(),
            "password": PASSWORD,
            "refresh_token": pair.refresh_token,
            "token": pair.access_token if real_values == "access" else pair.refresh_token,
        }
        body.update({name: value for name, value in real.items() if name in body})
    case.headers = headers
    if body is not None:
        case.body = body


def modes():
    return st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


def test_the_schema_has_exactly_these_operations(api_schema):
    labels = {
        (operation.method.upper(), operation.path)
        for result in api_schema.get_all_operations()
        for operation in [result.ok()]
    }
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
@given(data=st.data())
def test_operation_conforms_and_never_fails(api_schema, wsgi_requests, world, method, path, data):
    operation = api_schema[path][method]
    mode = data.draw(modes(), label="mode")
    case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
    how = data.draw(
        st.sampled_from(
            ["generated", "credentials", "credentials", "body-credentials", "public-client"]
        ),
        label="auth",
    )
    real_values = data.draw(st.sampled_from([None, "access", "refresh"]), label="real values")
    authenticate(case, world, how, real_values)

    response = case.call()
    STATUSES.setdefault(f"{method} {path}", Counter())[response.status_code] += 1

    checks = CHECKS
    if mode is GenerationMode.NEGATIVE and "{issuer_path}" in path:
        # A path parameter off its pattern (a line break) routes nowhere: Django's own
        # 404 page answers, not the view, so only the status code is the app's business.
        checks = [not_a_server_error, status_code_conformance]
    case.validate_response(response, checks=checks)


@pytest.fixture(scope="module", autouse=True)
def _report_status_codes(request):
    """With TOKEN_LIFECYCLE_SCHEMATHESIS_REPORT=1, print the status codes seen per operation."""
    yield
    if os.environ.get("TOKEN_LIFECYCLE_SCHEMATHESIS_REPORT") == "1":
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print()
            for label, counts in sorted(STATUSES.items()):
                print(f"{label}: {sum(counts.values())} cases, {dict(sorted(counts.items()))}")
