"""Hardening of the admin: no prefix oracle on secrets through URL lookups, one
permission for revoking on every path, and no secret in Django's error reports.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import error_report
from django.contrib.auth.models import Permission
from django.urls import reverse

from token_lifecycle import credentials, keys, services
from token_lifecycle.models import Client, SigningKey, TokenPair
from token_lifecycle.rules import RevokeReason

CLIENTS_URL = "/admin/token_lifecycle/client/"
PAIRS_URL = "/admin/token_lifecycle/tokenpair/"
KEYS_URL = "/admin/token_lifecycle/signingkey/"
ISSUER = "http://testserver/auth"

pytestmark = pytest.mark.django_db


def issue(client: Client, user) -> TokenPair:
    return services.issue_pair(client=client, user=user, issuer=ISSUER, grant_type="password").pair


def run_action(http, url: str, action: str, objects) -> None:
    data = {"action": action, "index": 0, "_selected_action": [str(o.pk) for o in objects]}
    response = http.post(url, data)
    assert response.status_code in (200, 302), response.content[:300]


def staff_with(make_user, username: str, *codenames: str):
    user = make_user(username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


# -- Item 5: no lookup on a digest, a ciphertext or a password hash -------------------


@pytest.fixture
def secrets_on_rows(make_client, user):
    """A client, a pair and a signing key, each with its stored secret."""
    client, _ = make_client("target")
    pair = issue(client, user)
    key = SigningKey.objects.get()  # created by the first issue
    return client, pair, key


def test_lookups_on_digests_and_ciphertexts_are_refused(admin_client, secrets_on_rows):
    """Each would otherwise answer "does the stored value start with ...?" with rows."""
    client, pair, key = secrets_on_rows
    probes = [
        (CLIENTS_URL, "client_secret_digest__startswith", client.client_secret_digest[:2]),
        (CLIENTS_URL, "client_secret_digest", client.client_secret_digest),
        (PAIRS_URL, "refresh_token_digest__startswith", pair.refresh_token_digest[:2]),
        (PAIRS_URL, "refresh_token_digest__gte", pair.refresh_token_digest),
        (KEYS_URL, "private_key_ciphertext__startswith", key.private_key_ciphertext[:2]),
    ]
    answers = {}
    for url, lookup, value in probes:
        answers[lookup] = admin_client.get(url, {lookup: value}).status_code
    assert answers == {lookup: 400 for _, lookup, _ in probes}


def test_lookups_reaching_a_secret_across_a_relation_are_refused(admin_client, secrets_on_rows):
    client, _, _ = secrets_on_rows
    probes = [
        (PAIRS_URL, "client__client_secret_digest__startswith", client.client_secret_digest[:2]),
        (PAIRS_URL, "user__password__startswith", "md5$"),
        (PAIRS_URL, "parent__refresh_token_digest__startswith", "0"),
        (CLIENTS_URL, "owner__password__startswith", "md5$"),
    ]
    answers = {
        lookup: admin_client.get(url, {lookup: value}).status_code for url, lookup, value in probes
    }
    assert answers == {lookup: 400 for _, lookup, _ in probes}


def test_ordinary_filters_still_work(admin_client, secrets_on_rows):
    client, _, _ = secrets_on_rows
    assert admin_client.get(PAIRS_URL, {"client__id__exact": client.pk}).status_code == 200
    assert admin_client.get(CLIENTS_URL, {"is_active__exact": "1"}).status_code == 200
    assert admin_client.get(PAIRS_URL, {"revoke_reason__exact": "admin"}).status_code == 200


# -- Item 6: revoking needs change_tokenpair, on every path ---------------------------


@pytest.fixture
def live_pairs(make_client, make_user):
    client, _ = make_client("target")
    pairs = [issue(client, make_user("alice")), issue(client, make_user("bob"))]
    return client, pairs


def revoked(pairs) -> list[str]:
    return sorted(
        TokenPair.objects.filter(pk__in=[p.pk for p in pairs]).values_list(
            "revoke_reason", flat=True
        )
    )


def test_revoke_all_pairs_of_a_client_needs_change_tokenpair(client, make_user, live_pairs):
    target, pairs = live_pairs
    # May change clients, may not revoke pairs.
    client.force_login(staff_with(make_user, "editor", "view_client", "change_client"))
    assert "revoke_all_pairs" not in client.get(CLIENTS_URL).content.decode()
    run_action(client, CLIENTS_URL, "revoke_all_pairs", [target])
    assert revoked(pairs) == ["", ""]


def test_revoke_all_pairs_of_a_client_with_change_tokenpair(client, make_user, live_pairs):
    target, pairs = live_pairs
    client.force_login(staff_with(make_user, "revoker", "view_client", "change_tokenpair"))
    assert "revoke_all_pairs" in client.get(CLIENTS_URL).content.decode()
    run_action(client, CLIENTS_URL, "revoke_all_pairs", [target])
    assert revoked(pairs) == [RevokeReason.ADMIN] * 2


def test_revoke_selected_and_the_button_need_change_tokenpair(client, make_user, live_pairs):
    _, pairs = live_pairs
    detail = reverse("admin:token_lifecycle_tokenpair_change", args=[pairs[0].pk])
    client.force_login(
        staff_with(make_user, "viewer", "view_tokenpair", "view_client", "change_client")
    )
    assert "revoke_selected" not in client.get(PAIRS_URL).content.decode()
    assert "Revoke this pair" not in client.get(detail).content.decode()
    run_action(client, PAIRS_URL, "revoke_selected", pairs)  # what the button would post
    assert revoked(pairs) == ["", ""]


def test_revoke_selected_and_the_button_with_change_tokenpair(client, make_user, live_pairs):
    _, pairs = live_pairs
    detail = reverse("admin:token_lifecycle_tokenpair_change", args=[pairs[0].pk])
    client.force_login(staff_with(make_user, "revoker", "view_tokenpair", "change_tokenpair"))
    assert "revoke_selected" in client.get(PAIRS_URL).content.decode()
    assert "Revoke this pair" in client.get(detail).content.decode()
    run_action(client, PAIRS_URL, "revoke_selected", pairs[:1])  # the button's post
    run_action(client, PAIRS_URL, "revoke_selected", pairs[1:])
    assert revoked(pairs) == [RevokeReason.ADMIN] * 2


def test_client_changes_need_change_client_not_change_tokenpair(client, make_user, live_pairs):
    """Deactivating and rotating a secret change the client: ``change_client``."""
    target, pairs = live_pairs
    digest = target.client_secret_digest
    client.force_login(staff_with(make_user, "revoker", "view_client", "change_tokenpair"))
    run_action(client, CLIENTS_URL, "deactivate", [target])
    run_action(client, CLIENTS_URL, "rotate_secret", [target])
    target.refresh_from_db()
    assert target.is_active and target.client_secret_digest == digest
    client.force_login(staff_with(make_user, "editor", "view_client", "change_client"))
    run_action(client, CLIENTS_URL, "deactivate", [target])
    target.refresh_from_db()
    assert not target.is_active
    assert revoked(pairs) == [RevokeReason.CLIENT_DISABLED] * 2


# -- Item 7: the secret page never puts the secret in an error report -----------------


@pytest.fixture
def new_secrets(monkeypatch) -> list[str]:
    """Every client secret generated during the test."""
    generated: list[str] = []
    original: Callable[[], str] = credentials.new_client_secret

    def record() -> str:
        generated.append(original())
        return generated[-1]

    monkeypatch.setattr(credentials, "new_client_secret", record)
    return generated


@pytest.fixture
def broken_secret_page(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the secret page failed")

    monkeypatch.setattr("token_lifecycle.admin.clients.TemplateResponse", fail)


def test_a_failing_rotation_page_reports_no_secret(
    admin_client, make_client, new_secrets, broken_secret_page
):
    target, _ = make_client("target")
    new_secrets.clear()
    data = {"action": "rotate_secret", "index": 0, "_selected_action": [str(target.pk)]}
    with error_report() as reports, pytest.raises(RuntimeError):
        admin_client.post(CLIENTS_URL, data)
    assert len(new_secrets) == 1
    assert reports and all("the secret page failed" in report for report in reports)
    assert not [report for report in reports if new_secrets[0] in report]


def test_a_failing_creation_page_reports_no_secret(
    admin_client, user, new_secrets, broken_secret_page
):
    form = {
        "name": "created",
        "owner": user.pk,
        "is_active": "on",
        "grant_types": ["client_credentials"],
    }
    with error_report() as reports, pytest.raises(RuntimeError):
        admin_client.post(CLIENTS_URL + "add/", form)
    assert len(new_secrets) == 1
    assert reports and all("the secret page failed" in report for report in reports)
    assert not [report for report in reports if new_secrets[0] in report]


def test_the_secret_page_shows_the_secret_but_its_context_repr_does_not(
    admin_client, make_client, new_secrets
):
    target, _ = make_client("target")
    new_secrets.clear()
    response = admin_client.post(
        CLIENTS_URL, {"action": "rotate_secret", "index": 0, "_selected_action": [target.pk]}
    )
    assert new_secrets[0] in response.content.decode()
    assert new_secrets[0] not in repr(response.context)
    assert str(response.context["secret"]) == new_secrets[0]


def test_signing_keys_admin_still_lists_keys(admin_client, secrets_on_rows):
    """The lookup guard is on the key admin too, and leaves its page alone."""
    keys.clear_cache()
    assert admin_client.get(KEYS_URL).status_code == 200
