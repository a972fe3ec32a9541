"""What a client may register: redirect URIs (code flow) and origins (browser mode).

The rules live in ``token_lifecycle.redirect_uris`` and ``token_lifecycle.origins``;
``Client.clean`` applies them, so the admin and ``create_client`` refuse the same
values (docs/code-flow.md, docs/browser-mode.md).
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from token_lifecycle import origins, redirect_uris
from token_lifecycle.models import Client

ACCEPTED_URIS = [
    "https://app.example.com/callback",
    "https://app.example.com/cb?tenant=7",
    "http://127.0.0.1/callback",
    "http://127.0.0.1:8765/callback",
    "http://[::1]/callback",
    "com.example.app:/oauth2redirect",
    "com.example.app://callback",
]
REFUSED_URIS = {
    "http://app.example.com/callback": "only loopback",
    "http://localhost:8000/callback": "only loopback",
    "https://app.example.com/cb#fragment": "fragment",
    "https://user@app.example.com/cb": "userinfo",
    "https://app.example.com:99999/cb": "not a valid URI",
    "javascript:alert(1)": "javascript",
    "myapp:/callback": "reverse domain name",
    "/relative/callback": "no scheme",
    "https:///nohost": "no host",
    "https://app.example.com/a b": "space",
    "https://app.example.com/\x00": "control",
    "https://app.example.com/" + "a" * 2000: "longer than",
}


@pytest.mark.parametrize("uri", ACCEPTED_URIS)
def test_registrable_redirect_uris(uri):
    assert redirect_uris.problem(uri) is None


@pytest.mark.parametrize(("uri", "why"), REFUSED_URIS.items())
def test_refused_redirect_uris_say_why(uri, why):
    assert why in redirect_uris.problem(uri)


@pytest.mark.parametrize(
    ("registered", "presented", "matches"),
    [
        ("https://app.example.com/cb", "https://app.example.com/cb", True),
        # Exact strings (RFC 9700 §4.1.3): no normalisation, no prefix, no case folding.
        ("https://app.example.com/cb", "https://app.example.com/cb/", False),
        ("https://app.example.com/cb", "https://APP.example.com/cb", False),
        ("https://app.example.com/cb", "https://app.example.com/cb?x=1", False),
        ("https://app.example.com/cb", "https://app.example.com:443/cb", False),
        ("https://app.example.com/cb", "https://app.example.com.evil.test/cb", False),
        ("https://app.example.com/cb", "https://app.example.com/cb#x", False),
        # Loopback (RFC 8252 §7.3): any port, the rest exact.
        ("http://127.0.0.1/callback", "http://127.0.0.1:51000/callback", True),
        ("http://127.0.0.1:8765/callback", "http://127.0.0.1:51000/callback", True),
        ("http://[::1]/callback", "http://[::1]:51000/callback", True),
        ("http://127.0.0.1/callback", "http://127.0.0.1:51000/other", False),
        ("http://127.0.0.1/callback", "http://127.0.0.1:51000/callback?x=1", False),
        ("http://127.0.0.1/callback", "http://[::1]:51000/callback", False),
        ("http://127.0.0.1/callback", "http://localhost:51000/callback", False),
        ("http://127.0.0.1/callback", "https://127.0.0.1:51000/callback", False),
        ("http://127.0.0.1/callback", "http://evil@127.0.0.1:51000/callback", False),
        ("http://127.0.0.1/callback", "http://127.0.0.1:51000/callback#x", False),
        ("http://127.0.0.1/callback", "http://127.0.0.1:bad/callback", False),
    ],
)
def test_redirect_uri_matching(registered, presented, matches):
    assert redirect_uris.matches(registered, presented) is matches


@pytest.mark.parametrize(
    ("origin", "why"),
    [
        ("https://app.example.com", None),
        ("http://127.0.0.1:8000", None),
        ("https://app.example.com:8443", None),
        ("https://app.example.com/", "without a path"),
        ("https://app.example.com/spa", "without a path"),
        ("https://App.Example.com", "as a browser sends it"),
        ("https://app.example.com:443", "default port"),
        ("ftp://app.example.com", "http or https"),
        ("app.example.com", "http or https"),
        ("https://user@app.example.com", "userinfo"),
        ("https://app.example.com:99999", "not a valid origin"),
        ("null", "http or https"),
    ],
)
def test_origins(origin, why):
    problem = origins.problem(origin)
    assert problem is None if why is None else why in problem


def test_clean_names_each_bad_uri_and_origin(make_user):
    client = Client(
        name="App",
        owner=make_user("owner"),
        is_public=True,
        grant_types="authorization_code",
        redirect_uris="https://ok.example.com/cb\nhttp://bad.example.com/cb",
        refresh_token_in_cookie=True,
        allowed_origins="https://ok.example.com\nhttps://bad.example.com/",
    )
    with pytest.raises(ValidationError) as caught:
        client.full_clean()
    errors = caught.value.message_dict
    (uri_error,) = errors["redirect_uris"]
    assert uri_error.startswith("http://bad.example.com/cb uses http: only loopback")
    assert len(errors["allowed_origins"]) == 1
    assert errors["allowed_origins"][0].startswith("https://bad.example.com/ ")


def test_code_grant_needs_a_redirect_uri_and_cookie_mode_an_origin(make_user):
    client = Client(
        name="App",
        owner=make_user("owner"),
        is_public=True,
        grant_types="authorization_code",
        refresh_token_in_cookie=True,
    )
    with pytest.raises(ValidationError) as caught:
        client.full_clean()
    assert set(caught.value.message_dict) == {"redirect_uris", "allowed_origins"}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("create_client", *args, stdout=out)
    return out.getvalue()


def test_create_client_for_the_code_flow_and_browser_mode(make_user):
    make_user("owner")
    payload = json.loads(
        run(
            "SPA",
            "--owner=owner",
            "--public",
            "--redirect-uri=https://app.example.com/cb",
            "--redirect-uri=http://127.0.0.1/callback",
            "--skip-consent",
            "--refresh-token-in-cookie",
            "--allowed-origin=https://app.example.com",
            "--json",
        )
    )
    client = Client.objects.get(client_id=payload["client_id"])
    assert payload["client_secret"] is None
    # --redirect-uri alone selects the code grant.
    assert client.grant_types == "authorization_code"
    assert client.redirect_uri_list == ["https://app.example.com/cb", "http://127.0.0.1/callback"]
    assert client.skip_consent and client.refresh_token_in_cookie
    assert client.origin_list == ["https://app.example.com"]
    assert client.redirect_uri_matches("http://127.0.0.1:40000/callback")


def test_create_client_names_the_option_of_a_bad_value(make_user):
    make_user("owner")
    with pytest.raises(CommandError, match=r"--redirect-uri: http://x\.example\.com/cb uses http"):
        run("App", "--owner=owner", "--public", "--redirect-uri=http://x.example.com/cb")
    with pytest.raises(CommandError, match=r"--allowed-origin: .*needs an allowed origin"):
        run("App", "--owner=owner", "--public", "--refresh-token-in-cookie")
    with pytest.raises(CommandError, match="--redirect-uri: The authorization_code grant needs"):
        run("App", "--owner=owner", "--public", "--grant=authorization_code")
    assert not Client.objects.exists()
