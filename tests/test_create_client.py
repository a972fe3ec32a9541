"""``manage.py create_client`` (docs/commands-and-signals.md)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from token_lifecycle.models import Client


def run(*args) -> str:
    out = io.StringIO()
    call_command("create_client", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def owner(make_user):
    return make_user("owner")


def test_json_prints_exactly_one_object_with_the_credentials(owner, token_request):
    output = run("Partner", "--owner", "owner", "--json")
    payload = json.loads(output)
    assert set(payload) == {"client_id", "client_secret"}
    client = Client.objects.get(client_id=payload["client_id"])
    assert client.grant_types == "client_credentials"
    assert client.owner == owner
    # Only the digest is stored, and the printed secret authenticates.
    assert payload["client_secret"] not in client.client_secret_digest
    response = token_request(
        {"grant_type": "client_credentials"},
        auth=(payload["client_id"], payload["client_secret"]),
        style="basic",
    )
    assert response.status_code == 200


def test_public_client_has_a_null_secret(owner):
    payload = json.loads(run("App", "--owner", "owner", "--public", "--json"))
    assert payload["client_secret"] is None
    client = Client.objects.get(client_id=payload["client_id"])
    assert client.is_public
    assert client.grant_types == "password"
    assert client.client_secret_digest == ""


def test_grants_are_repeatable(owner):
    payload = json.loads(
        run(
            "Both",
            "--owner",
            "owner",
            "--grant",
            "password",
            "--grant",
            "client_credentials",
            "--json",
        )
    )
    client = Client.objects.get(client_id=payload["client_id"])
    assert client.grant_types.split() == ["password", "client_credentials"]


def test_human_output_shows_the_secret_once(owner):
    output = run("Partner", "--owner", "owner")
    assert "client_id:" in output
    assert "client_secret: cs_" in output
    assert "shown only now" in output


def test_unknown_owner_is_an_error(db):
    with pytest.raises(CommandError, match="No user 'ghost'"):
        run("Partner", "--owner", "ghost")


def test_public_client_credentials_is_refused(owner):
    with pytest.raises(CommandError, match="public client"):
        run("App", "--owner", "owner", "--public", "--grant", "client_credentials")
    assert not Client.objects.exists()


def test_unknown_grant_is_refused_by_the_parser(owner):
    with pytest.raises(CommandError):
        run("App", "--owner", "owner", "--grant", "implicit")


def test_client_ids_never_start_with_a_dash(monkeypatch):
    """An id like ``-5rPd...`` is read as an option by command lines (argparse, getopt)."""
    from token_lifecycle import credentials

    drawn = iter(["-5rPdIRAlKBI_UStZ0FJdw", "--xyz", "K6SsoVJvdeV0pJtiihm0_A"])
    monkeypatch.setattr(credentials.secrets, "token_urlsafe", lambda nbytes: next(drawn))
    assert credentials.new_client_id() == "K6SsoVJvdeV0pJtiihm0_A"
