"""Revocation sources: a password change, a user's or a client's deactivation revoke pairs."""

from __future__ import annotations

import pytest
from django.contrib.auth.forms import SetPasswordForm

from token_lifecycle.models import TokenPair
from token_lifecycle.rules import RevokeReason


@pytest.fixture
def alice_pairs(login, make_client, user, token_request):
    """Alice's pairs: a login through two clients, and client-credentials pairs of a client
    she owns (docs/lifecycle.md: those are hers too)."""
    owned, secret = make_client("alice's own", owner=user)
    other, other_secret = make_client("other")
    pairs = [login(), login(client_creds=(other.client_id, other_secret))]
    response = token_request({"grant_type": "client_credentials"}, auth=(owned.client_id, secret))
    pairs.append(response.json())
    return pairs


def reasons() -> list[str]:
    return sorted(TokenPair.objects.values_list("revoke_reason", flat=True))


def test_password_change_revokes_every_pair_of_the_user(
    alice_pairs, user, whoami, revoked_signals, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        user.set_password("a brand new password")
        user.save()
    assert reasons() == [RevokeReason.PASSWORD_CHANGE] * 3
    assert all(whoami(pair["access_token"]).status_code == 401 for pair in alice_pairs)
    assert len(revoked_signals) == 3  # once per pair


def test_djangos_password_form_counts_as_a_change(alice_pairs, user):
    form = SetPasswordForm(
        user, {"new_password1": "Xy7-long-pass!", "new_password2": "Xy7-long-pass!"}
    )
    assert form.is_valid(), form.errors
    form.save()
    assert reasons() == [RevokeReason.PASSWORD_CHANGE] * 3


def test_a_hash_upgrade_at_login_is_not_a_password_change(login, user, settings):
    """Django rehashes a password with the preferred hasher at login: no revocation."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    first = login()
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    second = login()  # authenticate() upgrades the MD5 hash to PBKDF2 and saves it
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")
    assert not TokenPair.objects.filter(revoked_at__isnull=False).exists()
    assert first["access_token"] != second["access_token"]


def test_password_change_revocation_can_be_turned_off(alice_pairs, user, settings, whoami):
    settings.TOKEN_LIFECYCLE = {"REVOKE_ON_PASSWORD_CHANGE": False}
    user.set_password("a brand new password")
    user.save()
    assert reasons() == [""] * 3
    assert whoami(alice_pairs[0]["access_token"]).status_code == 200


def test_user_deactivation_revokes_every_pair_of_the_user(alice_pairs, user, whoami):
    user.is_active = False
    user.save()
    assert reasons() == [RevokeReason.USER_DISABLED] * 3
    assert all(whoami(pair["access_token"]).status_code == 401 for pair in alice_pairs)


def test_deactivation_without_revocation_still_refuses_the_tokens(
    alice_pairs, user, settings, whoami
):
    settings.TOKEN_LIFECYCLE = {"REVOKE_ON_USER_DEACTIVATION": False}
    user.is_active = False
    user.save()
    assert reasons() == [""] * 3
    assert whoami(alice_pairs[0]["access_token"]).status_code == 401


def test_saving_an_inactive_user_again_revokes_nothing_new(alice_pairs, user, make_user):
    user.is_active = False
    user.save()
    revoked_at = set(TokenPair.objects.values_list("revoked_at", flat=True))
    user.first_name = "Alice"
    user.save()
    assert set(TokenPair.objects.values_list("revoked_at", flat=True)) == revoked_at


def test_other_saves_revoke_nothing(alice_pairs, user):
    user.first_name = "Alice"
    user.save()
    user.save(update_fields=["last_login"])
    assert reasons() == [""] * 3


def test_client_deactivation_revokes_its_pairs_only(
    login, make_client, oauth_client, whoami, revoked_signals, django_capture_on_commit_callbacks
):
    client, _ = oauth_client
    here = login()
    other, secret = make_client("other")
    there = login(client_creds=(other.client_id, secret))
    with django_capture_on_commit_callbacks(execute=True):
        client.is_active = False
        client.save()
    assert TokenPair.objects.get(client=client).revoke_reason == RevokeReason.CLIENT_DISABLED
    assert whoami(here["access_token"]).status_code == 401
    assert whoami(there["access_token"]).status_code == 200
    assert [signal["reason"] for signal in revoked_signals] == [RevokeReason.CLIENT_DISABLED]


def test_client_deactivation_without_revocation_still_refuses_the_tokens(
    login, oauth_client, whoami, settings
):
    settings.TOKEN_LIFECYCLE = {"REVOKE_ON_CLIENT_DEACTIVATION": False}
    client, _ = oauth_client
    pair = login()
    client.is_active = False
    client.save()
    assert TokenPair.objects.get().revoked_at is None
    assert whoami(pair["access_token"]).status_code == 401
