"""``manage.py check --deploy``: what the app needs in production (token_lifecycle/checks.py)."""

from __future__ import annotations

import io

import pytest
from conftest import PASSWORD
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.utils import get_random_secret_key

LOCAL_MEMORY = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
# Never contacted: the checks read the configuration only.
REDIS = {"BACKEND": "token_lifecycle.redis_cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
DUMMY = {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
ISSUER = "https://api.example.test/auth"


def deploy_warnings(check_id: str) -> list:
    return [m for m in run_checks(include_deployment_checks=True) if m.id == check_id]


@pytest.fixture
def production(settings):
    """Settings that pass every deploy check of the app; each test spoils one."""
    caches = settings.CACHES
    settings.CACHES = {"default": REDIS}
    settings.SECRET_KEY = get_random_secret_key()
    settings.TOKEN_LIFECYCLE = {"ISSUER": ISSUER}
    yield settings
    settings.CACHES = caches  # before conftest clears every cache: this one is not there


def test_the_production_fixture_passes(production):
    ours = [m for m in run_checks(include_deployment_checks=True) if m.id.startswith("token_")]
    assert ours == []


def test_they_run_with_deploy_only(production):
    production.CACHES = {"default": LOCAL_MEMORY}
    production.TOKEN_LIFECYCLE = {}
    production.SECRET_KEY = "django-insecure-" + "x" * 60
    ids = {"token_lifecycle.W002", "token_lifecycle.W003", "token_lifecycle.W004"}
    assert ids <= {m.id for m in run_checks(include_deployment_checks=True)}
    assert not ids & {m.id for m in run_checks()}


def test_the_readme_settings_get_all_three(settings):
    """The example project's defaults are the README's: local memory, no issuer, public key."""
    settings.CACHES = {"default": LOCAL_MEMORY}  # whatever CACHE_URL this run was given
    out = io.StringIO()
    call_command("check", "--deploy", stdout=out, stderr=out)
    text = out.getvalue()
    for check_id in ("W002", "W003", "W004"):
        assert f"(token_lifecycle.{check_id})" in text
    assert "HINT" in text


class TestProcessLocalCache:
    def test_local_memory_is_warned(self, production):
        production.CACHES = {"default": LOCAL_MEMORY}
        [warning] = deploy_warnings("token_lifecycle.W002")
        assert "gunicorn -w 2" in warning.msg
        assert "VALIDATION_CACHE_SECONDS (300 s)" in warning.msg
        assert "throttles" in warning.msg
        assert "token_lifecycle.redis_cache.RedisCache" in warning.hint

    def test_the_delay_named_is_the_one_configured(self, production):
        production.CACHES = {"default": LOCAL_MEMORY}
        production.TOKEN_LIFECYCLE = {"ISSUER": ISSUER, "VALIDATION_CACHE_SECONDS": 60}
        [warning] = deploy_warnings("token_lifecycle.W002")
        assert "(60 s)" in warning.msg

    def test_a_subclass_of_local_memory_is_local_too(self, production):
        production.CACHES = {"default": REDIS, "tokens": LOCAL_MEMORY}
        production.TOKEN_LIFECYCLE = {"ISSUER": ISSUER, "CACHE_ALIAS": "tokens"}
        [warning] = deploy_warnings("token_lifecycle.W002")
        assert "CACHE_ALIAS 'tokens'" in warning.msg
        assert "throttles" not in warning.msg  # the default cache is shared

    def test_throttles_in_a_local_default_cache(self, production):
        production.CACHES = {"default": LOCAL_MEMORY, "tokens": REDIS}
        production.TOKEN_LIFECYCLE = {"ISSUER": ISSUER, "CACHE_ALIAS": "tokens"}
        [warning] = deploy_warnings("token_lifecycle.W002")
        assert "throttles" in warning.msg
        assert "VALIDATION_CACHE_SECONDS" not in warning.msg

    def test_with_the_validation_cache_off_only_the_throttles_matter(self, production):
        production.CACHES = {"default": LOCAL_MEMORY}
        production.TOKEN_LIFECYCLE = {"ISSUER": ISSUER, "VALIDATION_CACHE_SECONDS": 0}
        [warning] = deploy_warnings("token_lifecycle.W002")
        assert "VALIDATION_CACHE_SECONDS" not in warning.msg
        assert "throttles" in warning.msg

    def test_a_dummy_default_cache_never_throttles(self, production):
        production.CACHES = {"default": DUMMY}
        [warning] = deploy_warnings("token_lifecycle.W002")
        assert "never count" in warning.msg

    @pytest.mark.parametrize(
        "backend",
        [
            "django.core.cache.backends.redis.RedisCache",
            "token_lifecycle.redis_cache.RedisCache",
            "django.core.cache.backends.db.DatabaseCache",
        ],
    )
    def test_shared_caches_pass(self, production, backend):
        production.CACHES = {"default": {"BACKEND": backend, "LOCATION": "127.0.0.1:1"}}
        assert deploy_warnings("token_lifecycle.W002") == []

    def test_it_can_be_silenced_for_a_single_process(self, production):
        production.CACHES = {"default": LOCAL_MEMORY}
        production.SILENCED_SYSTEM_CHECKS = ["token_lifecycle.W002"]
        out = io.StringIO()
        call_command("check", "--deploy", stdout=out, stderr=out)
        assert "token_lifecycle.W002" not in out.getvalue()


class TestIssuer:
    def test_an_unset_issuer_is_warned(self, production):
        production.TOKEN_LIFECYCLE = {}
        [warning] = deploy_warnings("token_lifecycle.W003")
        assert "localhost" in warning.msg and "127.0.0.1" in warning.msg
        assert "TOKEN_LIFECYCLE['ISSUER']" in warning.hint

    def test_a_set_issuer_passes(self, production):
        assert deploy_warnings("token_lifecycle.W003") == []

    def test_what_it_warns_of(self, oauth_client, user, token_request, client):
        """A token issued at localhost is refused at 127.0.0.1 when the host names the issuer."""
        client_obj, secret = oauth_client
        response = token_request(
            {"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=(client_obj.client_id, secret),
            HTTP_HOST="localhost:8000",
        )
        access = response.json()["access_token"]
        at = {"HTTP_AUTHORIZATION": f"Bearer {access}"}
        assert client.get("/api/whoami/", HTTP_HOST="localhost:8000", **at).status_code == 200
        assert client.get("/api/whoami/", HTTP_HOST="127.0.0.1:8000", **at).status_code == 401


class TestKeyEncryptionSecret:
    @pytest.mark.parametrize(
        ("secret_key", "says"),
        [
            ("django-insecure-example-project-only-never-use-in-production", "example project"),
            ("django-insecure-" + get_random_secret_key(), "django-insecure"),
            ("s3cr3t", "shorter than 50 characters"),
            ("ab" * 40, "fewer than 5 different characters"),
        ],
    )
    def test_an_insecure_secret_key_is_warned(self, production, secret_key, says):
        production.SECRET_KEY = secret_key
        [warning] = deploy_warnings("token_lifecycle.W004")
        assert "SECRET_KEY" in warning.msg and says in warning.msg
        assert "SECRET_KEY_FALLBACKS" in warning.hint
        assert secret_key not in warning.msg + warning.hint

    def test_a_key_encryption_secret_replaces_the_secret_key(self, production):
        production.SECRET_KEY = "django-insecure-example-project-only-never-use-in-production"
        production.TOKEN_LIFECYCLE = {
            "ISSUER": ISSUER,
            "KEY_ENCRYPTION_SECRET": get_random_secret_key(),
        }
        assert deploy_warnings("token_lifecycle.W004") == []

    def test_a_weak_key_encryption_secret_is_warned(self, production):
        production.TOKEN_LIFECYCLE = {"ISSUER": ISSUER, "KEY_ENCRYPTION_SECRET": "short"}
        [warning] = deploy_warnings("token_lifecycle.W004")
        assert "KEY_ENCRYPTION_SECRET" in warning.msg

    def test_a_strong_secret_key_passes(self, production):
        assert deploy_warnings("token_lifecycle.W004") == []


def test_invalid_settings_leave_it_to_e001(production):
    production.TOKEN_LIFECYCLE = {"MAX_PAIRS_PER_CLIENT": 0}
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert "token_lifecycle.E001" in ids
    assert not {"token_lifecycle.W002", "token_lifecycle.W003", "token_lifecycle.W004"} & ids
