"""The client library's native-app login (RFC 8252): ``LoopbackLogin``.

Unit tests play the browser with a fake opener (HTTP requests to the loopback
listener from a thread) and the token endpoint with ``httpx.MockTransport``:
every check of the redirect (state, iss, error, a repeated parameter, a wrong
path, a second redirect, no redirect at all) and the code exchange.
The end-to-end test runs against the example project served live, the
browser step played by a session logged in to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from conftest import PASSWORD

from example_project import login_cli
from token_lifecycle.client import (
    AuthorizationDenied,
    AuthorizationFailed,
    AuthorizationResponseRejected,
    AuthorizationTimedOut,
    LoopbackLogin,
    MemoryTokenStore,
    ReauthenticationRequired,
    ServerMetadata,
    TokenAuth,
    TokenEndpointError,
    TokenEndpointUnavailable,
    discover,
    loopback,
)
from token_lifecycle.client.authorization import authorization_url, new_state
from token_lifecycle.client.discovery import metadata_urls
from token_lifecycle.client.loopback import LoopbackListener
from token_lifecycle.client.pkce import Pkce, s256_challenge
from token_lifecycle.models import TokenPair

ISSUER = "https://as.example/auth"
AUTHORIZE = f"{ISSUER}/authorize/"
TOKEN_URL = f"{ISSUER}/token/"
CODE = "the-authorization-code"


# -- Fakes: the browser and the token endpoint ------------------------------------------


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


class FakeBrowser:
    """An opener: records the authorization URL, then (in a thread, as a browser would)
    requests what ``visits`` returns for it, keeping each answer."""

    def __init__(self, visits: Callable[[dict[str, str]], list[str]], *, opens: bool = True):
        self.visits = visits
        self.opens = opens
        self.url: str | None = None
        self.answers: list[httpx.Response | Exception] = []
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> bool:
        self.url = url
        self._thread = threading.Thread(target=self._browse, args=(query_of(url),))
        self._thread.start()
        return self.opens

    def _browse(self, authorize: dict[str, str]) -> None:
        for target in self.visits(authorize):
            try:
                self.answers.append(httpx.get(target, timeout=5))
            except httpx.HTTPError as error:
                self.answers.append(error)

    def done(self) -> FakeBrowser:
        if self._thread is not None:
            self._thread.join(10)
        return self

    @property
    def pages(self) -> list[str]:
        return [a.text for a in self.answers if isinstance(a, httpx.Response)]


def redirect(authorize: dict[str, str], **params: str) -> str:
    """The redirect a server would send the browser to, with ``params`` as its query."""
    return f"{authorize['redirect_uri']}?{urlencode(params)}"


def approve(**extra: str) -> Callable[[dict[str, str]], list[str]]:
    """The server's answer when the user allows: code, the request's state, and iss."""

    def visits(authorize: dict[str, str]) -> list[str]:
        params = {"code": CODE, "state": authorize["state"], "iss": ISSUER, **extra}
        return [redirect(authorize, **params)]

    return visits


class FakeTokenEndpoint:
    """``POST /auth/token/`` answering every request with a pair; keeps the forms it got."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/auth/token/":
            return httpx.Response(
                200,
                json={
                    "access_token": f"access-{len(self.requests)}",
                    "token_type": "Bearer",
                    "expires_in": 900,
                    "refresh_token": f"refresh-{len(self.requests)}",
                    "refresh_expires_in": 86400,
                },
            )
        return httpx.Response(200, json={"authorization": request.headers.get("authorization")})

    def forms(self) -> list[dict[str, str]]:
        return [query_of("?" + r.content.decode()) for r in self.requests]


@pytest.fixture
def token_endpoint() -> FakeTokenEndpoint:
    return FakeTokenEndpoint()


@pytest.fixture
def make_auth(token_endpoint):
    """A TokenAuth with a LoopbackLogin through ``browser``, the token endpoint faked."""
    made: list[TokenAuth] = []
    messages: list[str] = []

    def make(browser, *, secret: str | None = None, **options) -> TokenAuth:
        options.setdefault("timeout", 5)
        grant = LoopbackLogin(AUTHORIZE, ISSUER, opener=browser, notify=messages.append, **options)
        auth = TokenAuth(
            TOKEN_URL,
            "native-app",
            secret,
            grant=grant,
            store=MemoryTokenStore(),
            token_client=httpx.Client(transport=httpx.MockTransport(token_endpoint)),
        )
        auth.messages = messages
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.close()


# -- PKCE and the authorization request -------------------------------------------------


def test_the_verifier_is_32_random_bytes_in_base64url_and_the_challenge_its_s256():
    pkce = Pkce.new()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", pkce.verifier)
    assert base64.urlsafe_b64decode(pkce.verifier + "=") != b"\0" * 32
    assert pkce.method == "S256"
    digest = hashlib.sha256(pkce.verifier.encode()).digest()
    assert pkce.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert Pkce.new().verifier != pkce.verifier
    assert pkce.verifier not in repr(pkce)


def test_the_challenge_matches_rfc_7636_appendix_b():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_authorization_url_carries_every_parameter_and_keeps_the_endpoints_own():
    pkce = Pkce.new()
    url = authorization_url(
        f"{AUTHORIZE}?tenant=a b",
        client_id="native-app",
        redirect_uri="http://127.0.0.1:5555/callback",
        state="s1",
        pkce=pkce,
        scope="read write",
    )
    assert url.startswith(AUTHORIZE + "?")
    assert query_of(url) == {
        "tenant": "a b",
        "response_type": "code",
        "client_id": "native-app",
        "redirect_uri": "http://127.0.0.1:5555/callback",
        "state": "s1",
        "scope": "read write",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    assert pkce.verifier not in url
    assert len(new_state()) >= 22 and new_state() != new_state()


# -- The whole login ----------------------------------------------------------------------


def test_a_public_client_logs_in_through_the_browser_and_stores_the_pair(
    make_auth, token_endpoint
):
    browser = FakeBrowser(approve())
    auth = make_auth(browser, scope="read")
    tokens = auth.tokens()
    browser.done()

    authorize = query_of(browser.url)
    assert browser.url.startswith(AUTHORIZE + "?")
    assert authorize["response_type"] == "code"
    assert authorize["client_id"] == "native-app"
    assert authorize["scope"] == "read"
    assert authorize["code_challenge_method"] == "S256"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", authorize["redirect_uri"])
    assert not authorize["redirect_uri"].endswith(":0/callback")

    [form] = token_endpoint.forms()
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == CODE
    assert form["redirect_uri"] == authorize["redirect_uri"]
    assert s256_challenge(form["code_verifier"]) == authorize["code_challenge"]
    assert form["client_id"] == "native-app"
    assert "authorization" not in token_endpoint.requests[0].headers

    assert tokens.access_token == "access-1" and tokens.refresh_token == "refresh-1"
    assert auth.store.load(auth.store_key) == tokens
    # The browser was told only that it worked.
    [page] = browser.pages
    assert "You may close this window" in page and CODE not in page
    assert browser.answers[0].headers["referrer-policy"] == "no-referrer"

    with httpx.Client(transport=httpx.MockTransport(token_endpoint), auth=auth) as api:
        answer = api.get("https://as.example/api/whoami/").json()
    assert answer == {"authorization": "Bearer access-1"}
    assert len(token_endpoint.requests) == 2  # no second login


def test_a_confidential_client_authenticates_the_code_exchange(make_auth, token_endpoint):
    auth = make_auth(FakeBrowser(approve()), secret="cs_secret")
    auth.tokens()
    [request] = token_endpoint.requests
    expected = "Basic " + base64.b64encode(b"native-app:cs_secret").decode()
    assert request.headers["authorization"] == expected
    assert "client_id" not in token_endpoint.forms()[0]


def test_each_login_uses_a_new_port_state_and_verifier(make_auth, token_endpoint):
    first, second = FakeBrowser(approve()), FakeBrowser(approve())
    make_auth(first).tokens()
    make_auth(second).tokens()
    one, two = query_of(first.done().url), query_of(second.done().url)
    assert one["state"] != two["state"]
    assert one["code_challenge"] != two["code_challenge"]
    verifiers = [form["code_verifier"] for form in token_endpoint.forms()]
    assert len(set(verifiers)) == 2


def test_no_code_or_verifier_reaches_the_log(make_auth, token_endpoint, caplog):
    caplog.set_level(logging.DEBUG, logger="token_lifecycle.client")
    make_auth(FakeBrowser(approve())).tokens()
    [form] = token_endpoint.forms()
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("token_lifecycle")]
    assert any("authorization_code" in line for line in ours)  # the login was logged...
    assert not [line for line in ours if CODE in line or form["code_verifier"] in line]


# -- Redirects that must be refused ---------------------------------------------------------


def refused(make_auth, token_endpoint, visits, error_class, **options) -> AuthorizationFailed:
    """Log in with a browser that visits ``visits``; assert nothing was exchanged or stored."""
    browser = FakeBrowser(visits)
    auth = make_auth(browser, **options)
    with pytest.raises(error_class) as caught:
        auth.tokens()
    browser.done()
    assert token_endpoint.requests == []
    assert auth.store.load(auth.store_key) is None
    assert all(CODE not in page for page in browser.pages)
    return caught.value


def test_a_wrong_state_is_refused(make_auth, token_endpoint):
    def visits(authorize):
        return [redirect(authorize, code=CODE, state=authorize["state"] + "x", iss=ISSUER)]

    failure = refused(make_auth, token_endpoint, visits, AuthorizationResponseRejected)
    assert "state" in failure.description


def test_a_missing_state_is_refused(make_auth, token_endpoint):
    def visits(authorize):
        return [redirect(authorize, code=CODE, iss=ISSUER)]

    refused(make_auth, token_endpoint, visits, AuthorizationResponseRejected)


def test_another_issuers_response_is_refused(make_auth, token_endpoint):
    failure = refused(
        make_auth,
        token_endpoint,
        approve(iss="https://evil.example/auth"),
        AuthorizationResponseRejected,
    )
    assert "evil.example" in failure.description


def test_a_missing_iss_is_refused_when_the_server_always_sends_it(make_auth, token_endpoint):
    def visits(authorize):
        return [redirect(authorize, code=CODE, state=authorize["state"])]

    failure = refused(
        make_auth, token_endpoint, visits, AuthorizationResponseRejected, iss_required=True
    )
    assert "no iss" in failure.description


def test_a_missing_iss_is_accepted_from_a_server_that_does_not_promise_it(
    make_auth, token_endpoint
):
    def visits(authorize):
        return [redirect(authorize, code=CODE, state=authorize["state"])]

    make_auth(FakeBrowser(visits)).tokens()
    assert token_endpoint.forms()[0]["code"] == CODE


def test_a_wrong_iss_is_refused_even_from_a_server_that_does_not_promise_it(
    make_auth, token_endpoint
):
    refused(make_auth, token_endpoint, approve(iss=ISSUER + "/"), AuthorizationResponseRejected)


def test_a_repeated_parameter_is_refused(make_auth, token_endpoint):
    def visits(authorize):
        query = urlencode(
            [("code", CODE), ("code", "other"), ("state", authorize["state"]), ("iss", ISSUER)]
        )
        return [f"{authorize['redirect_uri']}?{query}"]

    failure = refused(make_auth, token_endpoint, visits, AuthorizationResponseRejected)
    assert "code" in failure.description


def test_a_redirect_without_a_code_is_refused(make_auth, token_endpoint):
    def visits(authorize):
        return [redirect(authorize, state=authorize["state"], iss=ISSUER)]

    refused(make_auth, token_endpoint, visits, AuthorizationResponseRejected)


def test_access_denied_is_its_own_exception(make_auth, token_endpoint):
    def visits(authorize):
        return [
            redirect(
                authorize,
                error="access_denied",
                error_description="The user said no.",
                state=authorize["state"],
                iss=ISSUER,
            )
        ]

    failure = refused(make_auth, token_endpoint, visits, AuthorizationDenied)
    assert (failure.error, failure.description) == ("access_denied", "The user said no.")
    assert isinstance(failure, ReauthenticationRequired)


def test_other_authorization_errors_keep_the_servers_code(make_auth, token_endpoint):
    def visits(authorize):
        return [redirect(authorize, error="invalid_scope", state=authorize["state"], iss=ISSUER)]

    failure = refused(make_auth, token_endpoint, visits, AuthorizationFailed)
    assert failure.error == "invalid_scope" and not isinstance(failure, AuthorizationDenied)


def test_an_error_with_a_wrong_state_is_refused_as_forged(make_auth, token_endpoint):
    # A forged "access_denied" must not pass for the user's answer.
    def visits(authorize):
        return [redirect(authorize, error="access_denied", state="forged", iss=ISSUER)]

    refused(make_auth, token_endpoint, visits, AuthorizationResponseRejected)


def test_the_browser_is_told_the_login_failed_without_details_it_did_not_send(
    make_auth, token_endpoint
):
    def visits(authorize):
        return [redirect(authorize, error="access_denied", state=authorize["state"], iss=ISSUER)]

    browser = FakeBrowser(visits)
    with pytest.raises(AuthorizationDenied):
        make_auth(browser).tokens()
    [answer] = browser.done().answers
    assert answer.status_code == 400
    assert "Login failed" in answer.text and "access_denied" in answer.text


# -- The listener ---------------------------------------------------------------------------


def test_no_redirect_times_out_and_closes_the_listener(make_auth, token_endpoint):
    browser = FakeBrowser(lambda authorize: [])
    auth = make_auth(browser, timeout=0.3)
    with pytest.raises(AuthorizationTimedOut) as caught:
        auth.tokens()
    assert caught.value.error == "timeout"
    assert token_endpoint.requests == [] and auth.store.load(auth.store_key) is None
    port = urlsplit(query_of(browser.done().url)["redirect_uri"]).port
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_no_redirect_times_out_with_a_real_opener_call(make_auth, token_endpoint):
    opened: list[str] = []
    auth = make_auth(lambda url: opened.append(url) or True, timeout=0.2)
    with pytest.raises(AuthorizationTimedOut):
        auth.tokens()
    assert len(opened) == 1 and token_endpoint.requests == []


def test_requests_for_other_paths_are_ignored(make_auth, token_endpoint):
    def visits(authorize):
        base = authorize["redirect_uri"].removesuffix("/callback")
        good = redirect(authorize, code=CODE, state=authorize["state"], iss=ISSUER)
        return [f"{base}/favicon.ico", f"{base}/callback/extra?code=x", good]

    browser = FakeBrowser(visits)
    make_auth(browser).tokens()
    statuses = [answer.status_code for answer in browser.done().answers]
    assert statuses == [404, 404, 200]
    assert token_endpoint.forms()[0]["code"] == CODE


def test_only_the_first_redirect_counts():
    with LoopbackListener() as listener:
        first = httpx.get(f"{listener.redirect_uri}?code=first&state=s")
        second = httpx.get(f"{listener.redirect_uri}?code=second&state=s")
        assert listener.wait(1) == {"code": ["first"], "state": ["s"]}
    assert (first.status_code, second.status_code) == (200, 404)
    assert "second" not in second.text


def test_a_second_redirect_after_the_login_finds_nothing(make_auth, token_endpoint):
    browser = FakeBrowser(approve())
    auth = make_auth(browser)
    auth.tokens()
    again = query_of(browser.done().url)["redirect_uri"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{again}?code=replayed&state=x", timeout=2)
    assert [form["code"] for form in token_endpoint.forms()] == [CODE]


def test_the_listener_binds_the_loopback_address_on_a_port_the_system_picks():
    with LoopbackListener() as one, LoopbackListener("/done") as two:
        assert one._server.server_address[0] == "127.0.0.1"
        assert one.port > 0 and two.port > 0 and one.port != two.port
        assert two.redirect_uri == f"http://127.0.0.1:{two.port}/done"
        assert one.wait(0.05) is None


def test_a_silent_connection_does_not_block_the_redirect(monkeypatch):
    # A browser's pre-connection (or anything else local) that never sends a request.
    monkeypatch.setattr(loopback._Handler, "timeout", 0.2)
    with LoopbackListener() as listener, socket.create_connection(("127.0.0.1", listener.port)):
        answer = httpx.get(f"{listener.redirect_uri}?code=c", timeout=5)
        assert answer.status_code == 200
        assert listener.wait(1) == {"code": ["c"]}


# -- Opening the browser ----------------------------------------------------------------------


@pytest.mark.parametrize("fails", ["returns False", "raises"])
def test_when_no_browser_opens_the_url_is_shown(make_auth, token_endpoint, fails):
    browser = FakeBrowser(approve(), opens=False)

    def opener(url: str) -> bool:
        browser(url)
        if fails == "raises":
            raise webbrowser.Error("could not locate runnable browser")
        return False

    auth = make_auth(opener)
    auth.tokens()
    browser.done()
    [message] = auth.messages
    assert browser.url in message and "Open this URL" in message
    assert token_endpoint.forms()[0]["code"] == CODE


def test_when_a_browser_opens_the_url_is_not_repeated(make_auth):
    browser = FakeBrowser(approve())
    auth = make_auth(browser)
    auth.tokens()
    [message] = auth.messages
    assert browser.done().url not in message and "browser" in message


def test_the_default_opener_is_the_system_browser():
    grant = LoopbackLogin(AUTHORIZE, ISSUER)
    assert grant.opener is webbrowser.open
    assert "opener" not in repr(grant)


# -- Discovery ------------------------------------------------------------------------------


METADATA = {
    "issuer": ISSUER,
    "authorization_endpoint": AUTHORIZE,
    "token_endpoint": TOKEN_URL,
    "revocation_endpoint": f"{ISSUER}/token/revoke/",
    "authorization_response_iss_parameter_supported": True,
}


def serving(documents: dict[str, tuple[int, object]]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        status, body = documents.get(str(request.url), (404, {"detail": "not found"}))
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_metadata_is_looked_for_where_rfc_8414_says_then_under_the_issuer():
    assert metadata_urls(ISSUER) == [
        "https://as.example/.well-known/oauth-authorization-server/auth",
        f"{ISSUER}/.well-known/oauth-authorization-server",
    ]
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server"
    ]


@pytest.mark.parametrize("where", [0, 1])
def test_discover_reads_the_metadata_from_either_place(where):
    url = metadata_urls(ISSUER)[where]
    with serving({url: (200, METADATA)}) as http:
        server = discover(ISSUER, http_client=http)
    assert server == ServerMetadata(
        issuer=ISSUER,
        token_endpoint=TOKEN_URL,
        authorization_endpoint=AUTHORIZE,
        revocation_endpoint=f"{ISSUER}/token/revoke/",
        authorization_response_iss_parameter_supported=True,
    )
    grant = LoopbackLogin.from_metadata(server, scope="read", timeout=30)
    assert (grant.authorization_endpoint, grant.issuer) == (AUTHORIZE, ISSUER)
    assert grant.iss_required and grant.scope == "read" and grant.timeout == 30


def test_metadata_for_another_issuer_is_refused():
    document = {**METADATA, "issuer": "https://evil.example/auth"}
    served = serving({metadata_urls(ISSUER)[0]: (200, document)})
    with served as http, pytest.raises(TokenEndpointError) as caught:
        discover(ISSUER, http_client=http)
    assert caught.value.error == "invalid_metadata"


def test_no_metadata_and_a_failing_server_are_told_apart():
    with serving({}) as http, pytest.raises(TokenEndpointError) as caught:
        discover(ISSUER, http_client=http)
    assert caught.value.error == "invalid_metadata"
    failing = {url: (503, {"error": "temporarily_unavailable"}) for url in metadata_urls(ISSUER)}
    with serving(failing) as http, pytest.raises(TokenEndpointUnavailable):
        discover(ISSUER, http_client=http)


def test_a_server_without_an_authorization_endpoint_cannot_make_a_browser_login():
    server = ServerMetadata(issuer=ISSUER, token_endpoint=TOKEN_URL)
    assert not server.authorization_response_iss_parameter_supported
    with pytest.raises(ValueError, match="authorization_endpoint"):
        LoopbackLogin.from_metadata(server)


def test_the_client_package_still_imports_without_django():
    code = (
        "import json, sys, token_lifecycle.client as c; c.LoopbackLogin; c.discover;"
        "print(json.dumps([m for m in ('django', 'rest_framework', 'jwt') if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


# -- End to end: the example project served live ----------------------------------------


class SessionBrowser:
    """An opener playing the user's browser against the live server, in a thread as a real
    one would: log in on the login page, answer the consent page, follow the redirect home.
    """

    def __init__(self, username: str, password: str, *, decision: str = "allow") -> None:
        self.username, self.password, self.decision = username, password, decision
        self.visited: list[str] = []
        self.landing: httpx.Response | None = None
        self.failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> bool:
        self._thread = threading.Thread(target=self._run, args=(url,))
        self._thread.start()
        return True

    def done(self) -> SessionBrowser:
        assert self._thread is not None, "the browser was never opened"
        self._thread.join(30)
        if self.failure is not None:
            raise self.failure
        return self

    def _run(self, url: str) -> None:
        try:
            with httpx.Client(timeout=10) as http:
                self._browse(http, url)
        except BaseException as failure:  # reported by done(), in the test's thread
            self.failure = failure

    def _get(self, http: httpx.Client, url: str) -> httpx.Response:
        self.visited.append(urlsplit(url).path)
        return http.get(url)

    def _browse(self, http: httpx.Client, url: str) -> None:
        to_login = self._get(http, url)
        assert to_login.status_code == 302, to_login.text
        login_url = str(to_login.url.join(to_login.headers["location"]))
        login_page = self._get(http, login_url)
        fields = {
            **hidden_fields(login_page.text),
            "username": self.username,
            "password": self.password,
        }
        logged_in = http.post(login_url, data=fields)
        assert logged_in.status_code == 302, logged_in.text
        consent = self._get(http, str(logged_in.url.join(logged_in.headers["location"])))
        assert consent.status_code == 200 and "Allow" in consent.text, consent.text
        assert consent.headers["x-frame-options"] == "DENY"
        action = str(consent.url.join(form_action(consent.text)))
        answered = http.post(
            action, data={**hidden_fields(consent.text), "decision": self.decision}
        )
        assert answered.status_code == 302, answered.text
        self.landing = self._get(http, answered.headers["location"])


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's form (CSRF token, the authorization request...)."""
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        attributes = dict(re.findall(r'(\w+)="([^"]*)"', tag))
        if attributes.get("type") == "hidden":
            fields[attributes["name"]] = unescape(attributes.get("value", ""))
    return fields


def form_action(html: str) -> str:
    return unescape(re.search(r'<form\b[^>]*\baction="([^"]*)"', html).group(1))


@pytest.fixture
def native_app(make_client):
    """A public client allowed the code flow, with a loopback redirect URI (any port)."""
    client, _ = make_client(
        "Command-line app",
        public=True,
        grant_types="authorization_code",
        redirect_uris="http://127.0.0.1/callback",
    )
    return client


def live_auth(live_server, client, browser, **options) -> TokenAuth:
    server = discover(f"{live_server.url}/auth")
    grant = LoopbackLogin.from_metadata(server, opener=browser, notify=lambda _: None, **options)
    return TokenAuth(
        server.token_endpoint,
        client.client_id,
        grant=grant,
        store=MemoryTokenStore(),
        revocation_url=server.revocation_endpoint,
    )


@pytest.mark.django_db(transaction=True)
def test_a_person_logs_in_through_the_browser_against_the_live_server(
    live_server, native_app, user
):
    browser = SessionBrowser(user.username, PASSWORD)
    auth = live_auth(live_server, native_app, browser, timeout=30)
    assert auth.grant.iss_required  # the server advertises RFC 9207
    try:
        tokens = auth.tokens()
        browser.done()
        assert browser.visited == [
            "/auth/authorize/",
            "/accounts/login/",
            "/auth/authorize/",
            "/callback",
        ]
        assert browser.landing.status_code == 200
        assert "You may close this window" in browser.landing.text

        assert auth.store.load(auth.store_key) == tokens
        with httpx.Client(base_url=live_server.url, auth=auth, timeout=10) as api:
            pairs = api.get("/auth/pairs/")
            whoami = api.get("/api/whoami/")
        assert pairs.status_code == 200, pairs.text
        [pair] = pairs.json()
        assert pair["current"] is True
        assert whoami.json()["username"] == user.username
        assert whoami.json()["client_id"] == native_app.client_id
        assert whoami.json()["pair_id"] == pair["id"]
        assert auth.tokens() == tokens  # stored: no second login
    finally:
        auth.close()


@pytest.mark.django_db(transaction=True)
def test_a_person_who_denies_gets_access_denied_from_the_live_server(
    live_server, native_app, user
):
    browser = SessionBrowser(user.username, PASSWORD, decision="deny")
    auth = live_auth(live_server, native_app, browser, timeout=30)
    try:
        with pytest.raises(AuthorizationDenied) as caught:
            auth.tokens()
        browser.done()
    finally:
        auth.close()
    assert caught.value.error == "access_denied"
    assert browser.landing.status_code == 400
    assert auth.store.load(auth.store_key) is None
    assert not TokenPair.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_command_line_example_logs_in_once_then_reuses_then_logs_out(
    live_server, native_app, user, tmp_path, capsys
):
    argv = ["--server", live_server.url, "--client-id", native_app.client_id]
    argv += ["--store", str(tmp_path / "tokens"), "--timeout", "30"]
    browser = SessionBrowser(user.username, PASSWORD)
    assert login_cli.main(argv, opener=browser) == 0
    browser.done()
    first = capsys.readouterr().out
    assert f"as {user.username}" in first
    [pair] = TokenPair.objects.all()
    assert str(pair.id) in first

    def no_browser(url: str) -> bool:
        raise AssertionError("a stored pair must not need a login")

    assert login_cli.main(argv, opener=no_browser) == 0
    assert TokenPair.objects.count() == 1  # the file store's pair, reused by a new process

    assert login_cli.main([*argv, "--logout"], opener=no_browser) == 0
    pair.refresh_from_db()
    assert pair.revoked_at is not None
    assert list((tmp_path / "tokens").glob("*.json")) == []
