"""The pure rules of docs/lifecycle.md, at their exact boundaries, with no database."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from token_lifecycle import rules
from token_lifecycle.rules import Policy, RefreshOutcome

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
POLICY = Policy(
    access_token_lifetime=timedelta(days=15),
    refresh_token_lifetime=timedelta(days=30),
    refresh_grace_period=timedelta(hours=6),
    max_pairs=10,
    max_session_lifetime=None,
    reuse_detection=True,
)


@dataclasses.dataclass
class Pair:
    """A stand-in for TokenPair with just the timestamps the rules read."""

    issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    session_ends_at: datetime | None = None
    rotated_at: datetime | None = None
    refresh_grace_ends_at: datetime | None = None
    revoked_at: datetime | None = None
    name: str = ""


def issue(now: datetime = T0, policy: Policy = POLICY, session_end=None, name="") -> Pair:
    times = rules.new_pair_times(policy, now, session_end)
    return Pair(
        issued_at=times.issued_at,
        access_expires_at=times.access_expires_at,
        refresh_expires_at=times.refresh_expires_at,
        session_ends_at=times.session_ends_at,
        name=name,
    )


def use(pair: Pair, now: datetime, policy: Policy = POLICY) -> rules.RefreshDecision:
    """Apply a refresh decision to the stand-in, as the service layer does."""
    decision = rules.decide_refresh(pair, now, policy)
    if decision.outcome is RefreshOutcome.FIRST_USE:
        pair.rotated_at = decision.rotated_at
        pair.refresh_grace_ends_at = decision.refresh_grace_ends_at
    return decision


class TestIssue:
    def test_lifetimes_start_at_issue(self):
        pair = issue()
        assert pair.access_expires_at == T0 + timedelta(days=15)
        assert pair.refresh_expires_at == T0 + timedelta(days=30)
        assert pair.session_ends_at is None

    def test_session_end_caps_both_lifetimes(self):
        policy = dataclasses.replace(POLICY, max_session_lifetime=timedelta(days=20))
        session_end = rules.session_ends_at(policy, T0)
        assert session_end == T0 + timedelta(days=20)
        late = issue(T0 + timedelta(days=10), policy, session_end)
        assert late.access_expires_at == T0 + timedelta(days=20)
        assert late.refresh_expires_at == T0 + timedelta(days=20)

    def test_no_session_limit_means_no_session_end(self):
        assert rules.session_ends_at(POLICY, T0) is None

    def test_live_until_is_the_later_end(self):
        times = rules.new_pair_times(POLICY, T0, None)
        assert times.live_until == T0 + timedelta(days=30)


class TestAccessExpiry:
    def test_usable_until_the_last_second(self):
        pair = issue()
        assert rules.access_usable(pair, pair.access_expires_at - SECOND)

    def test_expired_at_the_exact_instant(self):
        pair = issue()
        assert not rules.access_usable(pair, pair.access_expires_at)
        assert not rules.access_usable(pair, pair.access_expires_at + SECOND)

    def test_refreshing_does_not_shorten_the_old_access_token(self):
        pair = issue()
        use(pair, T0 + timedelta(days=1))
        assert rules.access_usable(pair, pair.access_expires_at - SECOND)

    def test_revoked_access_token_is_unusable(self):
        pair = issue()
        pair.revoked_at = T0
        assert not rules.access_usable(pair, T0 + SECOND)


class TestRefreshExpiry:
    def test_first_use_a_second_before_expiry(self):
        pair = issue()
        decision = use(pair, pair.refresh_expires_at - SECOND)
        assert decision.outcome is RefreshOutcome.FIRST_USE

    def test_refused_at_the_exact_instant(self):
        pair = issue()
        decision = use(pair, pair.refresh_expires_at)
        assert decision.outcome is RefreshOutcome.EXPIRED
        assert not decision.revoke_family

    def test_grace_window_does_not_outlive_the_refresh_token(self):
        pair = issue()
        use(pair, pair.refresh_expires_at - timedelta(hours=1))
        assert pair.refresh_grace_ends_at > pair.refresh_expires_at
        assert not rules.refresh_usable(pair, pair.refresh_expires_at)
        assert use(pair, pair.refresh_expires_at).outcome is RefreshOutcome.EXPIRED


class TestGraceWindow:
    FIRST_USE = T0 + timedelta(days=10)

    def test_first_use_starts_the_window(self):
        pair = issue()
        decision = use(pair, self.FIRST_USE)
        assert decision.outcome is RefreshOutcome.FIRST_USE
        assert decision.issues_pair
        assert pair.rotated_at == self.FIRST_USE
        assert pair.refresh_grace_ends_at == self.FIRST_USE + timedelta(hours=6)

    def test_second_use_inside_the_window_issues_again(self):
        pair = issue()
        use(pair, self.FIRST_USE)
        decision = use(pair, self.FIRST_USE + timedelta(hours=6) - SECOND)
        assert decision.outcome is RefreshOutcome.IN_GRACE
        assert decision.issues_pair

    def test_refused_at_the_exact_end_of_the_window(self):
        pair = issue()
        use(pair, self.FIRST_USE)
        decision = use(pair, self.FIRST_USE + timedelta(hours=6))
        assert decision.outcome is RefreshOutcome.REUSED
        assert decision.revoke_family

    def test_later_uses_do_not_extend_the_window(self):
        pair = issue()
        use(pair, self.FIRST_USE)
        use(pair, self.FIRST_USE + timedelta(hours=5))
        assert pair.refresh_grace_ends_at == self.FIRST_USE + timedelta(hours=6)
        assert use(pair, self.FIRST_USE + timedelta(hours=6)).outcome is RefreshOutcome.REUSED

    def test_reuse_detection_off_refuses_without_revoking(self):
        policy = dataclasses.replace(POLICY, reuse_detection=False)
        pair = issue(policy=policy)
        use(pair, self.FIRST_USE, policy)
        decision = use(pair, self.FIRST_USE + timedelta(hours=7), policy)
        assert decision.outcome is RefreshOutcome.REUSED
        assert not decision.issues_pair
        assert not decision.revoke_family

    def test_live_until_shrinks_to_the_grace_end_once_access_expired(self):
        pair = issue()
        first_use = pair.access_expires_at + timedelta(days=1)
        use(pair, first_use)
        assert rules.live_until(pair) == first_use + timedelta(hours=6)
        assert rules.is_live(pair, first_use + timedelta(hours=6) - SECOND)
        assert not rules.is_live(pair, first_use + timedelta(hours=6))


class TestRevokedAndSession:
    def test_revoked_pair_is_refused_without_reuse_detection(self):
        pair = issue()
        use(pair, T0 + SECOND)
        pair.revoked_at = T0 + 2 * SECOND
        decision = use(pair, T0 + timedelta(days=1))
        assert decision.outcome is RefreshOutcome.REVOKED
        assert not decision.revoke_family

    def test_session_end_refuses_at_the_exact_instant(self):
        policy = dataclasses.replace(POLICY, max_session_lifetime=timedelta(days=20))
        session_end = rules.session_ends_at(policy, T0)
        pair = issue(T0 + timedelta(days=19), policy, session_end)
        assert use(pair, session_end - SECOND, policy).outcome is RefreshOutcome.FIRST_USE
        assert use(pair, session_end, policy).outcome is RefreshOutcome.SESSION_ENDED

    @pytest.mark.parametrize(
        "outcome",
        [
            o
            for o in RefreshOutcome
            if o not in (RefreshOutcome.FIRST_USE, RefreshOutcome.IN_GRACE)
        ],
    )
    def test_every_refusal_has_a_description(self, outcome):
        reason, description = rules.RefreshDecision(outcome).refusal
        assert reason and description


class TestCap:
    def pairs(self, count: int) -> list[Pair]:
        return [issue(T0 + index * SECOND, name=f"p{index}") for index in range(count)]

    def test_room_left_evicts_nothing(self):
        assert rules.pairs_to_evict(self.pairs(9), max_pairs=10) == []

    def test_eleventh_pair_evicts_the_oldest(self):
        existing = list(reversed(self.pairs(10)))  # order given does not matter
        evicted = rules.pairs_to_evict(existing, max_pairs=10)
        assert [pair.name for pair in evicted] == ["p0"]

    def test_lowered_cap_evicts_several_oldest(self):
        evicted = rules.pairs_to_evict(self.pairs(10), max_pairs=3)
        assert [pair.name for pair in evicted] == [f"p{i}" for i in range(8)]

    def test_cap_of_one_keeps_only_the_new_pair(self):
        assert len(rules.pairs_to_evict(self.pairs(4), max_pairs=1)) == 4

    def test_ties_keep_the_given_order(self):
        same_instant = [issue(T0, name=name) for name in "abc"]
        assert [p.name for p in rules.pairs_to_evict(same_instant, max_pairs=2)] == ["a", "b"]


@pytest.mark.parametrize(
    ("delta", "expected"),
    [(timedelta(days=15), 1296000), (timedelta(seconds=1.9), 1), (timedelta(0), 0), (-SECOND, 0)],
)
def test_seconds_until_rounds_down_and_never_goes_negative(delta, expected):
    assert rules.seconds_until(T0 + delta, T0) == expected
