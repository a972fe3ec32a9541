"""The authorization code flow with PKCE (docs/code-flow.md): every rule over HTTP.

- ``GET/POST /auth/authorize/``: which bad requests get the 400 page (client
  or redirect URI not trusted) and which go back to the client with ``error``,
  ``state`` and ``iss``; login, consent, CSRF, framing and caching headers.
- ``grant_type=authorization_code`` on ``/auth/token/``: the exchange, each
  ``invalid_grant`` case, the expiry at its exact instant (freezegun), and a
  second use revoking the family the code started.
- The PKCE and redirect helpers as units.

Concurrent redemption on PostgreSQL: tests/test_code_flow_postgres.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from conftest import PASSWORD, bearer_refused
from django.db import connection, router, transaction
from django.test import Client as HttpClient
from freezegun import freeze_time

from token_lifecycle import authorization_codes, code_store, credentials, pkce, signals
from token_lifecycle.models import AuthorizationCode, Client, GrantType, TokenPair
from token_lifecycle.oauth.authorization import MAX_STATE_LENGTH, with_parameters
from token_lifecycle.rules import RevokeReason

AUTHORIZE = "/auth/authorize/"
ISSUER = "http://testserver/auth"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
LIFETIME = timedelta(seconds=60)  # AUTHORIZATION_CODE_LIFETIME's default
# RFC 7636 Appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
CALLBACK = "https://app.example/cb"
OTHER_CALLBACK = "https://app.example/other"
QUERY_CALLBACK = "https://app.example/q?tenant=1"
NATIVE_CALLBACK = "com.example.app:/oauth"
LOOPBACK = "http://127.0.0.1/callback"
STATE = "xyz-state_1.2~"


# -- Fixtures and helpers -----------------------------------------------------


@pytest.fixture
def clock():
    with freeze_time(T0) as frozen:
        yield frozen


@pytest.fixture
def app(make_client) -> Client:
    """A public code-flow client ("Demo app") with several kinds of redirect URI."""
    client_obj, _ = make_client(
        "Demo app",
        public=True,
        grant_types="authorization_code",
        scope="read write",
        redirect_uris="\n".join(
            [CALLBACK, OTHER_CALLBACK, QUERY_CALLBACK, NATIVE_CALLBACK, LOOPBACK]
        ),
    )
    return client_obj


@pytest.fixture
def web_app(make_client) -> tuple[Client, str]:
    """A confidential code-flow client: ``(client, secret)``."""
    return make_client(
        "Partner web", grant_types="authorization_code", redirect_uris=CALLBACK, scope="read"
    )


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def authorize_params(app: Client, **overrides) -> dict:
    """A valid authorization request for ``app``; an override of None leaves a parameter out."""
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": CALLBACK,
        "state": STATE,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}


def get_authorize(http, params: dict | list):
    return http.get(AUTHORIZE + "?" + urlencode(params, doseq=True))


def redirected(response, base: str = CALLBACK) -> dict[str, str]:
    """The parameters of a redirect to ``base``; fails unless it is exactly that."""
    assert response.status_code == 302, response.content[:300]
    location = response["Location"]
    target, _, query = location.partition("?")
    assert target == base.partition("?")[0], location
    params = parse_qs(query, keep_blank_values=True)
    assert all(len(values) == 1 for values in params.values()), location
    return {name: values[0] for name, values in params.items()}


def assert_error_page(response) -> None:
    assert response.status_code == 400
    assert not response.has_header("Location")
    assert response["Content-Type"].startswith("text/html")
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cache-Control"] == "no-store"


def consent_form(response) -> dict[str, str]:
    """The hidden fields of the consent page's form, with the CSRF token."""
    html = response.content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return {name: value.replace("&amp;", "&") for name, value in fields.items()}


def approve(http, app: Client, **overrides) -> dict[str, str]:
    """Consent page, then Allow: the parameters of the redirect (code, state, iss)."""
    page = get_authorize(http, authorize_params(app, **overrides))
    assert page.status_code == 200, page.content[:300]
    form = consent_form(page)
    return redirected(
        http.post(AUTHORIZE, {**form, "decision": "allow"}),
        overrides.get("redirect_uri") or CALLBACK,
    )


def exchange(token_request, app: Client, code: str, /, *, secret: str | None = None, **overrides):
    params = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": VERIFIER,
        **overrides,
    }
    params = {name: value for name, value in params.items() if value is not None}
    return token_request(params, auth=(app.client_id, secret))


def pair_of(body: dict) -> TokenPair:
    return TokenPair.objects.get(refresh_token_digest=credentials.digest(body["refresh_token"]))


def issued_code(app: Client, user, **binding) -> str:
    """A code issued directly (the endpoint is tested on its own), now."""
    values = {"redirect_uri": CALLBACK, "scope": "read", "code_challenge": CHALLENGE, **binding}
    return authorization_codes.issue(client=app, user=user, **values)


# -- The authorization endpoint: untrusted requests get a page -------------------


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "no-such-client"},
        {"client_id": None},
        {"client_id": "a\x00b"},
        {"redirect_uri": None},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": "https://app.example@evil.example/cb"},  # userinfo trick
        {"redirect_uri": "https://app.example/cb#fragment"},
        {"redirect_uri": "https://app.example/cb/"},
        {"redirect_uri": "https://app.example/CB"},
        {"redirect_uri": "https://APP.example/cb"},
        {"redirect_uri": "https://app.example/cb?x=1"},
        {"redirect_uri": "http://app.example/cb"},
        {"redirect_uri": "https://app.example:443/cb"},
        {"redirect_uri": "http://localhost:8000/callback"},
        {"redirect_uri": "http://127.0.0.1.evil.example/callback"},
        {"redirect_uri": "http://127.0.0.1:8000@evil.example/callback"},
        {"redirect_uri": "javascript:alert(1)//"},
        {"redirect_uri": "https://app.example/cb\r\nX-Injected: 1"},
    ],
    ids=lambda change: repr(change)[:60],
)
def test_untrusted_client_or_redirect_uri_gets_the_page_and_no_redirect(client, user, app, change):
    client.force_login(user)  # a logged-in user is not redirected either
    response = get_authorize(client, authorize_params(app, **change))

    assert_error_page(response)
    assert b"evil.example" not in response.content  # the URI is not echoed
    assert not AuthorizationCode.objects.exists()


def test_inactive_client_gets_the_page(client, app):
    Client.objects.filter(pk=app.pk).update(is_active=False)

    assert_error_page(get_authorize(client, authorize_params(app)))


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
def test_repeated_client_id_or_redirect_uri_gets_the_page(client, app, name):
    params = [*authorize_params(app).items(), (name, authorize_params(app)[name])]

    response = get_authorize(client, params)

    assert_error_page(response)
    assert b"repeated" in response.content


def test_error_page_says_why_without_echoing_input(client, app):
    response = get_authorize(
        client, authorize_params(app, redirect_uri="https://x.example/<script>alert(1)</script>")
    )

    assert_error_page(response)
    assert b"not registered for this application" in response.content
    assert b"<script>" not in response.content


def test_client_without_redirect_uris_gets_the_page(client, oauth_client):
    """A client not set up for the code flow has no URI to send errors to."""
    client_obj, _ = oauth_client

    assert_error_page(get_authorize(client, authorize_params(client_obj)))


# -- The authorization endpoint: later errors go back to the client --------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code token"}, "unsupported_response_type"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": "s256"}, "invalid_request"),
        ({"code_challenge": CHALLENGE[:-1]}, "invalid_request"),  # 42 characters
        ({"code_challenge": CHALLENGE + "A"}, "invalid_request"),  # 44 characters
        ({"code_challenge": CHALLENGE[:-1] + "+"}, "invalid_request"),  # base64, not base64url
        ({"code_challenge": CHALLENGE[:-1] + "="}, "invalid_request"),
        ({"code_challenge": CHALLENGE[:-1] + "N"}, "invalid_request"),  # trailing bits set
        ({"code_challenge": VERIFIER + "-plain"}, "invalid_request"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"scope": "read admin"}, "invalid_scope"),
        ({"scope": 'read"'}, "invalid_scope"),
        ({"response_mode": "fragment", "code_challenge": "short"}, "invalid_request"),
    ],
    ids=lambda value: repr(value)[:50],
)
def test_errors_after_the_redirect_uri_is_trusted_are_redirected(client, user, app, change, error):
    response = get_authorize(client, authorize_params(app, **change))

    answer = redirected(response)
    assert answer["error"] == error
    # RFC 6749 §4.1.2.1: printable ASCII without '"' and '\\'.
    assert re.fullmatch(r"[\x20-\x21\x23-\x5b\x5d-\x7e]+", answer["error_description"])
    assert answer["state"] == STATE
    assert answer["iss"] == ISSUER
    assert "code" not in answer
    assert response["Cache-Control"] == "no-store"
    assert not AuthorizationCode.objects.exists()


def test_client_without_the_grant_is_unauthorized(client, make_client):
    client_obj, _ = make_client(
        "password only", public=True, grant_types="password", redirect_uris=CALLBACK
    )

    answer = redirected(get_authorize(client, authorize_params(client_obj)))

    assert answer["error"] == "unauthorized_client"
    assert answer["state"] == STATE


@pytest.mark.parametrize(
    "name", ["response_type", "code_challenge", "code_challenge_method", "scope", "nonce"]
)
def test_a_repeated_parameter_is_invalid_request(client, app, name):
    params = list(authorize_params(app, scope="read").items())
    if name not in dict(params):  # an unknown parameter (ignored when single) given twice
        params.append((name, "n"))
    params.append((name, dict(params)[name]))

    answer = redirected(get_authorize(client, params))

    assert answer["error"] == "invalid_request"
    assert "repeated" in answer["error_description"]
    assert answer["state"] == STATE


@pytest.mark.parametrize(
    "state",
    ["s" * (MAX_STATE_LENGTH + 1), "s" * 6000, "tab\there", "é"],
    ids=["limit+1", "6000", "control", "non-ascii"],
)
def test_a_state_that_cannot_be_echoed_is_refused_and_not_echoed(client, app, state):
    response = get_authorize(client, authorize_params(app, state=state))

    answer = redirected(response)
    assert answer["error"] == "invalid_request"
    assert "state" not in answer
    assert answer["iss"] == ISSUER
    assert len(response["Location"]) < 500


def test_a_repeated_state_is_refused_and_neither_is_echoed(client, app):
    params = [*authorize_params(app).items(), ("state", "other")]

    answer = redirected(get_authorize(client, params))

    assert answer["error"] == "invalid_request"
    assert "state" not in answer


def test_a_state_of_the_limit_is_echoed(logged_in, app):
    state = "~" * MAX_STATE_LENGTH

    assert approve(logged_in, app, state=state)["state"] == state


def test_state_is_optional(logged_in, app):
    answer = approve(logged_in, app, state=None)

    assert "state" not in answer
    assert answer["code"] and answer["iss"] == ISSUER


def test_errors_are_checked_before_the_login(client, app):
    """A visitor is not asked to log in for a request that will fail anyway."""
    answer = redirected(
        get_authorize(client, authorize_params(app, code_challenge_method="plain"))
    )

    assert answer["error"] == "invalid_request"


# -- Login, consent, decision -------------------------------------------------------------


def test_visitor_is_sent_to_the_login_page_and_back(client, user, app):
    response = get_authorize(client, authorize_params(app, scope="read"))

    assert response.status_code == 302
    login_url = urlsplit(response["Location"])
    assert login_url.path == "/accounts/login/"
    next_url = parse_qs(login_url.query)["next"][0]
    assert next_url.startswith(AUTHORIZE + "?")
    assert parse_qs(urlsplit(next_url).query)["client_id"] == [app.client_id]
    assert response["Cache-Control"] == "no-store"

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b'<label for="id_username">Username</label>' in page.content
    assert b'<label for="id_password">Password</label>' in page.content
    logged = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": next_url}
    )
    assert logged.status_code == 302 and logged["Location"] == next_url

    consent = client.get(next_url)
    assert consent.status_code == 200
    assert b"Allow Demo app to access your account?" in consent.content


def test_consent_page_names_the_client_and_the_scopes(logged_in, app):
    response = get_authorize(logged_in, authorize_params(app, scope="write read"))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 id="consent-heading">Allow Demo app to access your account?</h1>' in html
    assert "<code>read</code>" in html and "<code>write</code>" in html
    assert 'type="submit" class="primary" name="decision" value="allow">Allow</button>' in html
    assert 'name="decision" value="deny">Deny</button>' in html
    assert html.index('value="allow"') < html.index('value="deny"')  # focus order
    assert 'name="csrfmiddlewaretoken"' in html
    assert "tabindex" not in html  # the document order is the focus order
    assert 'lang="en"' in html
    form = consent_form(response)
    assert form["scope"] == "read write"  # the scope granted
    assert form["redirect_uri"] == CALLBACK and form["state"] == STATE


def test_consent_page_headers_forbid_framing_and_caching(logged_in, app):
    response = get_authorize(logged_in, authorize_params(app))

    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "same-origin"


def test_consent_page_issues_no_code(logged_in, app):
    response = get_authorize(logged_in, authorize_params(app))

    assert response.status_code == 200
    assert not AuthorizationCode.objects.exists()
    assert credentials.AUTHORIZATION_CODE_PREFIX.encode() not in response.content


def test_allow_redirects_with_code_state_and_iss(logged_in, app, user, clock):
    answer = approve(logged_in, app, scope="read")

    assert set(answer) == {"code", "state", "iss"}
    assert answer["state"] == STATE
    assert answer["iss"] == ISSUER
    code = answer["code"]
    assert code.startswith("ac_") and len(code) >= 3 + 43  # 256 bits of base64url
    row = AuthorizationCode.objects.get()
    assert row.code_digest == credentials.digest(code)  # stored only as a digest
    assert code not in {row.code_digest, row.code_challenge, str(row), repr(row)}
    assert (row.client, row.user, row.redirect_uri) == (app, user, CALLBACK)
    assert (row.scope, row.code_challenge) == ("read", CHALLENGE)
    assert row.expires_at == T0 + LIFETIME
    assert row.used_at is None


def test_no_scope_requested_grants_the_clients_scopes(logged_in, app):
    approve(logged_in, app)

    assert AuthorizationCode.objects.get().scope == "read write"


def test_deny_redirects_with_access_denied(logged_in, app):
    form = consent_form(get_authorize(logged_in, authorize_params(app)))

    answer = redirected(logged_in.post(AUTHORIZE, {**form, "decision": "deny"}))

    assert answer["error"] == "access_denied"
    assert answer["state"] == STATE and answer["iss"] == ISSUER
    assert not AuthorizationCode.objects.exists()


@pytest.mark.parametrize("decision", ["", "yes", "ALLOW"])
def test_any_other_decision_is_invalid_request(logged_in, app, decision):
    form = consent_form(get_authorize(logged_in, authorize_params(app)))

    answer = redirected(logged_in.post(AUTHORIZE, {**form, "decision": decision}))

    assert answer["error"] == "invalid_request"
    assert not AuthorizationCode.objects.exists()


def test_consent_form_without_its_csrf_token_is_refused(user, app):
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(user)
    form = consent_form(get_authorize(browser, authorize_params(app)))
    assert form["csrfmiddlewaretoken"]

    forged = {name: value for name, value in form.items() if name != "csrfmiddlewaretoken"}
    response = browser.post(AUTHORIZE, {**forged, "decision": "allow"})

    assert response.status_code == 403
    assert not AuthorizationCode.objects.exists()
    # Control: the same form with its token goes through.
    assert redirected(browser.post(AUTHORIZE, {**form, "decision": "allow"}))["code"]


def test_consent_form_posted_by_a_browser_passes_the_origin_check(user, app):
    """Browsers send Origin with a form POST, as the page's Referrer-Policy allows.

    Under ``no-referrer`` Chromium sends ``Origin: null`` and Django's CSRF
    check refused every consent (found by tests/test_code_flow_browser.py).
    """
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(user)
    page = get_authorize(browser, authorize_params(app))
    assert page["Referrer-Policy"] not in ("no-referrer", "no-referrer-when-downgrade")
    form = {**consent_form(page), "decision": "allow"}

    assert browser.post(AUTHORIZE, form, HTTP_ORIGIN="null").status_code == 403
    assert redirected(browser.post(AUTHORIZE, form, HTTP_ORIGIN="http://testserver"))["code"]


def test_consent_form_is_checked_again_when_posted(logged_in, app):
    """Hidden fields are input like any other: a changed redirect URI gets the page."""
    form = consent_form(get_authorize(logged_in, authorize_params(app)))

    tampered = {**form, "redirect_uri": "https://evil.example/cb", "decision": "allow"}
    assert_error_page(logged_in.post(AUTHORIZE, tampered))
    widened = {**form, "scope": "read write admin", "decision": "allow"}
    assert redirected(logged_in.post(AUTHORIZE, widened))["error"] == "invalid_scope"
    assert not AuthorizationCode.objects.exists()


def test_consent_posted_after_the_session_ended_goes_to_the_login(client, user, app):
    client.force_login(user)
    form = consent_form(get_authorize(client, authorize_params(app)))
    client.logout()

    response = client.post(AUTHORIZE, {**form, "decision": "allow"})

    assert urlsplit(response["Location"]).path == "/accounts/login/"
    assert not AuthorizationCode.objects.exists()


def test_consent_is_asked_every_time(logged_in, app):
    approve(logged_in, app)

    assert get_authorize(logged_in, authorize_params(app)).status_code == 200


def test_skip_consent_redirects_at_once_with_a_code(logged_in, app):
    Client.objects.filter(pk=app.pk).update(skip_consent=True)

    answer = redirected(get_authorize(logged_in, authorize_params(app)))

    assert set(answer) == {"code", "state", "iss"}
    assert AuthorizationCode.objects.count() == 1


def test_redirect_uri_with_a_query_keeps_it(logged_in, app):
    answer = approve(logged_in, app, redirect_uri=QUERY_CALLBACK)

    assert answer["tenant"] == "1" and answer["code"]


def test_private_use_scheme_redirect(logged_in, app):
    answer = approve(logged_in, app, redirect_uri=NATIVE_CALLBACK)

    assert answer["code"] and answer["iss"] == ISSUER


def test_loopback_redirect_on_any_port(logged_in, app, token_request):
    uri = "http://127.0.0.1:53123/callback"
    answer = approve(logged_in, app, redirect_uri=uri)

    assert AuthorizationCode.objects.get().redirect_uri == uri
    # At the token endpoint the URI must be the one of the request, port included.
    other_port = exchange(
        token_request, app, answer["code"], redirect_uri="http://127.0.0.1:53124/callback"
    )
    assert other_port.json()["error"] == "invalid_grant"
    assert exchange(token_request, app, answer["code"], redirect_uri=uri).status_code == 200


def test_errors_redirect_to_a_private_use_scheme_too(client, app):
    answer = redirected(
        get_authorize(client, authorize_params(app, redirect_uri=NATIVE_CALLBACK, scope="x")),
        NATIVE_CALLBACK,
    )

    assert answer["error"] == "invalid_scope"


def test_other_methods_are_not_allowed(client, app):
    assert client.put(AUTHORIZE).status_code == 405


# -- The token exchange ---------------------------------------------------------------------


def test_code_exchange_issues_a_pair(logged_in, app, token_request, whoami, clock):
    code = approve(logged_in, app, scope="read")["code"]
    clock.tick(59)
    response = exchange(token_request, app, code)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read"
    assert body["refresh_token"].startswith("rt_")
    assert response["Cache-Control"] == "no-store"
    assert whoami(body["access_token"]).json()["username"] == "alice"
    pair = pair_of(body)
    assert pair.family_id == pair.pk  # a new family
    row = AuthorizationCode.objects.get()
    assert row.used_at == T0 + 59 * SECOND and row.family_id == pair.family_id


def test_signal_names_the_authorization_code_grant(
    logged_in, app, token_request, django_capture_on_commit_callbacks
):
    received = []

    def on_issue(sender, **kwargs):
        received.append(kwargs["grant_type"])

    code = approve(logged_in, app)["code"]
    signals.pair_issued.connect(on_issue)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert exchange(token_request, app, code).status_code == 200
    finally:
        signals.pair_issued.disconnect(on_issue)

    assert received == [GrantType.AUTHORIZATION_CODE]


def test_confidential_client_authenticates(logged_in, web_app, token_request):
    client_obj, secret = web_app
    code = approve(logged_in, client_obj)["code"]

    without = exchange(token_request, client_obj, code)
    assert without.status_code == 401 and without.json()["error"] == "invalid_client"
    wrong = exchange(token_request, client_obj, code, secret="cs_wrong")
    assert wrong.status_code == 401
    assert exchange(token_request, client_obj, code, secret=secret).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"},  # one letter's case
        {"code_verifier": VERIFIER[:42]},  # too short
        {"code_verifier": VERIFIER * 3},  # 129 characters
        {"code_verifier": VERIFIER[:-1] + "+"},  # outside the unreserved set
        {"code_verifier": CHALLENGE},  # the challenge itself ("plain")
        {"redirect_uri": OTHER_CALLBACK},  # registered, but not the one of the request
        {"redirect_uri": CALLBACK + "/"},
        {"code": "ac_unknown"},
        {"code": "x" * 4096},
    ],
    ids=lambda change: repr(change)[:50],
)
def test_each_wrong_binding_is_invalid_grant_and_spends_nothing(
    logged_in, app, token_request, change
):
    code = approve(logged_in, app)["code"]

    response = exchange(token_request, app, code, **change)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not TokenPair.objects.exists()
    # A failed attempt leaves the code to whoever holds the verifier.
    assert exchange(token_request, app, code).status_code == 200


def test_a_code_for_another_client_is_invalid_grant_and_revokes_nothing(
    logged_in, app, make_client, token_request
):
    other, _ = make_client(
        "other app", public=True, grant_types="authorization_code", redirect_uris=CALLBACK
    )
    code = approve(logged_in, app)["code"]
    first = exchange(token_request, app, code).json()

    response = exchange(token_request, other, code)

    assert response.json()["error"] == "invalid_grant"
    assert pair_of(first).revoked_at is None


@pytest.mark.parametrize(
    ("param", "error"),
    [("code_verifier", "invalid_request"), ("code", "invalid_request")],
)
def test_a_missing_parameter_is_invalid_request(logged_in, app, token_request, param, error):
    code = approve(logged_in, app)["code"]

    response = exchange(token_request, app, code, **{param: None})

    assert response.json()["error"] == error
    assert not TokenPair.objects.exists()


def test_client_without_the_grant_cannot_exchange(app, user, oauth_client, token_request):
    code = issued_code(app, user)
    client_obj, secret = oauth_client

    response = exchange(token_request, client_obj, code, secret=secret)

    assert response.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize(("age", "accepted"), [(LIFETIME - SECOND, True), (LIFETIME, False)])
def test_code_expires_at_exactly_its_lifetime(clock, app, user, token_request, age, accepted):
    code = issued_code(app, user)
    clock.move_to(T0 + age)

    response = exchange(token_request, app, code)

    assert (response.status_code == 200) is accepted, response.content
    if not accepted:
        assert response.json()["error"] == "invalid_grant"
        assert not TokenPair.objects.exists()


def test_code_lifetime_follows_the_setting(clock, lifecycle, app, user, token_request):
    lifecycle(AUTHORIZATION_CODE_LIFETIME=timedelta(seconds=10))
    code = issued_code(app, user)
    clock.move_to(T0 + 10 * SECOND)

    assert exchange(token_request, app, code).json()["error"] == "invalid_grant"


def test_code_of_a_deactivated_user_is_invalid_grant(app, user, token_request):
    code = issued_code(app, user)
    user.is_active = False
    user.save()

    assert exchange(token_request, app, code).json()["error"] == "invalid_grant"
    assert not TokenPair.objects.exists()


def test_scopes_withdrawn_from_the_client_meanwhile_are_refused(app, user, token_request):
    code = issued_code(app, user, scope="write")
    Client.objects.filter(pk=app.pk).update(scope="read")
    app.refresh_from_db()

    assert exchange(token_request, app, code).json()["error"] == "invalid_scope"
    assert not TokenPair.objects.exists()
    assert AuthorizationCode.objects.get().used_at is None  # the whole exchange rolled back


def test_cap_applies_to_code_exchanges(lifecycle, app, user, token_request, clock):
    lifecycle(MAX_PAIRS_PER_CLIENT=2)
    bodies = []
    for _ in range(3):
        bodies.append(exchange(token_request, app, issued_code(app, user)).json())
        clock.tick()

    oldest = pair_of(bodies[0])
    assert oldest.revoke_reason == RevokeReason.EVICTED
    assert all(pair_of(body).revoked_at is None for body in bodies[1:])


# -- A second use ---------------------------------------------------------------------------


def test_second_use_revokes_the_family_refreshed_pairs_included(
    clock, app, user, token_request, revoked_signals, django_capture_on_commit_callbacks
):
    code = issued_code(app, user)
    first = exchange(token_request, app, code).json()
    clock.tick()
    refreshed = token_request(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(app.client_id, None),
    ).json()
    other_family = exchange(token_request, app, issued_code(app, user)).json()
    clock.tick()

    with django_capture_on_commit_callbacks(execute=True):
        replay = exchange(token_request, app, code)

    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    for body in (first, refreshed):
        pair = pair_of(body)
        assert pair.revoke_reason == RevokeReason.CODE_REUSED
        assert bearer_refused(body["access_token"])
    assert pair_of(other_family).revoked_at is None
    assert {signal["reason"] for signal in revoked_signals} == {RevokeReason.CODE_REUSED}
    assert {signal["pair_id"] for signal in revoked_signals} == {
        pair_of(first).pk,
        pair_of(refreshed).pk,
    }
    assert TokenPair.objects.count() == 3  # the replay issued nothing


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"code_verifier": "w" * 43},
        {"code_verifier": "short"},
        {"redirect_uri": OTHER_CALLBACK},
    ],
    ids=["same", "wrong-verifier", "malformed-verifier", "other-uri"],
)
def test_any_second_use_by_its_client_revokes(app, user, token_request, change):
    """The code leaking is the signal, whatever else the replay gets wrong."""
    code = issued_code(app, user)
    first = exchange(token_request, app, code).json()

    assert exchange(token_request, app, code, **change).json()["error"] == "invalid_grant"
    assert pair_of(first).revoke_reason == RevokeReason.CODE_REUSED


def test_second_use_after_expiry_still_revokes(clock, app, user, token_request):
    code = issued_code(app, user)
    first = exchange(token_request, app, code).json()
    clock.move_to(T0 + LIFETIME + 3600 * SECOND)

    assert exchange(token_request, app, code).json()["error"] == "invalid_grant"
    assert pair_of(first).revoke_reason == RevokeReason.CODE_REUSED


# -- The claim (token_lifecycle.code_store) ------------------------------------------------


def test_the_code_records_the_family_its_exchange_started(app, user, token_request):
    code = issued_code(app, user, scope="read")

    pair = pair_of(exchange(token_request, app, code).json())

    row = AuthorizationCode.objects.get()
    assert row.used_at is not None
    assert row.family_id == pair.family_id == pair.pk
    assert pair.user_id == user.pk and pair.scope == "read"


def test_the_claim_gives_the_user_and_scope_the_code_was_approved_for(app, user):
    code = issued_code(app, user, scope="read write")
    alias = router.db_for_write(AuthorizationCode)

    with transaction.atomic(using=alias):
        claimed = code_store.claim(alias, **claim_of(app, code))

    assert claimed.user.pk == user.pk and isinstance(claimed.user, type(user))
    assert claimed.scope == "read write"
    with transaction.atomic(using=alias):  # once
        assert code_store.claim(alias, **claim_of(app, code)) is None


def test_the_claim_without_returning_reads_the_row_back(monkeypatch, app, user, token_request):
    """MySQL, MariaDB and Oracle have no UPDATE ... RETURNING."""
    monkeypatch.setattr(code_store, "returns_rows_from_update", lambda alias: False)
    code_store._statements_for.cache_clear()
    try:
        code = issued_code(app, user, scope="read")
        statements = code_store._statements_for(connection.alias, connection.vendor)
        assert "RETURNING" not in statements.claim
        wrong = exchange(token_request, app, code, code_verifier="w" * 43)
        pair = pair_of(exchange(token_request, app, code).json())
    finally:
        code_store._statements_for.cache_clear()
    assert wrong.json()["error"] == "invalid_grant"
    assert pair.user_id == user.pk and pair.scope == "read"


def claim_of(app: Client, code: str) -> dict:
    return {
        "digest": credentials.digest(code),
        "client_pk": app.pk,
        "redirect_uri": CALLBACK,
        "challenge": CHALLENGE,
        "now": datetime.now(timezone.utc),
        "family_id": uuid.uuid4(),
    }


# -- Secrets stay out of logs ------------------------------------------------------------------


def test_the_code_is_never_logged(logged_in, app, token_request, caplog):
    caplog.set_level(logging.DEBUG)
    code = approve(logged_in, app)["code"]
    exchange(token_request, app, code)
    exchange(token_request, app, code)  # a replay: logged refusals, if any

    assert caplog.records  # the refusals are logged (django.request warnings)
    assert code not in caplog.text
    assert VERIFIER not in caplog.text


# -- The metadata ---------------------------------------------------------------------------


def test_metadata_passes_authlib_validation_in_full(client, db):
    metadata = client.get("/auth/.well-known/oauth-authorization-server", secure=True).json()

    AuthorizationServerMetadata(metadata).validate()

    assert metadata["authorization_endpoint"] == "https://testserver/auth/authorize/"
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "authorization_code" in metadata["grant_types_supported"]


# -- Units ------------------------------------------------------------------------------------


def test_pkce_s256_matches_rfc_7636_appendix_b():
    assert pkce.s256_challenge(VERIFIER) == CHALLENGE
    assert pkce.challenge_problem(CHALLENGE) is None
    assert pkce.challenge_for(VERIFIER) == CHALLENGE


@pytest.mark.parametrize(
    ("verifier", "ok"),
    [
        ("a" * 43, True),
        ("a" * 128, True),
        ("-._~" * 11, True),
        ("a" * 42, False),
        ("a" * 129, False),
        ("a" * 42 + "=", False),
        ("a" * 42 + " ", False),
        ("a" * 42 + "é", False),
        ("", False),
    ],
)
def test_pkce_verifier_shape(verifier, ok):
    challenge = pkce.b64url(hashlib.sha256(verifier.encode()).digest())

    assert (pkce.challenge_for(verifier) == challenge) is ok


def test_pkce_a_verifier_answers_only_its_own_challenge():
    assert pkce.challenge_for("a" * 43) != CHALLENGE
    assert pkce.challenge_for(VERIFIER) != pkce.s256_challenge("b" * 43)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://a.example/cb", "https://a.example/cb?code=c&state=s+t"),
        ("https://a.example/cb?x=1", "https://a.example/cb?x=1&code=c&state=s+t"),
        ("https://a.example/cb?", "https://a.example/cb?code=c&state=s+t"),
        ("https://a.example/cb?x=1&", "https://a.example/cb?x=1&code=c&state=s+t"),
        ("com.example.app:/cb", "com.example.app:/cb?code=c&state=s+t"),
    ],
)
def test_with_parameters_keeps_the_query(uri, expected):
    assert with_parameters(uri, {"code": "c", "state": "s t"}) == expected
