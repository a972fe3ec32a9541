"""One TOKEN_LIFECYCLE dict: defaults of docs/lifecycle.md, validation through system checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured, ValidationError

from token_lifecycle.conf import LifecycleSettings, lifecycle_settings, validate


def test_defaults_are_those_of_the_spec():
    settings, errors = validate({})
    assert errors == []
    assert settings.access_token_lifetime == timedelta(days=15)
    assert settings.refresh_token_lifetime == timedelta(days=30)
    assert settings.refresh_grace_period == timedelta(hours=6)
    assert settings.max_pairs_per_client == 10
    assert settings.max_session_lifetime is None
    assert settings.reuse_detection is True
    assert settings.signing_algorithm == "RS256"


def test_absent_setting_means_defaults():
    assert validate(None) == (LifecycleSettings(), [])


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"ACCESS_TOKEN_LIFETIME": 900}, "ACCESS_TOKEN_LIFETIME"),
        ({"ACCESS_TOKEN_LIFETIME": timedelta(0)}, "ACCESS_TOKEN_LIFETIME"),
        ({"REFRESH_TOKEN_LIFETIME": timedelta(days=-1)}, "REFRESH_TOKEN_LIFETIME"),
        ({"REFRESH_GRACE_PERIOD": None}, "REFRESH_GRACE_PERIOD"),
        ({"REFRESH_GRACE_PERIOD": timedelta(milliseconds=1500)}, "REFRESH_GRACE_PERIOD"),
        ({"REFRESH_GRACE_PERIOD": timedelta(days=31)}, "REFRESH_GRACE_PERIOD"),
        ({"MAX_PAIRS_PER_CLIENT": 0}, "MAX_PAIRS_PER_CLIENT"),
        ({"MAX_PAIRS_PER_CLIENT": "10"}, "MAX_PAIRS_PER_CLIENT"),
        ({"MAX_PAIRS_PER_CLIENT": True}, "MAX_PAIRS_PER_CLIENT"),
        ({"MAX_SESSION_LIFETIME": "P1D"}, "MAX_SESSION_LIFETIME"),
        ({"AUTHORIZATION_CODE_LIFETIME": timedelta(0)}, "AUTHORIZATION_CODE_LIFETIME"),
        ({"AUTHORIZATION_CODE_LIFETIME": 60}, "AUTHORIZATION_CODE_LIFETIME"),
        # A name Django cannot write would make every browser-mode answer a 500.
        ({"REFRESH_COOKIE_NAME": "tl refresh"}, "REFRESH_COOKIE_NAME"),
        ({"REFRESH_COOKIE_NAME": "tl=refresh"}, "REFRESH_COOKIE_NAME"),
        ({"REFRESH_COOKIE_NAME": ""}, "REFRESH_COOKIE_NAME"),
        ({"REFRESH_COOKIE_NAME": "__Host-refresh"}, "REFRESH_COOKIE_NAME"),
        ({"REUSE_DETECTION": "yes"}, "REUSE_DETECTION"),
        ({"SIGNING_ALGORITHM": "HS256"}, "SIGNING_ALGORITHM"),
        ({"SIGNING_ALGORITHM": "none"}, "SIGNING_ALGORITHM"),
        ({"ISSUER": ""}, "ISSUER"),
        ({"LEEWAY": timedelta(seconds=-1)}, "LEEWAY"),
        ({"ACESS_TOKEN_LIFETIME": timedelta(days=1)}, "ACESS_TOKEN_LIFETIME"),
        ({"access_token_lifetime": timedelta(days=1)}, "access_token_lifetime"),
    ],
)
def test_invalid_values_are_reported_with_their_key(raw, key):
    settings, errors = validate(raw)
    assert settings is None
    assert len(errors) == 1
    assert key in errors[0]


def test_not_a_dict():
    assert validate([("ACCESS_TOKEN_LIFETIME", 1)])[1] == [
        "TOKEN_LIFECYCLE must be a dict, not list."
    ]


def test_system_check_names_the_key(settings):
    settings.TOKEN_LIFECYCLE = {"MAX_PAIRS_PER_CLIENT": -3}
    errors = [m for m in run_checks() if m.id == "token_lifecycle.E001"]
    assert len(errors) == 1
    assert "MAX_PAIRS_PER_CLIENT" in errors[0].msg


def test_valid_settings_pass_the_checks():
    assert not [m for m in run_checks() if m.id.startswith("token_lifecycle.E")]


def test_accessor_refuses_invalid_settings(settings):
    settings.TOKEN_LIFECYCLE = {"REUSE_DETECTION": 1}
    with pytest.raises(ImproperlyConfigured, match="REUSE_DETECTION"):
        lifecycle_settings()


def test_accessor_follows_setting_changes(settings):
    settings.TOKEN_LIFECYCLE = {"MAX_PAIRS_PER_CLIENT": 3}
    assert lifecycle_settings().max_pairs_per_client == 3
    settings.TOKEN_LIFECYCLE = {}
    assert lifecycle_settings().max_pairs_per_client == 10


def test_sqlite_without_immediate_transactions_is_warned(db):
    from django.db import connections

    database = connections["default"]
    if database.vendor != "sqlite":
        pytest.skip("SQLite-specific check")
    options = database.settings_dict.setdefault("OPTIONS", {})
    saved = options.pop("transaction_mode", None)
    try:
        warnings = [m for m in run_checks(databases=["default"]) if m.id == "token_lifecycle.W001"]
        assert len(warnings) == 1
    finally:
        if saved is not None:
            options["transaction_mode"] = saved
    assert not [m for m in run_checks(databases=["default"]) if m.id == "token_lifecycle.W001"]


class TestClientOverrides:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("access_token_lifetime", timedelta(0)),
            ("refresh_token_lifetime", timedelta(seconds=-5)),
            ("refresh_grace_period", timedelta(days=40)),
            ("access_token_lifetime", timedelta(seconds=1.5)),
            ("max_pairs_per_client", 0),
        ],
    )
    def test_invalid_override_is_refused(self, make_client, field, value):
        client, _ = make_client()
        setattr(client, field, value)
        with pytest.raises(ValidationError) as raised:
            client.full_clean()
        assert field in raised.value.message_dict

    def test_public_client_cannot_have_client_credentials(self, make_client):
        client, _ = make_client(public=True)
        client.grant_types = "client_credentials"
        with pytest.raises(ValidationError) as raised:
            client.full_clean()
        assert "grant_types" in raised.value.message_dict

    def test_unknown_grant_type_is_refused(self, make_client):
        client, _ = make_client()
        client.grant_types = "password implicit"
        with pytest.raises(ValidationError):
            client.full_clean()
