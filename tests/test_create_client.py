"""``manage.py create_client`` (docs/commands-and-signals.md)."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

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


def test_unknown_owner_is_an_error_that_says_how_to_get_one(db):
    with pytest.raises(CommandError, match="No user 'ghost'") as raised:
        run("Partner", "--owner", "ghost")
    assert "createsuperuser" in str(raised.value)
    assert "--owner USERNAME" in str(raised.value)
    assert not Client.objects.exists()


def test_missing_owner_says_how_to_create_one(db):
    with pytest.raises(CommandError, match="--owner is missing") as raised:
        run("Partner")
    assert "createsuperuser" in str(raised.value)
    assert not Client.objects.exists()


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


# -- Scope, introspection and the lifecycle overrides -----------------------------------


def test_scope_and_can_introspect(owner):
    payload = json.loads(
        run(
            "Resource server",
            "--owner",
            "owner",
            "--scope",
            "write read",
            "--scope",
            "admin",
            "--scope",
            "read",
            "--can-introspect",
            "--json",
        )
    )
    client = Client.objects.get(client_id=payload["client_id"])
    assert client.scope == "admin read write"
    assert client.allowed_scopes == {"admin", "read", "write"}
    assert client.can_introspect


def test_defaults_leave_scope_introspection_and_overrides_unset(owner):
    client = Client.objects.get(
        client_id=json.loads(run("P", "--owner", "owner", "--json"))["client_id"]
    )
    assert client.scope == ""
    assert not client.can_introspect
    assert client.access_token_lifetime is None
    assert client.refresh_token_lifetime is None
    assert client.refresh_grace_period is None
    assert client.max_pairs_per_client is None


def test_malformed_scope_is_refused(owner):
    with pytest.raises(CommandError, match="--scope") as raised:
        run("P", "--owner", "owner", "--scope", 'read "write"')
    assert "RFC 6749" in str(raised.value)
    assert not Client.objects.exists()


def test_lifetimes_use_the_from_env_duration_syntax(owner, token_request):
    payload = json.loads(
        run(
            "Short",
            "--owner",
            "owner",
            "--access-token-lifetime",
            "15m",
            "--refresh-token-lifetime",
            "1d12h",
            "--refresh-grace-period",
            "30s",
            "--max-pairs",
            "3",
            "--json",
        )
    )
    client = Client.objects.get(client_id=payload["client_id"])
    assert client.access_token_lifetime == timedelta(minutes=15)
    assert client.refresh_token_lifetime == timedelta(days=1, hours=12)
    assert client.refresh_grace_period == timedelta(seconds=30)
    assert client.max_pairs_per_client == 3
    # The overrides are the client's policy, and the token endpoint answers with it.
    response = token_request(
        {"grant_type": "client_credentials"},
        auth=(payload["client_id"], payload["client_secret"]),
        style="basic",
    )
    assert response.status_code == 200
    assert response.json()["expires_in"] == 15 * 60
    assert response.json()["refresh_expires_in"] == 36 * 3600


def test_human_output_lists_what_was_set(owner):
    output = run(
        "P",
        "--owner",
        "owner",
        "--scope",
        "read",
        "--can-introspect",
        "--access-token-lifetime",
        "1h",
        "--max-pairs",
        "2",
    )
    assert "scope:         read" in output
    assert "may introspect" in output
    assert "access token lifetime:  1:00:00" in output
    assert "max pairs:              2" in output
    assert "refresh grace period" not in output


@pytest.mark.parametrize("text", ["15", "15 minutes", "1m1h", "-5m", "1.5h"])
def test_a_duration_that_does_not_parse_is_refused_with_the_syntax(owner, text):
    with pytest.raises(CommandError, match="is not a duration") as raised:
        run("P", "--owner", "owner", f"--access-token-lifetime={text}")
    assert "15m" in str(raised.value)
    assert not Client.objects.exists()


def test_a_bare_number_hints_at_seconds(owner):
    with pytest.raises(CommandError, match=r"did you mean 900s\?"):
        run("P", "--owner", "owner", "--refresh-grace-period", "900")


def test_the_duration_parser_is_from_envs():
    """One parser for both spellings of a lifetime (token_lifecycle.conf)."""
    from token_lifecycle.conf import from_env, parse_duration
    from token_lifecycle.management.commands import create_client

    assert create_client.parse_duration is parse_duration
    assert from_env(environ={"TOKEN_LIFECYCLE_ACCESS_TOKEN_LIFETIME": "1h30m"}) == {
        "ACCESS_TOKEN_LIFETIME": parse_duration("1h30m")
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--access-token-lifetime", "0s"],
            "--access-token-lifetime: This lifetime must be a positive",
        ),
        (
            ["--refresh-token-lifetime", "1h", "--refresh-grace-period", "2h"],
            "--refresh-grace-period: Must be shorter than the refresh token lifetime",
        ),
        (["--refresh-grace-period", "30d"], "--refresh-grace-period: Must be shorter"),
        (["--max-pairs", "0"], "--max-pairs: "),
    ],
)
def test_lifetimes_the_model_refuses_name_the_option(owner, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("P", "--owner", "owner", *args)
    assert not Client.objects.exists()


def test_max_pairs_must_be_a_whole_number(owner):
    with pytest.raises(CommandError, match="--max-pairs"):
        run("P", "--owner", "owner", "--max-pairs", "two")
