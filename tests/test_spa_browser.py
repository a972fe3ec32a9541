"""The browser-mode example page (/spa/) in a real browser: Debian's Chromium driven by Playwright.

One person's path through ``example_project/spa/``, against the live example
server: log in through the code flow with PKCE, call the API, outlive a
four-second access token by the page's silent refreshes from the HttpOnly
cookie, reload and stay logged in, log out, reload and stay logged out. Along
the way no token is readable by the page's scripts outside its memory:
``document.cookie``, ``localStorage`` and ``sessionStorage`` are checked.

A second run copies the refresh cookie out of the browser, lets the page
rotate it, and replays the superseded token after the grace window: the
family is revoked for reuse and the page falls back to its logged-out state.

A few HTTP tests first check how the page's files and its configuration are
served (with ``DEBUG`` off, under a strict content security policy).

The screenshot of the logged-in page goes to ``test-artifacts/spa.png`` (and,
with ``UPDATE_SCREENSHOTS=1``, to ``docs/screenshots/spa.png``).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta

import httpx
import jwt
import pytest
from chromium import chromium_context, save_screenshot
from conftest import PASSWORD

from token_lifecycle import clock, credentials
from token_lifecycle.models import Client, TokenPair
from token_lifecycle.rules import RevokeReason

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the dev extra is not installed: the browser tests skip, see browser_page
    if os.environ.get("TOKEN_LIFECYCLE_REQUIRE_BROWSER") == "1":
        raise
    expect = sync_playwright = None


COOKIE = "tl_refresh"
TOKEN_PATH = "/auth/token/"
ACCESS_LIFETIME = timedelta(seconds=4)
#: Long enough for several of the page's refreshes (one every 3.2 s) and a reload.
WAIT_MS = 15_000
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


# -- Fixtures -------------------------------------------------------------------------


@pytest.fixture
def origin(live_server) -> str:
    """The live server as ``http://127.0.0.1:<port>``.

    pytest-django starts it on ``localhost`` unless told otherwise, which binds
    127.0.0.1; the page is opened by that address, as the demo's, because a
    loopback redirect URI must be an IP literal (RFC 8252 §8.3) and the page's
    origin must be the client's allowed origin character for character.
    """
    return f"http://127.0.0.1:{live_server.thread.port}"


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def spa_client(make_client, origin):
    """The "Demo SPA" of ``demo_setup``, for this server's port, with 4-second access tokens.

    /spa/config.json finds it by that name.
    """

    def make(**overrides) -> Client:
        client, _ = make_client(
            "Demo SPA",
            public=True,
            grant_types="authorization_code",
            redirect_uris=f"{origin}/spa/",
            skip_consent=True,
            refresh_token_in_cookie=True,
            allowed_origins=origin,
            access_token_lifetime=ACCESS_LIFETIME,
            **overrides,
        )
        return client

    return make


@pytest.fixture
def browser_page(origin, monkeypatch):
    """A fresh Chromium page on the live server; never downloads a browser.

    Yields ``(page, problems)``: ``problems`` collects the page's uncaught errors
    and content security policy violations, which the tests expect to be none.
    """
    if sync_playwright is None:
        pytest.skip("needs the playwright package: pip install -e '.[dev]'")
    options = {"viewport": {"width": 1000, "height": 720}, "base_url": origin}
    with chromium_context(monkeypatch, timezone_id="UTC", **options) as context:
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        yield page, problems


# -- Helpers --------------------------------------------------------------------------


def is_token_post(response) -> bool:
    return response.request.method == "POST" and response.url.endswith(TOKEN_PATH)


def refresh_cookie(page) -> dict | None:
    found = [cookie for cookie in page.context.cookies() if cookie["name"] == COOKIE]
    assert len(found) <= 1, found
    return found[0] if found else None


def pair_of(refresh_token: str) -> TokenPair:
    return TokenPair.objects.get(refresh_token_digest=credentials.digest(refresh_token))


def pair_id_of(access_token: str) -> str:
    """The pair an access token belongs to (its ``jti``); the signature is not the point here."""
    return jwt.decode(access_token, options={"verify_signature": False})["jti"]


def logged_out_heading(page):
    return page.get_by_role("heading", name="You are logged out")


def assert_scripts_see_no_token(page, tokens: list[str]) -> None:
    """``document.cookie`` and both storages hold none of ``tokens``, nor anything token-like.

    Every key and value is read; sessionStorage must be empty once the page is
    back from the authorization endpoint (the PKCE verifier and state are gone).
    """
    seen = page.evaluate(
        """() => ({
            cookie: document.cookie,
            local: Object.entries(localStorage),
            session: Object.entries(sessionStorage),
        })"""
    )
    assert COOKIE not in seen["cookie"]
    assert seen["session"] == []
    for text in [seen["cookie"], *(part for entry in seen["local"] for part in entry)]:
        assert not JWT.search(text), text
        assert credentials.REFRESH_TOKEN_PREFIX not in text, text
        assert not any(token in text for token in tokens)


def log_in(page, origin: str, username: str = "alice"):
    """From the logged-out page through the login page and back; the code exchange's answer."""
    page.goto("/spa/")
    expect(logged_out_heading(page)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You are not logged in.")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/auth/authorize/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(is_token_post, timeout=WAIT_MS) as exchange:
        page.get_by_role("button", name="Sign in").click()
    # skip_consent: straight back to the page, the code already gone from its URL.
    expect(page).to_have_url(f"{origin}/spa/")
    expect(page.locator("#username")).to_have_text(username)
    return exchange.value


# -- The page's files and configuration, over HTTP -----------------------------------


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/spa/", "text/html; charset=utf-8"),
        ("/spa/spa.js", "text/javascript; charset=utf-8"),
        ("/spa/spa.css", "text/css; charset=utf-8"),
    ],
)
def test_the_page_is_served_with_a_strict_policy_without_debug(
    client, settings, url, content_type
):
    settings.DEBUG = False
    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response["Referrer-Policy"] == "no-referrer"


def test_the_page_loads_its_script_from_a_file_only(client):
    html = client.get("/spa/").content.decode()

    assert '<script src="/spa/spa.js" defer></script>' in html
    assert html.count("<script") == 1
    assert not re.search(r"<[^>]*\son\w+\s*=", html)  # no inline handlers (onclick=)


@pytest.mark.parametrize("name", ["views.py", "__init__.py", "..%2Fsettings.py", "index.htm"])
def test_no_other_file_is_served(client, name):
    assert client.get(f"/spa/{name}").status_code == 404


@pytest.fixture
def demo_spa(make_client) -> Client:
    """The "Demo SPA" of ``demo_setup``, for tests without a live server."""
    client, _ = make_client(
        "Demo SPA",
        public=True,
        grant_types="authorization_code",
        redirect_uris="http://127.0.0.1:8000/spa/",
        skip_consent=True,
        refresh_token_in_cookie=True,
        allowed_origins="http://127.0.0.1:8000",
    )
    return client


def test_the_configuration_names_the_demo_spa_client(client, demo_spa):
    spa = demo_spa
    Client.objects.create(name="Demo SPA", owner=spa.owner, is_active=False)  # ignored

    answer = client.get("/spa/config.json", HTTP_HOST="127.0.0.1:8000")

    assert answer.status_code == 200
    assert answer.json() == {
        "client_id": spa.client_id,
        "issuer": "http://127.0.0.1:8000/auth",
        "authorization_endpoint": "/auth/authorize/",
        "token_endpoint": "/auth/token/",
        "logout_endpoint": "/auth/logout/",
        "whoami_endpoint": "/api/whoami/",
    }


def test_the_spa_client_id_setting_wins(client, settings, demo_spa):
    settings.SPA_CLIENT_ID = "configured-id"

    assert client.get("/spa/config.json").json()["client_id"] == "configured-id"


def test_without_the_client_the_configuration_says_what_to_run(client, db):
    answer = client.get("/spa/config.json")

    assert answer.status_code == 503
    assert "demo_setup" in answer.json()["error"]


# -- The scenario in Chromium ---------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_spa_logs_in_refreshes_survives_a_reload_and_logs_out(
    browser_page, origin, alice, spa_client
):
    page, problems = browser_page
    spa = spa_client()
    tokens: list[str] = []

    # 1. Login: the code flow with PKCE; the refresh token comes as a cookie only.
    exchange = log_in(page, origin)
    assert exchange.status == 200
    body = exchange.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_expires_in"}
    assert body["expires_in"] == 4
    tokens.append(body["access_token"])
    assert "code_verifier=" in exchange.request.post_data
    assert exchange.request.all_headers()["origin"] == origin
    first_cookie = refresh_cookie(page)
    assert (first_cookie["httpOnly"], first_cookie["secure"], first_cookie["sameSite"]) == (
        True,
        True,
        "Strict",
    )
    assert first_cookie["path"] == TOKEN_PATH
    tokens.append(first_cookie["value"])
    first_pair = pair_of(first_cookie["value"])
    assert (first_pair.client, first_pair.user) == (spa, alice)

    # 2. whoami: the page called the API with the access token it holds in memory.
    expect(page.get_by_role("status")).to_have_text("Logged in as alice.")
    expect(page.locator("#pair-id")).to_have_text(str(first_pair.pk))
    expect(page.locator("#last-refresh")).to_have_text("not yet")
    expect(page.locator("#session-end")).not_to_have_text("—")
    expect(page.locator("#expires-in")).to_have_text(re.compile(r"^\d s$|^expired$"))
    assert_scripts_see_no_token(page, tokens)

    # 3. Past the 4-second lifetime: the page refreshed from the cookie twice, unasked,
    #    and its whoami answers with the newest pair; the first access token is dead.
    expect(page.locator("#last-refresh")).to_contain_text("(2 so far)", timeout=WAIT_MS)
    second_refresh = TokenPair.objects.get(parent__parent=first_pair)
    expect(page.locator("#pair-id")).to_have_text(str(second_refresh.pk))
    assert pair_of(refresh_cookie(page)["value"]).family_id == first_pair.family_id
    first_access = httpx.get(
        f"{origin}/api/whoami/", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert first_access.status_code == 401
    tokens.append(refresh_cookie(page)["value"])
    assert_scripts_see_no_token(page, tokens)
    save_screenshot(page, "spa.png", full_page=True)

    # 4. A reload: the page has no token left; the cookie alone gives it a new one.
    with page.expect_response(is_token_post, timeout=WAIT_MS) as reloaded:
        page.reload()
    assert reloaded.value.status == 200
    assert "refresh_token=" not in reloaded.value.request.post_data
    new_access = reloaded.value.json()["access_token"]
    tokens.append(new_access)
    after_reload = TokenPair.objects.get(pk=pair_id_of(new_access))
    assert after_reload.family_id == first_pair.family_id
    assert after_reload.pk not in {first_pair.pk, second_refresh.parent_id, second_refresh.pk}
    expect(page.locator("#username")).to_have_text("alice")
    expect(page.locator("#pair-id")).to_have_text(str(after_reload.pk))
    expect(page.locator("#last-refresh")).to_contain_text("(1 so far)")
    assert_scripts_see_no_token(page, tokens)

    # 5. Logout: the pair is revoked and the answer clears the cookie.
    with page.expect_response(lambda r: r.url.endswith("/auth/logout/")) as logout:
        page.get_by_role("button", name="Log out").click()
    assert logout.value.status == 200
    expect(logged_out_heading(page)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You have logged out.")
    assert refresh_cookie(page) is None
    # The page's current pair (logout revokes that one pair, docs/lifecycle.md).
    latest = TokenPair.objects.filter(family_id=first_pair.family_id).latest("issued_at", "pk")
    assert latest.revoke_reason == RevokeReason.LOGOUT

    # 6. A reload after logout: no cookie, so the refresh on load is refused; logged out.
    with page.expect_response(is_token_post, timeout=WAIT_MS) as refused:
        page.reload()
    assert refused.value.status == 400
    assert refused.value.json()["error"] == "invalid_request"
    expect(logged_out_heading(page)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You are not logged in.")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert_scripts_see_no_token(page, tokens)
    assert problems == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_replayed_refresh_cookie_revokes_the_family_and_logs_the_page_out(
    browser_page, origin, alice, spa_client
):
    page, problems = browser_page
    spa_client(refresh_grace_period=timedelta(seconds=2))
    log_in(page, origin)

    # The cookie, copied out of the browser; the page then rotates it once.
    copied = refresh_cookie(page)["value"]
    expect(page.locator("#last-refresh")).to_contain_text("(1 so far)", timeout=WAIT_MS)
    assert refresh_cookie(page)["value"] != copied
    superseded = pair_of(copied)
    assert superseded.refresh_grace_ends_at is not None

    # Past its grace window (by the clock this machine shares with the server)...
    deadline_ms = superseded.refresh_grace_ends_at.timestamp() * 1000 + 200
    page.wait_for_function("deadline => Date.now() > deadline", arg=deadline_ms, timeout=WAIT_MS)

    # ...the copied token is replayed from outside the browser, Origin header and all.
    replay = httpx.post(
        f"{origin}{TOKEN_PATH}",
        data={"grant_type": "refresh_token", "client_id": superseded.client.client_id},
        headers={"Cookie": f"{COOKIE}={copied}", "Origin": origin},
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert replay.json()["reason"] == "reuse_detected"
    assert copied not in replay.text
    # Every pair of the family that was still live is revoked for reuse; the others
    # (rotated, past their grace window, access token expired) were dead already.
    now = clock.now()
    family = TokenPair.objects.filter(family_id=superseded.family_id)
    assert not family.live(now).exists()
    revoked = family.filter(revoked_at__isnull=False)
    assert {pair.revoke_reason for pair in revoked} == {RevokeReason.REUSE_DETECTED}
    assert revoked.filter(pk=family.latest("issued_at", "pk").pk).exists()
    assert all(pair.live_until <= now for pair in family.filter(revoked_at__isnull=True))

    # The page's next refresh is refused for good: the cookie is cleared, the page logs out.
    expect(logged_out_heading(page)).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("status")).to_contain_text("Your session has ended (invalid_grant")
    assert refresh_cookie(page) is None
    page.reload()
    expect(logged_out_heading(page)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You are not logged in.")
    assert problems == []
