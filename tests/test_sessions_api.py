"""The sessions API (docs/http-api.md): GET /auth/pairs/, POST /auth/logout/, .../logout-all/."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest
from freezegun import freeze_time

from token_lifecycle.models import TokenPair
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)


def jti(access_token: str) -> str:
    return jwt.decode(access_token, options={"verify_signature": False})["jti"]


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def clock():
    with freeze_time(T0) as frozen:
        yield frozen


@pytest.fixture
def refresh(token_request, oauth_client):
    def do(refresh_token: str) -> dict:
        client, secret = oauth_client
        response = token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, secret),
        )
        assert response.status_code == 200, response.content
        return response.json()

    return do


class TestPairs:
    def test_lists_the_callers_live_pairs_newest_first(self, clock, client, login, refresh):
        first = login()
        clock.tick(timedelta(hours=1))
        child = refresh(first["refresh_token"])
        clock.tick(timedelta(hours=1))
        second = login()

        response = client.get("/auth/pairs/", **bearer(child["access_token"]))
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store"
        listed = response.json()
        ids = [entry["id"] for entry in listed]
        by_issue = TokenPair.objects.order_by("-issued_at").values_list("pk", flat=True)
        assert ids == [str(pk) for pk in by_issue]
        assert [entry["current"] for entry in listed] == [True, False, False]
        assert [entry["presented"] for entry in listed] == [False, True, False]
        assert ids[0] == jti(second["access_token"])  # the newest login is current
        assert ids[1] == jti(child["access_token"])

    def test_entries_carry_the_timestamps_of_the_spec(self, clock, client, login, refresh):
        first = login()
        clock.tick(timedelta(minutes=30))
        child = refresh(first["refresh_token"])
        listed = client.get("/auth/pairs/", **bearer(child["access_token"])).json()
        newest, parent = listed
        assert newest["refresh_grace_ends_at"] is None  # unused
        assert parent["refresh_grace_ends_at"] == "2026-04-01T15:30:00Z"  # first use + 6 h
        assert parent["issued_at"] == "2026-04-01T09:00:00Z"
        assert parent["access_expires_at"] == "2026-04-16T09:00:00Z"
        assert parent["refresh_expires_at"] == "2026-05-01T09:00:00Z"

    def test_only_the_callers_principal(
        self, client, login, make_client, make_user, token_request
    ):
        mine = login()
        other_client, secret = make_client("other")
        login(client_creds=(other_client.client_id, secret))  # same user, other client
        make_user("bob")
        login(username="bob")  # same client, other user
        listed = client.get("/auth/pairs/", **bearer(mine["access_token"])).json()
        assert len(listed) == 1
        assert listed[0]["presented"] and listed[0]["current"]

    def test_dead_pairs_are_not_listed(self, clock, client, login):
        old = login()
        clock.tick(timedelta(seconds=1))
        new = login()
        TokenPair.objects.filter(issued_at=T0).update(
            revoked_at=T0, revoke_reason=RevokeReason.ADMIN
        )
        listed = client.get("/auth/pairs/", **bearer(new["access_token"])).json()
        assert [entry["id"] for entry in listed] == [jti(new["access_token"])]
        assert jti(old["access_token"]) != listed[0]["id"]

    def test_needs_a_bearer_token(self, client):
        response = client.get("/auth/pairs/")
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


class TestLogout:
    def test_revokes_only_the_presented_pair(
        self,
        clock,
        client,
        login,
        whoami,
        token_request,
        oauth_client,
        revoked_signals,
        django_capture_on_commit_callbacks,
    ):
        first = login()
        clock.tick(timedelta(seconds=1))
        second = login()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/auth/logout/", **bearer(first["access_token"]))
        assert response.status_code == 200
        assert response.json() == {"revoked": 1}
        assert whoami(first["access_token"]).status_code == 401
        assert whoami(second["access_token"]).status_code == 200
        client_obj, secret = oauth_client
        refused = token_request(
            {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=(client_obj.client_id, secret),
        )
        assert refused.json()["error"] == "invalid_grant"
        assert [signal["reason"] for signal in revoked_signals] == [RevokeReason.LOGOUT]
        assert TokenPair.objects.get(revoked_at__isnull=False).revoke_reason == "logout"

    def test_get_is_not_allowed(self, client, login):
        pair = login()
        assert client.get("/auth/logout/", **bearer(pair["access_token"])).status_code == 405

    def test_needs_a_bearer_token(self, client):
        assert client.post("/auth/logout/").status_code == 401


class TestLogoutAll:
    def test_revokes_every_pair_of_the_user_on_every_client(
        self,
        clock,
        client,
        login,
        whoami,
        make_client,
        make_user,
        revoked_signals,
        django_capture_on_commit_callbacks,
    ):
        here = login()
        other_client, secret = make_client("other")
        clock.tick(timedelta(seconds=1))
        there = login(client_creds=(other_client.client_id, secret))
        make_user("bob")
        bob = login(username="bob")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/auth/logout-all/", **bearer(here["access_token"]))
        assert response.json() == {"revoked": 2}
        assert whoami(here["access_token"]).status_code == 401
        assert whoami(there["access_token"]).status_code == 401
        assert whoami(bob["access_token"]).status_code == 200
        assert len(revoked_signals) == 2
        assert {signal["reason"] for signal in revoked_signals} == {RevokeReason.LOGOUT_ALL}
