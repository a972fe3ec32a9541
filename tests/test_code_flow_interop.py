"""The authorization code flow with PKCE driven by OAuth client libraries nobody here wrote.

Authlib's and requests-oauthlib's ``OAuth2Session`` make the authorization
URL (state, S256 challenge), exchange the code, call the API with the access
token and refresh it, against the example project served by ``live_server``.
The "browser" between the two is a ``requests.Session`` that does what a
person does: opens the URL, lands on Django's login page, signs in with the
CSRF token of the form, reads the consent page and presses Allow (or Deny).
Its last answer is not followed: the redirect URI is the app's, served by
nobody; its ``Location`` is handed to the library, as the app's callback
handler would.

Each library is run with a public client (PKCE alone, ``client_id`` in the
body) and a confidential one (``client_secret_basic``). RFC 9207's ``iss``
is not checked by these libraries: it is asserted here against the
metadata's ``issuer``. Authlib's validation of the metadata itself is in
tests/test_standards.py and tests/test_code_flow.py.

In a real Chromium: tests/test_code_flow_browser.py.
"""

from __future__ import annotations

import base64
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.integrations.requests_client import OAuthError
from authlib.oauth2.rfc6749.errors import MissingCodeException
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response
from conftest import PASSWORD
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session as RequestsOAuthlibSession

from token_lifecycle.models import Client

pytestmark = pytest.mark.django_db(transaction=True)

CALLBACK = "https://app.example.com/callback"
APP_NAME = "Interop app"
TIMEOUT = 30


# -- The server and its clients -------------------------------------------------------


class Server:
    """The live example project: its URLs and its RFC 8414 metadata, as a client discovers them."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Discovery from the host name (RFC 8414 §3), as the libraries' users do.
        response = requests.get(
            f"{url}/.well-known/oauth-authorization-server/auth", timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        self.metadata = response.json()
        self.issuer = self.metadata["issuer"]
        self.authorize_url = self.metadata["authorization_endpoint"]
        self.token_url = self.metadata["token_endpoint"]
        self.whoami_url = f"{url}/api/whoami/"


@pytest.fixture
def server(live_server, user) -> Server:
    """The live server, with user alice (who will sign in) created."""
    found = Server(live_server.url)
    # The discovered endpoints are the live server's own: nothing below talks elsewhere.
    assert found.issuer == f"{live_server.url}/auth"
    assert found.authorize_url == f"{live_server.url}/auth/authorize/"
    assert found.token_url == f"{live_server.url}/auth/token/"
    return found


@pytest.fixture(params=["public", "confidential"])
def app(request, make_client) -> tuple[Client, str | None]:
    """A code-flow client, public (PKCE only) or confidential: ``(client, secret)``."""
    return make_client(
        APP_NAME,
        public=request.param == "public",
        grant_types="authorization_code",
        redirect_uris=CALLBACK,
        scope="read write",
    )


# -- The person's browser ---------------------------------------------------------------


class _Forms(HTMLParser):
    """The forms of a page: each one's action and the values of its named inputs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes.get("action") or "", "fields": {}})
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value") or ""


def only_form(response: requests.Response) -> tuple[str, dict[str, str]]:
    """The page's single form: its absolute action URL and its pre-filled fields."""
    parser = _Forms()
    parser.feed(response.text)
    assert len(parser.forms) == 1, response.text[:500]
    form = parser.forms[0]
    return urljoin(response.url, form["action"]), dict(form["fields"])


def person_decides(server: Server, authorization_url: str, decision: str) -> str:
    """Open the URL in a fresh "browser", sign in as alice, press ``decision``: the Location."""
    with requests.Session() as browser:
        login_page = browser.get(authorization_url, timeout=TIMEOUT)
        assert login_page.status_code == 200
        assert login_page.url.startswith(f"{server.url}/accounts/login/?next=")
        action, fields = only_form(login_page)
        assert fields["csrfmiddlewaretoken"]  # Django's login form is CSRF-protected

        fields.update(username="alice", password=PASSWORD)
        consent_page = browser.post(action, data=fields, timeout=TIMEOUT)
        assert consent_page.status_code == 200
        # Back at the authorization request, now signed in: the consent page.
        assert consent_page.url.startswith(server.authorize_url)
        assert f"Allow {APP_NAME} to access your account?" in consent_page.text
        assert "<code>read</code>" in consent_page.text
        assert "<code>write</code>" not in consent_page.text  # only the requested scope
        action, fields = only_form(consent_page)
        assert fields["csrfmiddlewaretoken"]

        fields["decision"] = decision
        answer = browser.post(action, data=fields, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return location


def redirect_parameters(location: str) -> dict[str, str]:
    params = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in params.values()), params.keys()
    return {name: values[0] for name, values in params.items()}


def new_verifier() -> str:
    """43 characters of base64url, the shortest verifier RFC 7636 allows."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


# -- Authlib --------------------------------------------------------------------------------


def authlib_session(server: Server, app: tuple[Client, str | None]) -> AuthlibSession:
    client_obj, secret = app
    return AuthlibSession(
        client_obj.client_id,
        secret,
        # A public client has no secret: Authlib then sends client_id in the body.
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        redirect_uri=CALLBACK,
        scope="read",
        code_challenge_method="S256",
    )


def test_authlib_logs_in_calls_the_api_and_refreshes(server, app):
    client_obj, _ = app
    verifier = new_verifier()
    with authlib_session(server, app) as session:
        url, state = session.create_authorization_url(server.authorize_url, code_verifier=verifier)
        sent = redirect_parameters(url)
        assert sent["code_challenge_method"] == "S256"
        assert sent["code_challenge"] and sent["code_challenge"] != verifier

        location = person_decides(server, url, "allow")
        answer = redirect_parameters(location)
        assert answer["state"] == state
        assert answer["iss"] == server.issuer  # RFC 9207: Authlib does not check it

        # Authlib parses the Location, checks its state, sends code, verifier, redirect_uri.
        token = session.fetch_token(
            server.token_url, authorization_response=location, code_verifier=verifier
        )
        assert token["token_type"].lower() == "bearer"
        assert token["scope"] == "read"

        whoami = session.get(server.whoami_url, timeout=TIMEOUT)  # Authlib adds the bearer
        assert whoami.status_code == 200, whoami.text
        assert whoami.json()["username"] == "alice"
        assert whoami.json()["client_id"] == client_obj.client_id
        first_pair = whoami.json()["pair_id"]

        refreshed = session.refresh_token(server.token_url)
        assert refreshed["access_token"] != token["access_token"]
        assert refreshed["refresh_token"] != token["refresh_token"]  # rotated
        whoami = session.get(server.whoami_url, timeout=TIMEOUT)  # with the new token
        assert whoami.status_code == 200, whoami.text
        assert whoami.json()["username"] == "alice"
        assert whoami.json()["pair_id"] != first_pair

        # The code works once. A replay through Authlib is refused, and (RFC 6749 §4.1.2)
        # revokes what the code started: the refreshed pair too.
        with pytest.raises(OAuthError) as replayed:
            session.fetch_token(
                server.token_url, authorization_response=location, code_verifier=verifier
            )
        assert replayed.value.error == "invalid_grant"
        assert session.get(server.whoami_url, timeout=TIMEOUT).status_code == 401


def test_authlib_with_the_wrong_verifier_gets_invalid_grant(server, app):
    """The code alone is not enough: PKCE ties it to the app that made the request."""
    verifier = new_verifier()
    with authlib_session(server, app) as session:
        url, _ = session.create_authorization_url(server.authorize_url, code_verifier=verifier)
        location = person_decides(server, url, "allow")

        with pytest.raises(OAuthError) as refused:
            session.fetch_token(
                server.token_url, authorization_response=location, code_verifier=new_verifier()
            )
        assert refused.value.error == "invalid_grant"
        assert session.token is None  # nothing was issued

        # The failed attempt did not spend the code: the app's own verifier still works.
        token = session.fetch_token(
            server.token_url, authorization_response=location, code_verifier=verifier
        )
        whoami = session.get(server.whoami_url, timeout=TIMEOUT)
    assert token["scope"] == "read"
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["username"] == "alice"


def test_deny_through_authlib_returns_access_denied(server, app):
    with authlib_session(server, app) as session:
        url, state = session.create_authorization_url(
            server.authorize_url, code_verifier=new_verifier()
        )
        location = person_decides(server, url, "deny")

        answer = redirect_parameters(location)
        assert answer["error"] == "access_denied"
        assert answer["state"] == state
        assert answer["iss"] == server.issuer
        assert "code" not in answer
        # Authlib's own parser of the callback finds no code to exchange.
        with pytest.raises(MissingCodeException):
            parse_authorization_code_response(location, state=state)


# -- requests-oauthlib ------------------------------------------------------------------------


@pytest.fixture
def insecure_transport_allowed(monkeypatch):
    # oauthlib refuses http:// token and API URLs (InsecureTransportError) unless this is set;
    # the live server is plain http on localhost. Only for this test (monkeypatch undoes it).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_logs_in_calls_the_api_and_refreshes(
    server, app, insecure_transport_allowed
):
    client_obj, secret = app
    # requests-oauthlib >= 1.4 does PKCE itself: pkce="S256" makes the verifier in
    # authorization_url() and sends it from fetch_token().
    session = RequestsOAuthlibSession(
        client_obj.client_id, redirect_uri=CALLBACK, scope=["read"], pkce="S256"
    )
    with session:
        url, state = session.authorization_url(server.authorize_url)
        sent = redirect_parameters(url)
        assert sent["code_challenge_method"] == "S256"
        assert len(sent["code_challenge"]) == 43

        location = person_decides(server, url, "allow")
        answer = redirect_parameters(location)
        assert answer["state"] == state
        assert answer["iss"] == server.issuer  # RFC 9207: oauthlib does not check it

        if secret is None:
            # A public client: no authentication, its client_id in the body.
            token = session.fetch_token(
                server.token_url, authorization_response=location, include_client_id=True
            )
        else:
            # A confidential client: HTTP Basic (client_secret_basic), requests-oauthlib's default.
            token = session.fetch_token(
                server.token_url, authorization_response=location, client_secret=secret
            )
        assert token["token_type"].lower() == "bearer"
        assert token["scope"] == ["read"]

        whoami = session.get(server.whoami_url, timeout=TIMEOUT)
        assert whoami.status_code == 200, whoami.text
        assert whoami.json()["username"] == "alice"
        assert whoami.json()["client_id"] == client_obj.client_id

        if secret is None:
            refreshed = session.refresh_token(server.token_url, client_id=client_obj.client_id)
        else:
            refreshed = session.refresh_token(
                server.token_url, auth=HTTPBasicAuth(client_obj.client_id, secret)
            )
        assert refreshed["access_token"] != token["access_token"]
        assert refreshed["refresh_token"] != token["refresh_token"]
        whoami = session.get(server.whoami_url, timeout=TIMEOUT)
        assert whoami.status_code == 200, whoami.text
        assert whoami.json()["username"] == "alice"
