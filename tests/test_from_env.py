"""``token_lifecycle.conf.from_env``: ``TOKEN_LIFECYCLE_<KEY>`` variables into the dict."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from token_lifecycle.conf import LifecycleSettings, from_env, validate

ROOT = Path(__file__).resolve().parent.parent


def env(**variables: str) -> dict[str, str]:
    return {f"TOKEN_LIFECYCLE_{key}": value for key, value in variables.items()}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 15 * 60),
        ("30d", 30 * 86400),
        ("6h", 6 * 3600),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("1h30m", 5400),
        ("1w2d3h4m5s", 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        (" 15m ", 900),
    ],
)
def test_durations(text, seconds):
    assert from_env(environ=env(ACCESS_TOKEN_LIFETIME=text)) == {
        "ACCESS_TOKEN_LIFETIME": timedelta(seconds=seconds)
    }


def test_every_duration_key_reads_a_duration():
    keys = [
        "ACCESS_TOKEN_LIFETIME",
        "REFRESH_TOKEN_LIFETIME",
        "REFRESH_GRACE_PERIOD",
        "MAX_SESSION_LIFETIME",
        "LEEWAY",
        "JWKS_MAX_AGE",
        "PURGE_RETENTION",
    ]
    result = from_env(environ=env(**dict.fromkeys(keys, "1h")))
    assert result == dict.fromkeys(keys, timedelta(hours=1))


@pytest.mark.parametrize("key", ["LEEWAY", "JWKS_MAX_AGE", "PURGE_RETENTION"])
def test_zero_where_the_setting_allows_it(key):
    assert from_env(environ=env(**{key: "0s"})) == {key: timedelta(0)}


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("MAX_PAIRS_PER_CLIENT", "3", 3),
        ("MAX_REQUEST_BODY_BYTES", "32768", 32768),
        ("MAX_BEARER_TOKEN_BYTES", "4096", 4096),
        ("VALIDATION_CACHE_SECONDS", "0", 0),
        ("VALIDATION_CACHE_SECONDS", "300", 300),
    ],
)
def test_integers(key, text, value):
    result = from_env(environ=env(**{key: text}))
    assert result == {key: value}
    assert type(result[key]) is int


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        ("TRUE", True),
        ("No", False),
    ],
)
@pytest.mark.parametrize(
    "key",
    [
        "REUSE_DETECTION",
        "REVOKE_ON_PASSWORD_CHANGE",
        "REVOKE_ON_USER_DEACTIVATION",
        "REVOKE_ON_CLIENT_DEACTIVATION",
    ],
)
def test_booleans(key, text, value):
    assert from_env(environ=env(**{key: text})) == {key: value}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("ISSUER", "https://api.example.com/auth"),
        ("AUDIENCE", "https://api.example.com"),
        ("SIGNING_ALGORITHM", "EdDSA"),
        ("CACHE_ALIAS", "tokens"),
        ("KEY_ENCRYPTION_SECRET", " secret with spaces kept "),
    ],
)
def test_strings_are_taken_as_they_are(key, text):
    assert from_env(environ=env(**{key: text})) == {key: text}


@pytest.mark.parametrize("text", ["none", "None", "NONE", "", "  "])
@pytest.mark.parametrize(
    "key", ["MAX_SESSION_LIFETIME", "ISSUER", "AUDIENCE", "KEY_ENCRYPTION_SECRET"]
)
def test_none_or_empty_clears_an_optional_key(key, text):
    base = {key: "https://set.example" if key != "MAX_SESSION_LIFETIME" else timedelta(days=1)}
    assert from_env(base, environ=env(**{key: text})) == {key: None}


def test_variables_merge_over_the_dict_given_which_is_left_alone():
    base = {"ACCESS_TOKEN_LIFETIME": timedelta(days=15), "MAX_PAIRS_PER_CLIENT": 10}
    result = from_env(base, environ=env(MAX_PAIRS_PER_CLIENT="4", REUSE_DETECTION="no"))
    assert result == {
        "ACCESS_TOKEN_LIFETIME": timedelta(days=15),
        "MAX_PAIRS_PER_CLIENT": 4,
        "REUSE_DETECTION": False,
    }
    assert base == {"ACCESS_TOKEN_LIFETIME": timedelta(days=15), "MAX_PAIRS_PER_CLIENT": 10}


def test_only_variables_named_after_a_setting_are_read():
    environ = {
        "TOKEN_LIFECYCLE_TEST_REDIS_URL": "redis://elsewhere/1",  # the test suite's own
        "TOKEN_LIFECYCLE_REQUIRE_POSTGRES": "1",
        "token_lifecycle_issuer": "https://lower.case.example",
        "ISSUER": "https://no.prefix.example",
    }
    assert from_env({"LEEWAY": timedelta(0)}, environ=environ) == {"LEEWAY": timedelta(0)}


def test_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("TOKEN_LIFECYCLE_ISSUER", "https://api.example.com/auth")
    assert from_env()["ISSUER"] == "https://api.example.com/auth"


def test_the_result_is_a_valid_setting():
    result = from_env(
        environ=env(
            ACCESS_TOKEN_LIFETIME="15m",
            REFRESH_TOKEN_LIFETIME="30d",
            REFRESH_GRACE_PERIOD="6h",
            MAX_SESSION_LIFETIME="none",
            MAX_PAIRS_PER_CLIENT="5",
            REUSE_DETECTION="yes",
            ISSUER="https://api.example.com/auth",
            SIGNING_ALGORITHM="ES256",
        )
    )
    settings, errors = validate(result)
    assert errors == []
    assert settings == LifecycleSettings(
        access_token_lifetime=timedelta(minutes=15),
        max_pairs_per_client=5,
        issuer="https://api.example.com/auth",
        signing_algorithm="ES256",
    )


@pytest.mark.parametrize(
    ("key", "text", "says"),
    [
        # Durations: a unit is required, whole numbers, lower case, largest first.
        ("ACCESS_TOKEN_LIFETIME", "900", "did you mean 900s?"),
        ("ACCESS_TOKEN_LIFETIME", "15x", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "1.5h", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "15M", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "-5m", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "m", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "30m1h", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "P1D", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "15 m", "not a duration"),
        ("ACCESS_TOKEN_LIFETIME", "0s", "must be a positive duration"),
        ("REFRESH_GRACE_PERIOD", "", "is empty"),
        ("REFRESH_GRACE_PERIOD", "none", "not a duration"),
        ("MAX_SESSION_LIFETIME", "0d", "must be a positive duration"),
        # Integers.
        ("MAX_PAIRS_PER_CLIENT", "ten", "not a whole number"),
        ("MAX_PAIRS_PER_CLIENT", "1.0", "not a whole number"),
        ("MAX_PAIRS_PER_CLIENT", "true", "not a whole number"),
        ("MAX_PAIRS_PER_CLIENT", "0", "must be a positive integer"),
        ("MAX_PAIRS_PER_CLIENT", "-3", "must be a positive integer"),
        ("MAX_PAIRS_PER_CLIENT", "", "is empty"),
        ("MAX_REQUEST_BODY_BYTES", "16k", "not a whole number"),
        ("VALIDATION_CACHE_SECONDS", "301", "from 0 to 300"),
        ("VALIDATION_CACHE_SECONDS", "-1", "from 0 to 300"),
        ("VALIDATION_CACHE_SECONDS", "5m", "not a whole number"),
        # Booleans.
        ("REUSE_DETECTION", "maybe", "not a boolean"),
        ("REUSE_DETECTION", "on", "not a boolean"),
        ("REVOKE_ON_PASSWORD_CHANGE", "2", "not a boolean"),
        ("REVOKE_ON_CLIENT_DEACTIVATION", "", "is empty"),
        # Strings.
        ("SIGNING_ALGORITHM", "HS256", "must be one of RS256, ES256, EdDSA"),
        ("SIGNING_ALGORITHM", "", "is empty"),
        ("CACHE_ALIAS", "", "is empty"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(key, text, says):
    with pytest.raises(ImproperlyConfigured) as raised:
        from_env(environ=env(**{key: text}))
    message = str(raised.value)
    assert message.startswith(f"TOKEN_LIFECYCLE_{key}")
    assert says in message


def test_a_refused_secret_is_never_repeated(monkeypatch):
    # KEY_ENCRYPTION_SECRET accepts any string; make the check refuse one.
    monkeypatch.setattr("token_lifecycle.conf._check_value", lambda name, value: "is refused.")
    with pytest.raises(ImproperlyConfigured) as raised:
        from_env(environ=env(KEY_ENCRYPTION_SECRET="hunter2-hunter2"))
    assert "TOKEN_LIFECYCLE_KEY_ENCRYPTION_SECRET" in str(raised.value)
    assert "hunter2" not in str(raised.value)


# -- The example project reads its settings with it ---------------------------


def run_example(code: str, **variables: str) -> subprocess.CompletedProcess:
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("TOKEN_LIFECYCLE")
    }
    environ.update(
        PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="example_project.settings", **variables
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_example_project_reads_its_settings_from_the_environment():
    done = run_example(
        "import django; django.setup()\n"
        "from token_lifecycle.conf import lifecycle_settings as s\n"
        "print(s().access_token_lifetime.total_seconds(), s().issuer, s().max_pairs_per_client)",
        TOKEN_LIFECYCLE_ACCESS_TOKEN_LIFETIME="15m",
        TOKEN_LIFECYCLE_ISSUER="https://api.example.com/auth",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["900.0", "https://api.example.com/auth", "10"]


def test_the_example_project_refuses_to_start_with_a_bad_variable():
    done = run_example(
        "import django; django.setup()", TOKEN_LIFECYCLE_REFRESH_GRACE_PERIOD="6 hours"
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured: TOKEN_LIFECYCLE_REFRESH_GRACE_PERIOD='6 hours'" in done.stderr
