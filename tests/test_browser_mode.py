"""Browser mode: the refresh token in an HttpOnly cookie, and CORS for the client's origins.

HTTP tests of every rule (docs/browser-mode.md): the cookie's attributes read
from the ``Set-Cookie`` header itself, refreshing from it with and without a
registered ``Origin``, every bad input, the refusals and logouts that clear
it, and the CORS answers per origin and for preflights. The last test checks
in Chromium that the cookie works as these headers intend.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from chromium import chromium_context
from conftest import FORM, PASSWORD, error_report
from django.test import Client as HttpClient
from django.utils.http import http_date
from freezegun import freeze_time

from token_lifecycle import authorization_codes, credentials, pkce, services
from token_lifecycle.models import Client, TokenPair
from token_lifecycle.rules import RevokeReason

TOKEN_URL = "/auth/token/"
REVOKE_URL = "/auth/token/revoke/"
INTROSPECT_URL = "/auth/token/introspect/"
COOKIE = "tl_refresh"
ORIGIN = "https://app.example.test"
SECOND_ORIGIN = "http://localhost:5173"
T0 = datetime(2031, 5, 4, 8, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
GRACE = timedelta(hours=6)
REFRESH_SECONDS = 30 * 24 * 3600
CLEARED = {
    "value": '""',  # what Django writes for an empty value
    "expires": "Thu, 01 Jan 1970 00:00:00 GMT",
    "httponly": True,
    "max-age": "0",
    "path": TOKEN_URL,
    "samesite": "Strict",
    "secure": True,
}
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Max-Age",
    "Access-Control-Expose-Headers",
)


# -- Helpers ------------------------------------------------------------------------


def set_cookies(response) -> dict[str, dict]:
    """Every ``Set-Cookie`` header of ``response``, parsed: name -> value and attributes.

    Read from the header line the response sends for each (one per name), split
    on ``;`` by hand rather than through the cookie jar that wrote it, attribute
    names lower-cased.
    """
    found: dict[str, dict] = {}
    for morsel in response.cookies.values():
        line = morsel.output(header="Set-Cookie:").removeprefix("Set-Cookie:").strip()
        first, *attributes = [part.strip() for part in line.split(";")]
        name, _, value = first.partition("=")
        parsed: dict = {"value": value}
        for attribute in attributes:
            key, separator, attribute_value = attribute.partition("=")
            parsed[key.lower()] = attribute_value if separator else True
        found[name] = parsed
    return found


def refresh_cookie_of(response) -> dict:
    cookies = set_cookies(response)
    assert list(cookies) == [COOKIE], cookies
    return cookies[COOKIE]


def assert_no_cors(response) -> None:
    present = [name for name in CORS_HEADERS if response.has_header(name)]
    assert present == [], present
    assert "Origin" in response["Vary"]


def assert_refused(response, status: int, error: str, reason: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error
    assert body.get("reason") == reason
    return body


def pair_of(refresh_token: str) -> TokenPair:
    return TokenPair.objects.get(refresh_token_digest=credentials.digest(refresh_token))


@pytest.fixture
def frozen():
    with freeze_time(T0) as frozen:
        yield frozen


@pytest.fixture
def spa(make_client) -> Client:
    """A public browser-mode client of ``ORIGIN`` and ``SECOND_ORIGIN``, password grant."""
    client, _ = make_client(
        "spa",
        public=True,
        grant_types="password authorization_code",
        redirect_uris=f"{ORIGIN}/callback",
        refresh_token_in_cookie=True,
        allowed_origins=f"{ORIGIN}\n{SECOND_ORIGIN}",
    )
    return client


@pytest.fixture
def browser(db) -> HttpClient:
    """A Django test client: it keeps the cookies responses set, as a browser does."""
    return HttpClient()


def post(browser: HttpClient, url: str, params: dict, *, origin: str | None = ORIGIN, **extra):
    headers = {"HTTP_ORIGIN": origin} if origin is not None else {}
    return browser.post(url, urlencode(params), content_type=FORM, **headers, **extra)


def log_in(browser: HttpClient, client: Client, *, origin: str | None = ORIGIN):
    params = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    return post(browser, TOKEN_URL, {**params, "client_id": client.client_id}, origin=origin)


def refresh(browser: HttpClient, client: Client, *, origin: str | None = ORIGIN, **params):
    body = {"grant_type": "refresh_token", "client_id": client.client_id, **params}
    return post(browser, TOKEN_URL, body, origin=origin)


def cookie_value(browser: HttpClient) -> str:
    return browser.cookies[COOKIE].value


# -- Token responses set the cookie --------------------------------------------------


def test_a_login_puts_the_refresh_token_in_the_cookie_only(browser, spa, user, frozen):
    response = log_in(browser, spa)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_expires_in"}
    assert body["refresh_expires_in"] == REFRESH_SECONDS
    cookie = refresh_cookie_of(response)
    assert cookie == {
        "value": cookie["value"],
        "expires": http_date((T0 + 30 * DAY).timestamp()),
        "httponly": True,
        "max-age": str(REFRESH_SECONDS),
        "path": TOKEN_URL,
        "samesite": "Strict",
        "secure": True,
    }
    pair = pair_of(cookie["value"])
    assert pair.user == user and pair.client == spa
    assert cookie["value"] not in response.content.decode()


def test_max_age_is_the_refresh_tokens_remaining_life(browser, spa, user, frozen, lifecycle):
    """Capped by the session end, as the refresh token is; and after a refresh, what is left."""
    lifecycle(MAX_SESSION_LIFETIME=timedelta(hours=2))
    first = refresh_cookie_of(log_in(browser, spa))
    assert first["max-age"] == "7200"
    frozen.tick(timedelta(minutes=30, seconds=7))

    response = refresh(browser, spa)

    assert response.status_code == 200, response.content
    assert response.json()["refresh_expires_in"] == 7200 - 1807
    second = refresh_cookie_of(response)
    assert second["max-age"] == str(7200 - 1807)
    assert second["expires"] == http_date((T0 + timedelta(hours=2)).timestamp())


def test_the_authorization_code_grant_sets_the_cookie(browser, spa, user, frozen):
    verifier = secrets.token_urlsafe(48)
    code = authorization_codes.issue(
        client=spa,
        user=user,
        redirect_uri=f"{ORIGIN}/callback",
        scope="",
        code_challenge=pkce.s256_challenge(verifier),
    )
    params = {
        "grant_type": "authorization_code",
        "client_id": spa.client_id,
        "code": code,
        "redirect_uri": f"{ORIGIN}/callback",
        "code_verifier": verifier,
    }

    response = post(browser, TOKEN_URL, params)

    assert response.status_code == 200, response.content
    assert "refresh_token" not in response.json()
    assert pair_of(refresh_cookie_of(response)["value"]).user == user


@pytest.mark.parametrize("refreshable", [True, False])
def test_client_credentials_sets_the_cookie_only_with_a_refresh_token(
    browser, make_client, frozen, refreshable
):
    client, secret = make_client(
        "console",
        grant_types="client_credentials",
        client_credentials_refresh=refreshable,
        refresh_token_in_cookie=True,
        allowed_origins=ORIGIN,
    )
    params = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
    }

    response = post(browser, TOKEN_URL, params)

    assert response.status_code == 200, response.content
    assert "refresh_token" not in response.json()
    if refreshable:
        assert response.json()["refresh_expires_in"] == REFRESH_SECONDS
        assert refresh_cookie_of(response)["max-age"] == str(REFRESH_SECONDS)
    else:
        assert "refresh_expires_in" not in response.json()
        assert set_cookies(response) == {}


def test_a_client_not_in_browser_mode_gets_no_cookie(browser, oauth_client, user):
    client, secret = oauth_client
    params = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    response = post(
        browser, TOKEN_URL, {**params, "client_id": client.client_id, "client_secret": secret}
    )

    assert response.status_code == 200
    assert "refresh_token" in response.json()
    assert set_cookies(response) == {}


def test_the_cookie_name_is_a_setting(browser, spa, user, lifecycle):
    lifecycle(REFRESH_COOKIE_NAME="__Secure-spa")
    response = log_in(browser, spa)

    assert list(set_cookies(response)) == ["__Secure-spa"]
    assert refresh(browser, spa).status_code == 200


# -- Refreshing from the cookie ------------------------------------------------------


@pytest.mark.parametrize("origin", [ORIGIN, SECOND_ORIGIN])
def test_a_refresh_from_a_registered_origin_uses_the_cookie(browser, spa, user, frozen, origin):
    log_in(browser, spa)
    first = cookie_value(browser)

    response = refresh(browser, spa, origin=origin)

    assert response.status_code == 200, response.content
    assert set(response.json()) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
    }
    second = refresh_cookie_of(response)["value"]
    assert second != first
    assert pair_of(second).parent == pair_of(first)
    assert pair_of(first).rotated_at == T0


def test_a_refresh_token_in_the_body_still_works_and_moves_to_the_cookie(
    browser, spa, user, frozen
):
    """A page that kept a body token (the client was switched to browser mode) carries on."""
    issued = services.issue_pair(
        client=spa, user=user, issuer="http://testserver/auth", grant_type="password"
    )

    response = refresh(browser, spa, origin=None, refresh_token=issued.refresh_token)

    assert response.status_code == 200, response.content
    assert "refresh_token" not in response.json()
    assert pair_of(refresh_cookie_of(response)["value"]).parent == issued.pair


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "https://evil.example.test",
        "null",
        ORIGIN + "/",
        ORIGIN.upper(),
        ORIGIN + ":443",
        "http://app.example.test",
        f"{ORIGIN} {SECOND_ORIGIN}",
        "x" * 100_000,
    ],
    ids=["none", "other", "null", "slash", "case", "port", "scheme", "two", "huge"],
)
def test_a_cookie_refresh_needs_a_registered_origin(browser, spa, user, origin):
    log_in(browser, spa)
    pairs = TokenPair.objects.count()

    response = refresh(browser, spa, origin=origin)

    body = assert_refused(response, 400, "invalid_request")
    assert "Origin" in body["error_description"]
    assert TokenPair.objects.count() == pairs
    assert TokenPair.objects.get().rotated_at is None
    assert set_cookies(response) == {}  # the cookie is left alone
    assert_no_cors(response)


def test_both_a_cookie_and_a_parameter_are_refused(browser, spa, user):
    log_in(browser, spa)

    response = refresh(browser, spa, refresh_token=cookie_value(browser))

    body = assert_refused(response, 400, "invalid_request")
    assert "not both" in body["error_description"]
    assert TokenPair.objects.get().rotated_at is None
    assert set_cookies(response) == {}


def test_no_cookie_and_no_parameter(browser, spa, user):
    response = refresh(browser, spa)

    body = assert_refused(response, 400, "invalid_request")
    assert "refresh cookie" in body["error_description"]


def test_a_cookie_of_another_client_is_invalid_grant_and_kept(
    browser, spa, make_client, user, frozen
):
    other, _ = make_client(
        "other-spa",
        public=True,
        refresh_token_in_cookie=True,
        allowed_origins=ORIGIN,
    )
    log_in(browser, other)
    theirs = cookie_value(browser)

    response = refresh(browser, spa)

    assert_refused(response, 400, "invalid_grant", "invalid")
    assert set_cookies(response) == {}  # it may be the other app's session: not ours to end
    assert pair_of(theirs).rotated_at is None
    assert refresh(browser, other).status_code == 200


@pytest.mark.parametrize(
    ("cookie", "status", "error"),
    [
        pytest.param(
            lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
            400,
            "invalid_grant",
            id="tampered",
        ),
        pytest.param(lambda token: token + "x" * 5000, 400, "invalid_request", id="oversized"),
        pytest.param(
            lambda token: "rt_" + "é\u00ff\x01" * 10, 400, "invalid_grant", id="latin1-garbage"
        ),
        pytest.param(lambda token: "a.b.c", 400, "invalid_grant", id="jwt-shaped"),
        pytest.param(lambda token: '"' + token + '"', 400, "invalid_grant", id="quoted"),
    ],
)
def test_a_bad_cookie_gets_a_clear_4xx(browser, spa, user, cookie, status, error):
    log_in(browser, spa)
    token = cookie_value(browser)
    browser.cookies[COOKIE] = cookie(token)
    pairs = TokenPair.objects.count()

    response = refresh(browser, spa)

    body = assert_refused(response, status, error, "invalid" if error == "invalid_grant" else None)
    assert token not in json.dumps(body)
    assert TokenPair.objects.count() == pairs
    assert set_cookies(response) == {}


def test_an_access_token_in_the_cookie_is_refused(browser, spa, user):
    access_token = log_in(browser, spa).json()["access_token"]
    browser.cookies[COOKIE] = access_token

    response = refresh(browser, spa)

    assert_refused(response, 400, "invalid_grant", "invalid")
    assert access_token not in response.content.decode()


def test_a_client_not_in_browser_mode_ignores_the_cookie(browser, spa, make_client, user):
    plain, _ = make_client("plain-spa", public=True, allowed_origins=ORIGIN)
    log_in(browser, spa)  # the browser holds a cookie of the browser-mode client

    without = refresh(browser, plain)
    body = log_in(browser, plain).json()
    with_parameter = refresh(browser, plain, refresh_token=body["refresh_token"])

    assert_refused(without, 400, "invalid_request")
    assert "refresh cookie" not in without.json()["error_description"]
    assert with_parameter.status_code == 200, with_parameter.content
    assert "refresh_token" in with_parameter.json()
    assert set_cookies(with_parameter) == {}


# -- The rules of the lifecycle, unchanged; refusals that end the cookie ---------------


def test_grace_and_reuse_detection_apply_and_the_reuse_clears_the_cookie(
    browser, spa, user, frozen
):
    log_in(browser, spa)
    first = cookie_value(browser)
    assert refresh(browser, spa).status_code == 200
    browser.cookies[COOKIE] = first
    frozen.tick(GRACE - timedelta(seconds=1))
    assert refresh(browser, spa).status_code == 200  # inside the grace window: another pair
    browser.cookies[COOKIE] = first
    frozen.tick(timedelta(seconds=1))

    response = refresh(browser, spa)

    assert_refused(response, 400, "invalid_grant", "reuse_detected")
    assert refresh_cookie_of(response) == CLEARED
    family = TokenPair.objects.filter(family_id=pair_of(first).family_id)
    assert family.count() == 3
    assert not TokenPair.objects.live(T0 + GRACE).filter(family_id=pair_of(first).family_id)
    assert set(family.exclude(pk=pair_of(first).pk).values_list("revoke_reason", flat=True)) == {
        RevokeReason.REUSE_DETECTED
    }


def test_the_cap_applies_to_cookie_logins(browser, spa, user, lifecycle):
    lifecycle(MAX_PAIRS_PER_CLIENT=2)
    for _ in range(3):
        assert log_in(HttpClient(), spa).status_code == 200

    assert TokenPair.objects.filter(revoke_reason=RevokeReason.EVICTED).count() == 1


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda pair, frozen: services.revoke_pair(pair, RevokeReason.ADMIN), "revoked"),
        (lambda pair, frozen: frozen.tick(30 * DAY), "expired"),
        (lambda pair, frozen: frozen.tick(timedelta(hours=1)), "session_ended"),
    ],
    ids=["revoked", "expired", "session_ended"],
)
def test_a_refresh_refused_for_good_clears_the_cookie(
    browser, spa, user, frozen, lifecycle, setup, reason
):
    if reason == "session_ended":
        lifecycle(MAX_SESSION_LIFETIME=timedelta(hours=1))
    log_in(browser, spa)
    setup(pair_of(cookie_value(browser)), frozen)

    response = refresh(browser, spa)

    assert_refused(response, 400, "invalid_grant", reason)
    assert refresh_cookie_of(response) == CLEARED


def test_a_refused_body_token_leaves_the_cookie_alone(browser, spa, user, frozen):
    """Only the cookie's own death clears it: a dead token sent in the body says nothing of it."""
    dead = services.issue_pair(
        client=spa, user=user, issuer="http://testserver/auth", grant_type="password"
    )
    services.revoke_pair(dead.pair, RevokeReason.ADMIN)

    response = refresh(browser, spa, origin=None, refresh_token=dead.refresh_token)

    assert_refused(response, 400, "invalid_grant", "revoked")
    assert set_cookies(response) == {}


# -- Logout and revocation clear the cookie ------------------------------------------


@pytest.mark.parametrize("url", ["/auth/logout/", "/auth/logout-all/"])
def test_logout_clears_the_cookie(browser, spa, user, url):
    access_token = log_in(browser, spa).json()["access_token"]
    pair = pair_of(cookie_value(browser))

    response = browser.post(url, HTTP_AUTHORIZATION=f"Bearer {access_token}")

    assert response.status_code == 200, response.content
    assert response.json() == {"revoked": 1}
    assert refresh_cookie_of(response) == CLEARED
    pair.refresh_from_db()
    assert pair.revoked_at is not None


def test_logout_of_a_client_not_in_browser_mode_sets_no_cookie(login, client):
    access_token = login()["access_token"]

    response = client.post("/auth/logout/", HTTP_AUTHORIZATION=f"Bearer {access_token}")

    assert response.status_code == 200
    assert set_cookies(response) == {}


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_revoking_a_cookie_pair_clears_the_cookie(browser, spa, user, which):
    access_token = log_in(browser, spa).json()["access_token"]
    token = {"access_token": access_token, "refresh_token": cookie_value(browser)}[which]

    response = post(browser, REVOKE_URL, {"token": token, "client_id": spa.client_id})

    assert response.status_code == 200
    assert refresh_cookie_of(response) == CLEARED
    assert TokenPair.objects.get().revoke_reason == RevokeReason.REVOCATION_ENDPOINT
    assert response["Access-Control-Allow-Origin"] == ORIGIN


def test_revoking_an_unknown_or_foreign_token_sets_no_cookie(browser, spa, login, user):
    foreign = login()["refresh_token"]  # of the confidential oauth_client

    unknown = post(browser, REVOKE_URL, {"token": "rt_nothing", "client_id": spa.client_id})
    other = post(browser, REVOKE_URL, {"token": foreign, "client_id": spa.client_id})

    for response in (unknown, other):
        assert response.status_code == 200
        assert set_cookies(response) == {}
    assert pair_of(foreign).revoked_at is None


# -- Error reports -------------------------------------------------------------------


def crash(*args, **kwargs):
    raise RuntimeError("the service layer crashed")


@pytest.mark.parametrize(
    ("url", "target"),
    [(TOKEN_URL, "refresh_pair"), (REVOKE_URL, "pair_for_token")],
    ids=["token", "revoke"],
)
def test_a_crash_reports_no_refresh_cookie(browser, spa, user, monkeypatch, url, target):
    """Django's reports list the request's cookies, hiding only names that look secret."""
    log_in(browser, spa)
    token = cookie_value(browser)
    monkeypatch.setattr(services, target, crash)
    params = {"grant_type": "refresh_token", "token": "rt_x", "client_id": spa.client_id}

    with error_report() as reports, pytest.raises(RuntimeError):
        post(browser, url, params)

    assert reports and all("the service layer crashed" in report for report in reports)
    assert all(COOKIE in report for report in reports)  # listed, with its value hidden
    assert not [report for report in reports if token in report]


# -- CORS ----------------------------------------------------------------------------


def test_cors_for_a_registered_origin(browser, spa, user):
    response = log_in(browser, spa)

    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert response["Access-Control-Expose-Headers"] == "Retry-After, WWW-Authenticate"
    assert "Origin" in response["Vary"]
    assert not response.has_header("Access-Control-Allow-Methods")


def test_cors_on_a_refusal_lets_the_page_read_it(browser, spa, user):
    response = refresh(browser, spa, refresh_token="rt_unknown")

    assert_refused(response, 400, "invalid_grant", "invalid")
    assert response["Access-Control-Allow-Origin"] == ORIGIN


def test_cors_before_the_client_is_known_for_an_origin_someone_registered(browser, spa):
    response = post(browser, TOKEN_URL, {"grant_type": "refresh_token", "client_id": "nobody"})

    assert_refused(response, 401, "invalid_client")
    assert response["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize(
    "origin", [None, "https://evil.example.test", "null", ORIGIN + "/", "\x00\xff" * 50]
)
def test_no_cors_for_any_other_origin(browser, spa, user, origin):
    response = log_in(browser, spa, origin=origin)

    assert response.status_code == 200
    assert_no_cors(response)


def test_no_cors_for_the_origin_of_another_client(browser, spa, oauth_client, user):
    """Authenticated as a client not in browser mode: that ``ORIGIN`` is the SPA's is no matter."""
    client, secret = oauth_client
    params = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    response = post(
        browser, TOKEN_URL, {**params, "client_id": client.client_id, "client_secret": secret}
    )

    assert response.status_code == 200
    assert_no_cors(response)


def preflight(browser: HttpClient, url: str, origin: str, **extra):
    return browser.options(
        url,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
        **extra,
    )


@pytest.mark.parametrize("url", [TOKEN_URL, REVOKE_URL])
@pytest.mark.parametrize("origin", [ORIGIN, SECOND_ORIGIN])
def test_a_preflight_from_a_registered_origin(
    browser, spa, url, origin, django_assert_num_queries
):
    with django_assert_num_queries(1):
        response = preflight(browser, url, origin)

    assert response.status_code == 204
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == origin
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert response["Access-Control-Allow-Methods"] == "POST"
    assert response["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert response["Access-Control-Max-Age"] == "600"
    assert "Origin" in response["Vary"]


@pytest.mark.parametrize(
    ("origin", "fields"),
    [
        ("https://evil.example.test", {}),
        (ORIGIN, {"is_active": False}),
        (ORIGIN, {"refresh_token_in_cookie": False}),
        ("https://app.example", {}),  # a prefix of a registered origin
        ("https://APP.example.test", {}),
    ],
    ids=["unregistered", "inactive-client", "not-browser-mode", "prefix", "case"],
)
def test_a_preflight_from_any_other_origin_gets_no_cors(browser, spa, origin, fields):
    Client.objects.filter(pk=spa.pk).update(**fields)

    response = preflight(browser, TOKEN_URL, origin)

    assert response.status_code == 204
    assert_no_cors(response)


@pytest.mark.parametrize("origin", ["null", "x" * 100_000, "https://a.test/path", "\x00"])
def test_a_malformed_origin_is_never_looked_up(browser, spa, origin, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = preflight(browser, TOKEN_URL, origin)

    assert response.status_code == 204
    assert_no_cors(response)


def test_introspection_answers_no_cors(browser, spa):
    response = preflight(browser, INTROSPECT_URL, ORIGIN)

    assert not response.has_header("Access-Control-Allow-Origin")


def test_an_options_request_that_is_no_preflight_is_answered_as_before(browser, spa):
    response = browser.options(TOKEN_URL)

    assert response.status_code == 200
    assert response.json()["name"] == "Token"


# -- In Chromium ---------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_chromium_keeps_the_cookie_over_plain_http_on_loopback(
    live_server, make_client, make_user, monkeypatch
):
    """What the headers above mean to a real browser, on ``http://localhost`` and ``127.0.0.1``.

    Chromium counts loopback hosts as secure: it keeps the ``Secure`` cookie
    over plain HTTP, hides it from ``document.cookie``, sends it to the token
    endpoint (the refresh needs nothing else), and drops it at logout, whose
    answer comes from another path.
    """
    pytest.importorskip("playwright.sync_api")
    make_user("alice")
    port = live_server.url.rsplit(":", 1)[1]
    hosts = ["localhost", "127.0.0.1"]
    spa, _ = make_client(
        "spa",
        public=True,
        refresh_token_in_cookie=True,
        allowed_origins="\n".join(f"http://{host}:{port}" for host in hosts),
    )
    post = """async ([url, params, headers]) => {
        const response = await fetch(url, {method: "POST", body: new URLSearchParams(params),
            headers: {"Content-Type": "application/x-www-form-urlencoded", ...headers}});
        return {status: response.status, body: await response.json()};
    }"""
    login = {"grant_type": "password", "client_id": spa.client_id}
    login.update(username="alice", password=PASSWORD)
    refresh_params = {"grant_type": "refresh_token", "client_id": spa.client_id}
    for host in hosts:
        with chromium_context(monkeypatch) as context:
            page = context.new_page()
            page.goto(f"http://{host}:{port}/auth/.well-known/jwks.json")

            logged_in = page.evaluate(post, [TOKEN_URL, login, {}])
            [stored] = context.cookies()
            refreshed = page.evaluate(post, [TOKEN_URL, refresh_params, {}])
            [rotated] = context.cookies()
            readable = page.evaluate("document.cookie")
            bearer = {"Authorization": "Bearer " + refreshed["body"]["access_token"]}
            logged_out = page.evaluate(post, ["/auth/logout/", {}, bearer])
            left = context.cookies()
            after_logout = page.evaluate(post, [TOKEN_URL, refresh_params, {}])

        assert logged_in["status"] == 200, (host, logged_in)
        assert "refresh_token" not in logged_in["body"]
        assert (stored["name"], stored["domain"], stored["path"]) == (COOKIE, host, TOKEN_URL)
        assert (stored["httpOnly"], stored["secure"], stored["sameSite"]) == (
            True,
            True,
            "Strict",
        )
        assert refreshed["status"] == 200, (host, refreshed)  # the cookie alone sufficed
        assert rotated["value"] != stored["value"]
        assert pair_of(rotated["value"]).parent == pair_of(stored["value"])
        assert readable == ""  # HttpOnly: no script of the page sees it
        assert logged_out["status"] == 200, (host, logged_out)
        assert left == []  # cleared by an answer from another path than its own
        assert after_logout["status"] == 400
        assert after_logout["body"]["error"] == "invalid_request"
    assert TokenPair.objects.filter(client=spa, revoke_reason=RevokeReason.LOGOUT).count() == 2


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_chromium_cors_for_a_page_on_another_origin_of_the_site(
    live_server, make_client, make_user, monkeypatch
):
    """A page on ``localhost:<other port>`` (another origin, the same site) calls the API.

    JSON bodies make Chromium send a preflight. From the registered origin the
    page reads every answer, and the cookie is stored and sent with
    ``credentials: "include"``; from an unregistered one the preflight fails,
    so the token request is never sent.
    """
    pytest.importorskip("playwright.sync_api")
    make_user("alice")
    pages = [_page_server(), _page_server()]
    registered, unregistered = (f"http://localhost:{server.server_address[1]}" for server in pages)
    spa, _ = make_client(
        "spa", public=True, refresh_token_in_cookie=True, allowed_origins=registered
    )
    api = live_server.url.replace("127.0.0.1", "localhost") + TOKEN_URL
    post = """async ([url, params]) => {
        try {
            const response = await fetch(url, {method: "POST", credentials: "include",
                headers: {"Content-Type": "application/json"}, body: JSON.stringify(params)});
            return {status: response.status, body: await response.json()};
        } catch (error) { return {failed: error.name}; }
    }"""
    login = {"grant_type": "password", "client_id": spa.client_id}
    login.update(username="alice", password=PASSWORD)
    refresh_params = {"grant_type": "refresh_token", "client_id": spa.client_id}

    try:
        with chromium_context(monkeypatch) as context:
            page = context.new_page()
            page.goto(unregistered + "/")
            refused = page.evaluate(post, [api, login])
            pairs_after_refused = TokenPair.objects.count()
            page.goto(registered + "/")
            logged_in = page.evaluate(post, [api, login])
            [stored] = context.cookies()
            refreshed = page.evaluate(post, [api, refresh_params])
    finally:
        for server in pages:
            server.shutdown()

    assert refused == {"failed": "TypeError"}
    assert pairs_after_refused == 0
    assert logged_in["status"] == 200, logged_in
    assert "refresh_token" not in logged_in["body"]
    assert (stored["name"], stored["domain"], stored["path"]) == (COOKIE, "localhost", TOKEN_URL)
    assert refreshed["status"] == 200, refreshed
    assert pair_of(stored["value"]).rotated_at is not None


def _page_server():
    """An empty page on a port of its own: an origin that is not the API's."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class EmptyPage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<!doctype html><title>page</title>")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), EmptyPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
