"""A database that is down or gives up answers 503 with Retry-After, never 500.

The real fault (PostgreSQL restarted under load) is exercised by the soak
run; here the failure is injected where the code meets the database.
"""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from token_lifecycle import cache, services
from token_lifecycle.models import TokenPair


def fail(*args, **kwargs):
    raise OperationalError("the database is restarting")


def fail_on_pair_table(execute, sql, params, many, context):
    if TokenPair._meta.db_table in sql:
        fail()
    return execute(sql, params, many, context)


@pytest.fixture
def pair(login):
    return login()


def test_bearer_authentication_on_a_cold_cache(pair, whoami, monkeypatch):
    monkeypatch.setattr(cache, "_from_database", fail)
    response = whoami(pair["access_token"])
    assert response.status_code == 503
    assert response["Retry-After"] == "1"


def test_bearer_authentication_on_a_warm_cache_needs_no_database(pair, whoami, monkeypatch):
    assert whoami(pair["access_token"]).status_code == 200
    monkeypatch.setattr(cache, "_from_database", fail)
    assert whoami(pair["access_token"]).status_code == 200


@pytest.mark.parametrize("grant", ["refresh_token", "client_credentials"])
def test_token_endpoint(pair, token_request, oauth_client, grant):
    client, secret = oauth_client
    params = {"grant_type": grant, "refresh_token": pair["refresh_token"]}
    with connection.execute_wrapper(fail_on_pair_table):  # every statement on the pair table
        response = token_request(params, auth=(client.client_id, secret))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == "1"


def test_sessions_api(pair, client, monkeypatch):
    client.get("/auth/pairs/", HTTP_AUTHORIZATION=f"Bearer {pair['access_token']}")  # warm
    monkeypatch.setattr(services, "principal_pairs", fail)
    response = client.get("/auth/pairs/", HTTP_AUTHORIZATION=f"Bearer {pair['access_token']}")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
