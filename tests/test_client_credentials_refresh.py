"""A refresh token with ``client_credentials``: a per-client choice (RFC 6749 §4.4.3).

On by default (today's behaviour: clients on several servers refresh one
family through its grace window); off, the answer carries no ``refresh_token``
nor ``refresh_expires_in`` and the client logs in again when its access token
expires. Password logins and refreshes are not affected.
"""

from __future__ import annotations

import io
import json

import pytest
from conftest import PASSWORD
from django.core.management import call_command
from django.urls import reverse

from token_lifecycle.models import Client, TokenPair

REFRESH_FIELDS = {"refresh_token", "refresh_expires_in"}


def client_credentials(token_request, client: Client, secret: str):
    response = token_request({"grant_type": "client_credentials"}, auth=(client.client_id, secret))
    assert response.status_code == 200, response.content
    return response.json()


def test_on_by_default(make_client, token_request):
    client, secret = make_client()
    assert client.client_credentials_refresh is True
    body = client_credentials(token_request, client, secret)
    assert set(body) >= REFRESH_FIELDS


def test_off_the_answer_has_no_refresh_token(make_client, token_request, whoami):
    client, secret = make_client(client_credentials_refresh=False)
    body = client_credentials(token_request, client, secret)
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 86400
    assert whoami(body["access_token"]).status_code == 200


def test_off_the_scope_is_still_reported(make_client, token_request):
    client, secret = make_client(client_credentials_refresh=False, scope="read write")
    body = client_credentials(token_request, client, secret)
    assert body["scope"] == "read write"
    assert not REFRESH_FIELDS & set(body)


def test_off_password_logins_and_their_refreshes_keep_theirs(make_client, user, token_request):
    client, secret = make_client(client_credentials_refresh=False)
    creds = (client.client_id, secret)
    login = token_request(
        {"grant_type": "password", "username": "alice", "password": PASSWORD}, auth=creds
    ).json()
    assert set(login) >= REFRESH_FIELDS
    refreshed = token_request(
        {"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}, auth=creds
    ).json()
    assert set(refreshed) >= REFRESH_FIELDS


def test_the_python_client_logs_in_again_instead(make_client, token_request):
    """token_lifecycle.client reads such an answer: no refresh token, so it logs in."""
    from token_lifecycle.client.tokens import TokenSet

    client, secret = make_client(client_credentials_refresh=False)
    body = client_credentials(token_request, client, secret)
    tokens = TokenSet.from_token_response(body, requested_at=1_700_000_000.0)
    assert tokens.refresh_token is None and tokens.refresh_expires_at is None


# -- create_client --------------------------------------------------------------


@pytest.fixture
def owner(make_user):
    return make_user("owner")


def create(*args: str) -> Client:
    out = io.StringIO()
    call_command("create_client", "Partner", "--owner", "owner", *args, "--json", stdout=out)
    return Client.objects.get(client_id=json.loads(out.getvalue())["client_id"])


def test_create_client_keeps_refresh_tokens_by_default(owner):
    assert create().client_credentials_refresh is True


def test_create_client_no_refresh_token(owner, token_request):
    out = io.StringIO()
    call_command("create_client", "Partner", "--owner", "owner", "--no-refresh-token", stdout=out)
    assert "client_credentials answers carry no refresh token" in out.getvalue()
    client = Client.objects.get()
    assert client.client_credentials_refresh is False
    secret = out.getvalue().split("client_secret:")[1].split()[0]
    assert not REFRESH_FIELDS & set(client_credentials(token_request, client, secret))


# -- The admin ------------------------------------------------------------------


def test_the_admin_shows_and_edits_it(admin_client, make_client, token_request):
    client, secret = make_client("Reporting")
    url = reverse("admin:token_lifecycle_client_change", args=[client.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="client_credentials_refresh"' in page
    assert "RFC 6749 §4.4.3" in page  # the help text says why it is on
    form = {
        "name": client.name,
        "owner": client.owner_id,
        "is_active": "on",
        "grant_types": client.grant_types.split(),
        "_save": "Save",
    }  # the checkbox left unticked
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content[:2000]
    client.refresh_from_db()
    assert client.client_credentials_refresh is False
    assert not REFRESH_FIELDS & set(client_credentials(token_request, client, secret))
    response = admin_client.post(url, {**form, "client_credentials_refresh": "on"})
    client.refresh_from_db()
    assert client.client_credentials_refresh is True


def test_the_migration_matches_the_model(db):
    out = io.StringIO()
    call_command("makemigrations", "token_lifecycle", "--check", "--dry-run", stdout=out)
    assert TokenPair.objects.count() == 0  # the table of the migrated database is usable


def test_off_the_pair_dies_with_its_access_token(make_client, token_request):
    """No hidden refresh token keeps the pair live (and counted by the cap) for 30 days."""
    client, secret = make_client(client_credentials_refresh=False)
    client_credentials(token_request, client, secret)
    pair = TokenPair.objects.get(client=client)
    assert pair.refresh_expires_at == pair.issued_at
    assert pair.live_until == pair.access_expires_at
