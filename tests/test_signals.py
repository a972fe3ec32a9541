"""docs/commands-and-signals.md: each signal once per event, after the transaction commits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from token_lifecycle import services, signals
from token_lifecycle.models import TokenPair
from token_lifecycle.oauth.errors import InvalidGrant
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture
def received():
    """Every signal sent during the test, as (name, kwargs)."""
    events: list[tuple[str, dict]] = []
    handlers = {}
    for name in ("pair_issued", "pair_refreshed", "pair_revoked", "refresh_token_reused"):

        def handler(sender, signal=None, _name=name, **kwargs):
            events.append((_name, kwargs))

        handlers[name] = handler
        getattr(signals, name).connect(handler)
    yield events
    for name, handler in handlers.items():
        getattr(signals, name).disconnect(handler)


def names(events) -> list[str]:
    return [name for name, _ in events]


def test_nothing_is_sent_before_commit(
    oauth_client, user, received, django_capture_on_commit_callbacks
):
    client, _ = oauth_client
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.issue_pair(
            client=client, user=user, issuer="https://issuer", grant_type="password"
        )
    assert received == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert names(received) == ["pair_issued"]
    assert received[0][1]["grant_type"] == "password"


def test_issue_refresh_and_evict(
    oauth_client, user, received, django_capture_on_commit_callbacks, settings
):
    settings.TOKEN_LIFECYCLE = {"MAX_PAIRS_PER_CLIENT": 2}
    client, _ = oauth_client

    def issue():
        return services.issue_pair(client=client, user=user, issuer="i", grant_type="password")

    with freeze_time(T0) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            first = issue()
            clock.tick()
            child = services.refresh_pair(
                client=client, refresh_token=first.refresh_token, issuer="i"
            )
        assert names(received) == ["pair_issued", "pair_refreshed"]
        assert received[1][1]["parent"].pk == first.pair.pk
        assert received[1][1]["pair"].pk == child.pair.pk

        received.clear()
        clock.tick()
        with django_capture_on_commit_callbacks(execute=True):
            issue()  # a third live pair with a cap of two: `first` is evicted
        assert names(received) == ["pair_issued", "pair_revoked"]
        assert received[1][1]["pair_id"] == first.pair.pk
        assert received[1][1]["reason"] == RevokeReason.EVICTED


def test_reuse_signal_lists_the_revoked_family(
    oauth_client, user, received, django_capture_on_commit_callbacks
):
    client, _ = oauth_client
    with freeze_time(T0) as clock:
        first = services.issue_pair(client=client, user=user, issuer="i", grant_type="password")
        clock.tick()
        child = services.refresh_pair(client=client, refresh_token=first.refresh_token, issuer="i")
        clock.tick(timedelta(hours=7))
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(InvalidGrant, match="grace window"),
        ):
            services.refresh_pair(client=client, refresh_token=first.refresh_token, issuer="i")
    assert names(received) == ["pair_revoked", "pair_revoked", "refresh_token_reused"]
    reused = received[-1][1]
    assert reused["pair"].pk == first.pair.pk
    assert set(reused["revoked_pair_ids"]) == {first.pair.pk, child.pair.pk}
    assert TokenPair.objects.filter(revoke_reason=RevokeReason.REUSE_DETECTED).count() == 2


def test_revoking_twice_signals_once(
    oauth_client, user, received, django_capture_on_commit_callbacks
):
    client, _ = oauth_client
    issued = services.issue_pair(client=client, user=user, issuer="i", grant_type="password")
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.revoke_pair(issued.pair, RevokeReason.LOGOUT) is True
        assert services.revoke_pair(issued.pair, RevokeReason.ADMIN) is False
    assert names(received) == ["pair_revoked"]
    issued.pair.refresh_from_db()
    assert issued.pair.revoke_reason == RevokeReason.LOGOUT
