"""The authorization code flow with PKCE in a real browser (Debian's Chromium, via Playwright).

A native app's path (RFC 8252): it listens on a loopback port (here a tiny
``http.server`` started by the test), sends the browser to the authorization
URL with an S256 challenge, the person signs in on Django's login page and
approves on the consent page with the keyboard, and the browser lands on
``http://127.0.0.1:{port}/callback?code=...&state=...&iss=...``. The test
reads the code from that URL, exchanges it with the verifier (httpx) and
calls the API.

Also: the consent page refuses to be framed by another origin (the
clickjacking defence of ``X-Frame-Options: DENY`` and ``frame-ancestors
'none'``, enforced by the browser).

Screenshots of the login and consent pages go to ``test-artifacts/`` (and,
with ``UPDATE_SCREENSHOTS=1``, to ``docs/screenshots/``), as in
tests/test_admin_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from conftest import PASSWORD

from token_lifecycle.models import Client

try:
    from playwright.sync_api import expect
except ImportError:  # the dev extra is not installed in this environment
    if os.environ.get("TOKEN_LIFECYCLE_REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("needs the playwright package: pip install -e '.[dev]'", allow_module_level=True)

from chromium import chromium_context, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

APP_NAME = "Photo app"
#: Registered without a port: any port of the loopback interface matches (RFC 8252 §7.3).
LOOPBACK = "http://127.0.0.1/callback"
CALLBACK_PAGE = b"<!DOCTYPE html><title>Photo app</title><h1>You can close this window.</h1>"
FRAME_CONTROL_PAGE = b"<!DOCTYPE html><title>Control</title><p id='control'>Framed fine.</p>"


# -- The app's loopback listener -----------------------------------------------------------------


class _AppHandler(BaseHTTPRequestHandler):
    """The app's pages: the callback, a control page, and a page framing ``server.framed``."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/callback":
            body = CALLBACK_PAGE
        elif path == "/control":
            body = FRAME_CONTROL_PAGE
        elif path == "/framer" and self.server.framed:
            # The attacker's page: the consent page in a frame, next to a harmless one.
            body = (
                "<!DOCTYPE html><title>Framer</title>"
                f'<iframe name="consent" src="{self.server.framed}" width="600" height="400">'
                "</iframe>"
                '<iframe name="control" src="/control" width="300" height="100"></iframe>'
            ).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Silent: the request lines carry the authorization code and state."""


@dataclass
class App:
    """The app's loopback listener."""

    port: int
    server: ThreadingHTTPServer

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def framer_url(self, framed: str) -> str:
        self.server.framed = framed
        # "localhost", like the live server: another origin (the port), the same site, so
        # the browser sends the session cookie (SameSite=Lax) to the framed page.
        return f"http://localhost:{self.port}/framer"


@pytest.fixture
def loopback_app() -> Iterator[App]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AppHandler)
    server.framed = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield App(port=server.server_address[1], server=server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def photo_app(make_client) -> Client:
    client_obj, _ = make_client(
        APP_NAME,
        public=True,
        grant_types="authorization_code",
        redirect_uris=LOOPBACK,
        scope="read write",
    )
    return client_obj


@pytest.fixture
def page(live_server, monkeypatch):
    """A logged-out Chromium page, 1000x700."""
    options = {"viewport": {"width": 1000, "height": 700}, "base_url": live_server.url}
    with chromium_context(monkeypatch, **options) as context:
        yield context.new_page()


# -- Helpers ------------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """A fresh verifier and its S256 challenge, made here as an app would (RFC 7636 §4)."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(live_server, client: Client, redirect_uri: str, challenge: str, state: str):
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": "read write",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{live_server.url}/auth/authorize/?{urlencode(params)}"


def sign_in(page, *, screenshot: bool = False) -> None:
    """On the login page: fill the form by its labels and submit it with Enter."""
    expect(page).to_have_title("Sign in")
    username = page.get_by_label("Username")
    expect(username).to_be_focused()  # autofocus: the person can type at once
    username.fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        save_screenshot(page, "login.png")
    page.get_by_label("Password").press("Enter")


# -- The native app's path ------------------------------------------------------------------------


def test_person_signs_in_and_approves_with_the_keyboard_then_the_app_calls_the_api(
    page, live_server, user, photo_app, loopback_app
):
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)

    page.goto(authorize_url(live_server, photo_app, loopback_app.redirect_uri, challenge, state))

    # Not signed in: Django's login page, which comes back to the request afterwards.
    assert urlsplit(page.url).path == "/accounts/login/"
    sign_in(page, screenshot=True)

    # The consent page names the app and the scopes.
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(f"Allow {APP_NAME} to access your account?")
    expect(page).to_have_title(f"Allow {APP_NAME} to access your account?")
    expect(page.get_by_text("You are signed in as alice.")).to_be_visible()
    expect(page.get_by_role("list").get_by_role("listitem")).to_have_text(["read", "write"])
    allow = page.get_by_role("button", name="Allow", exact=True)
    deny = page.get_by_role("button", name="Deny", exact=True)
    expect(allow).to_be_visible()
    expect(deny).to_be_visible()
    save_screenshot(page, "consent.png")

    # Keyboard only: the first Tab reaches Allow, the next one Deny, Shift+Tab goes back.
    page.keyboard.press("Tab")
    expect(allow).to_be_focused()
    page.keyboard.press("Tab")
    expect(deny).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(allow).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # The browser is back at the app's loopback listener, which shows its own page.
    # (Not there: the consent POST was refused, e.g. Django's CSRF check: its page says why.)
    assert page.url.startswith(loopback_app.redirect_uri + "?"), page.locator("body").inner_text()
    expect(page.get_by_role("heading")).to_have_text("You can close this window.")
    landed = urlsplit(page.url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == loopback_app.redirect_uri
    answer = {name: values[0] for name, values in parse_qs(landed.query).items()}
    assert set(answer) == {"code", "state", "iss"}
    assert answer["state"] == state
    assert answer["iss"] == f"{live_server.url}/auth"

    # The app exchanges the code with its verifier, and calls the API.
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        metadata = http.get("/.well-known/oauth-authorization-server/auth").json()
        assert answer["iss"] == metadata["issuer"]  # RFC 9207: the server it asked
        token = http.post(
            "/auth/token/",
            data={
                "grant_type": "authorization_code",
                "client_id": photo_app.client_id,
                "code": answer["code"],
                "redirect_uri": loopback_app.redirect_uri,
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.text
        assert token.json()["scope"] == "read write"
        whoami = http.get(
            "/api/whoami/", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
        )
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["username"] == "alice"
    assert whoami.json()["client_id"] == photo_app.client_id


# -- Clickjacking ---------------------------------------------------------------------------------


def test_the_consent_page_refuses_to_render_in_a_frame_of_another_origin(
    page, live_server, user, photo_app, loopback_app
):
    _, challenge = pkce_pair()
    url = authorize_url(live_server, photo_app, loopback_app.redirect_uri, challenge, "s")

    # Signed in, the consent page renders at the top level.
    page.goto(url)
    sign_in(page)
    expect(page.get_by_role("button", name="Allow", exact=True)).to_be_visible()

    # Another origin frames it. The server does send the consent page (the session cookie
    # reaches it), but the browser refuses to render it in the frame.
    with page.expect_response(lambda response: response.url == url) as framed:
        page.goto(loopback_app.framer_url(url), wait_until="load")
    response = framed.value
    assert response.status == 200
    assert response.frame.name == "consent"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "Allow" in response.text()  # the consent page was delivered...

    consent_frame = page.frame(name="consent")
    assert consent_frame is not None
    # ...and not rendered: the frame holds Chromium's error page, not our document.
    assert not consent_frame.url.startswith(live_server.url)
    assert consent_frame.locator("form").count() == 0
    assert consent_frame.get_by_role("button", name="Allow").count() == 0
    # The control frame next to it rendered: frames do render here.
    control = page.frame(name="control")
    expect(control.locator("#control")).to_have_text("Framed fine.")
