"""Model-based test of the token lifecycle (docs/lifecycle.md), a hypothesis state machine.

The machine drives the real service layer (``services.issue_pair``, ``refresh_pair``,
``revoke_pair_by_id``, ``revoke_user_pairs``) and the model saves that are revocation
sources (password change, user and client deactivation), with random settings changes and
clock jumps from one second to two months. Beside it runs :class:`Lifecycle`, a small
reference model of docs/lifecycle.md written from the spec alone (``token_lifecycle.rules`` is
deliberately not used). After every step the database, the signals and
``BearerTokenAuthentication`` must agree with the model.

Each hypothesis example runs in a savepoint that is rolled back at its end, with a frozen
clock starting at :data:`T0` and empty caches. ``TOKEN_LIFECYCLE_HYPOTHESIS_EXAMPLES=1000``
runs more examples; ``TOKEN_LIFECYCLE_HYPOTHESIS_STATS=1`` (with ``-s``) prints how many
examples and steps ran and how often each interesting outcome happened.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import transaction
from django.test import TestCase, override_settings
from freezegun import freeze_time
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from token_lifecycle import clock, keys, services, signals
from token_lifecycle.authentication import BearerTokenAuthentication
from token_lifecycle.models import Client, TokenPair
from token_lifecycle.oauth.errors import InvalidGrant

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
ISSUER = "http://testserver/auth"  # what issuer_for() derives for APIRequestFactory requests
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

EXAMPLES = int(os.environ.get("TOKEN_LIFECYCLE_HYPOTHESIS_EXAMPLES", "60"))
STEPS = int(os.environ.get("TOKEN_LIFECYCLE_HYPOTHESIS_STEPS", "30"))
STATS: Counter[str] = Counter()

USERS = 3
#: client index -> owner user index: client 0 and client 1 act as user 0 for client
#: credentials, so user 0's password logins through them share those principals.
OWNERS = (0, 0, 1)

#: Per-client overrides (None: use the setting). Every combination keeps grace < refresh.
ACCESS_OVERRIDES = (None, timedelta(minutes=30), DAY, 20 * DAY)
REFRESH_OVERRIDES = (None, 7 * HOUR, 3 * DAY, 40 * DAY)
GRACE_OVERRIDES = (None, SECOND, timedelta(minutes=10), HOUR)
CAP_OVERRIDES = (None, 1, 2, 3, 4)

#: Clock jumps: boundaries of the default windows, and anything up to two months.
JUMPS = st.one_of(
    st.sampled_from([1, 59, 3600, 6 * 3600 - 1, 6 * 3600, 86400, 15 * 86400, 30 * 86400]),
    st.integers(min_value=1, max_value=61 * 86400),
)
PICK = st.integers(min_value=0, max_value=63)


@dataclasses.dataclass
class Pair:
    """What the model knows of one pair (docs/lifecycle.md definitions), and its two tokens."""

    id: uuid.UUID
    client: int
    user: int
    family: uuid.UUID
    parent: uuid.UUID | None
    issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    session_ends_at: datetime | None
    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    rotated_at: datetime | None = None
    grace_ends_at: datetime | None = None
    revoked_at: datetime | None = None
    reason: str = ""


class Lifecycle:
    """docs/lifecycle.md as plain Python: definitions, refresh judgement, the cap, revocation.

    Decisions taken from the README where the spec is silent: the grace end is fixed at the
    first use with the grace period in force then; the session end is fixed at login; refresh
    checks run revoked -> session ended -> expired -> replay; an inactive user's refresh is
    refused before anything else.
    """

    def __init__(self) -> None:
        self.now = T0
        self.pairs: dict[uuid.UUID, Pair] = {}  # in issue order
        self.client_active = [True] * len(OWNERS)
        self.user_active = [True] * USERS
        self.overrides = [dict.fromkeys(("access", "refresh", "grace", "cap")) for _ in OWNERS]
        self.settings = {
            "access": 15 * DAY,
            "refresh": 30 * DAY,
            "grace": 6 * HOUR,
            "cap": 3,
            "session": None,
            "reuse": True,
            "revoke_on_deactivation": True,
        }

    def policy(self, client: int, name: str):
        """A client's override of a rule, or the setting when the override is null."""
        value = self.overrides[client].get(name)
        return self.settings[name] if value is None else value

    # -- Definitions ------------------------------------------------------------------

    def access_usable(self, pair: Pair) -> bool:
        return pair.revoked_at is None and self.now < pair.access_expires_at

    def refresh_usable(self, pair: Pair) -> bool:
        in_grace = pair.rotated_at is None or self.now < pair.grace_ends_at
        return pair.revoked_at is None and self.now < pair.refresh_expires_at and in_grace

    def live(self, pair: Pair) -> bool:
        return self.access_usable(pair) or self.refresh_usable(pair)

    def stops_being_live(self, pair: Pair) -> datetime:
        """The instant an unrevoked pair stops being live (the app stores it as live_until)."""
        refresh_end = pair.refresh_expires_at
        if pair.grace_ends_at is not None:
            refresh_end = min(refresh_end, pair.grace_ends_at)
        return max(pair.access_expires_at, refresh_end)

    def authenticates(self, pair: Pair) -> bool:
        """The access token works as a bearer token: usable, client and user active."""
        return (
            self.access_usable(pair)
            and self.client_active[pair.client]
            and self.user_active[pair.user]
        )

    def live_pairs(self, client: int, user: int) -> list[Pair]:
        return [
            p for p in self.pairs.values() if (p.client, p.user) == (client, user) and self.live(p)
        ]

    # -- Rule 1 and rule 2 ------------------------------------------------------------

    def new_pair(self, pair_id, client, user, parent: Pair | None, issued) -> Pair:
        """A pair issued now: fresh lifetimes, capped at the family's session end."""
        if parent is not None:
            session_end = parent.session_ends_at
        elif self.settings["session"] is not None:
            session_end = self.now + self.settings["session"]
        else:
            session_end = None
        access = self.now + self.policy(client, "access")
        refresh = self.now + self.policy(client, "refresh")
        if session_end is not None:
            access, refresh = min(access, session_end), min(refresh, session_end)
        pair = Pair(
            id=pair_id,
            client=client,
            user=user,
            family=parent.family if parent else pair_id,
            parent=parent.id if parent else None,
            issued_at=self.now,
            access_expires_at=access,
            refresh_expires_at=refresh,
            session_ends_at=session_end,
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
        )
        self.pairs[pair_id] = pair
        return pair

    def judge_refresh(self, pair: Pair, via: int) -> str:
        """Rule 2: what presenting the pair's refresh token through client ``via`` does now."""
        if pair.client != via:
            return "wrong_client"
        if not self.user_active[pair.user]:
            return "inactive_user"
        if pair.revoked_at is not None:
            return "revoked"
        if pair.session_ends_at is not None and self.now >= pair.session_ends_at:
            return "session_ended"
        if self.now >= pair.refresh_expires_at:
            return "expired"
        if pair.rotated_at is None:
            return "first_use"
        return "in_grace" if self.now < pair.grace_ends_at else "replay"

    def start_grace(self, pair: Pair) -> None:
        """First use: the grace window opens now and never moves afterwards."""
        pair.rotated_at = self.now
        pair.grace_ends_at = self.now + self.policy(pair.client, "grace")

    # -- Rule 3 and rule 4 ------------------------------------------------------------

    def eviction(self, client: int, user: int, new_id) -> tuple[list[Pair], list[Pair], int]:
        """Rule 3: pairs that must go, pairs tied at the boundary, and how many of those.

        Pairs issued in the same second are equally old: the spec orders only by issue
        time, so which of the tied pairs is evicted is the app's choice.
        """
        others = sorted(
            (p for p in self.live_pairs(client, user) if p.id != new_id),
            key=lambda p: p.issued_at,
        )
        excess = len(others) + 1 - self.policy(client, "cap")
        if excess <= 0:
            return [], [], 0
        boundary = others[excess - 1].issued_at
        must = [p for p in others if p.issued_at < boundary]
        ties = [p for p in others if p.issued_at == boundary]
        return must, ties, excess - len(must)

    def revoke(self, pairs, reason: str) -> list[uuid.UUID]:
        """Rule 4: revoke pairs not revoked yet; returns their ids."""
        revoked = []
        for pair in pairs:
            if pair.revoked_at is None:
                pair.revoked_at, pair.reason = self.now, reason
                revoked.append(pair.id)
        return revoked


def authenticate(access_token: str):
    request = APIRequestFactory().get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return BearerTokenAuthentication().authenticate(Request(request))


def clear_caches() -> None:
    keys.clear_cache()
    keys.access_tokens._verified.clear()
    for cache in caches.all():
        cache.clear()


class LifecycleMachine(RuleBasedStateMachine):
    """Random sequences of lifecycle operations, checked against :class:`Lifecycle`."""

    def __init__(self) -> None:
        super().__init__()
        STATS["examples"] += 1
        self._atomic = TransactionRollback()
        self._freezer = freeze_time(T0, ignore=["hypothesis"])
        self.clock = self._freezer.start()
        clear_caches()
        self.model = Lifecycle()
        user_model = get_user_model()
        self.users = [
            user_model.objects.create_user(f"user{index}", password="pw") for index in range(USERS)
        ]
        self.clients = []
        for index, owner in enumerate(OWNERS):
            client = Client(
                name=f"client{index}",
                owner=self.users[owner],
                grant_types="client_credentials password",
            )
            client.set_new_secret()
            client.save()
            self.clients.append(client)
        self._override = None
        self._apply_settings()
        self.received: Counter = Counter()
        self.expected: Counter = Counter()
        self.revocations_seen: dict[uuid.UUID, tuple[datetime, str]] = {}
        self.dead_families: set[uuid.UUID] = set()
        #: principal -> the cap in force at its last issue or refresh (rule 3's bound).
        self.cap_bound: dict[tuple[int, int], int] = {}
        self._receivers = {
            signals.pair_issued: self._on_issued,
            signals.pair_refreshed: self._on_refreshed,
            signals.pair_revoked: self._on_revoked,
            signals.refresh_token_reused: self._on_reused,
        }
        for signal, receiver in self._receivers.items():
            signal.connect(receiver)

    def teardown(self) -> None:
        for signal, receiver in self._receivers.items():
            signal.disconnect(receiver)
        if self._override is not None:
            self._override.disable()
        self._freezer.stop()
        self._atomic.rollback()
        clear_caches()

    # -- Plumbing ---------------------------------------------------------------------

    def _apply_settings(self) -> None:
        """Put the model's settings in force (override_settings clears the app's caches)."""
        if self._override is not None:
            self._override.disable()
        model = self.model.settings
        self._override = override_settings(
            TOKEN_LIFECYCLE={
                "ACCESS_TOKEN_LIFETIME": model["access"],
                "REFRESH_TOKEN_LIFETIME": model["refresh"],
                "REFRESH_GRACE_PERIOD": model["grace"],
                "MAX_PAIRS_PER_CLIENT": model["cap"],
                "MAX_SESSION_LIFETIME": model["session"],
                "REUSE_DETECTION": model["reuse"],
                "REVOKE_ON_USER_DEACTIVATION": model["revoke_on_deactivation"],
                "REVOKE_ON_CLIENT_DEACTIVATION": model["revoke_on_deactivation"],
                "ISSUER": ISSUER,
            }
        )
        self._override.enable()

    def _advance_to(self, instant: datetime) -> None:
        """Move both clocks forward to ``instant`` (never backward)."""
        if instant > self.model.now:
            self.clock.tick(instant - self.model.now)
            self.model.now = instant

    def _expect_revoked(self, ids, reason: str) -> None:
        self.expected.update(("revoked", pair_id, reason) for pair_id in ids)

    def _on_issued(self, sender, pair, **kwargs) -> None:
        self.received[("issued", pair.pk)] += 1

    def _on_refreshed(self, sender, pair, parent, **kwargs) -> None:
        self.received[("refreshed", pair.pk, parent.pk)] += 1

    def _on_revoked(self, sender, pair_id, reason, **kwargs) -> None:
        self.received[("revoked", pair_id, str(reason))] += 1

    def _on_reused(self, sender, pair, revoked_pair_ids, **kwargs) -> None:
        self.received[("reused", pair.pk, frozenset(revoked_pair_ids))] += 1

    def _call(self, function, **arguments):
        """Call a service, running its on-commit callbacks (the signals) as a commit would."""
        with TestCase.captureOnCommitCallbacks(execute=True):
            return function(**arguments)

    def _save(self, instance) -> None:
        with TestCase.captureOnCommitCallbacks(execute=True):
            instance.save()

    def _apply_cap(self, client: int, user: int, new_pair: Pair) -> None:
        """Rule 3 after an issue or refresh; ties at the boundary follow the app's choice."""
        must, ties, need = self.model.eviction(client, user, new_pair.id)
        chosen = set(
            TokenPair.objects.filter(
                pk__in=[p.id for p in ties], revoke_reason="evicted"
            ).values_list("pk", flat=True)
        )
        assert len(chosen) == need, f"{need} of the tied pairs should be evicted, not {chosen}"
        evicted = self.model.revoke([*must, *(p for p in ties if p.id in chosen)], "evicted")
        self._expect_revoked(evicted, "evicted")
        STATS["evictions"] += len(evicted)
        STATS["eviction ties"] += bool(ties and 0 < need < len(ties))
        self.cap_bound[(client, user)] = self.model.policy(client, "cap")

    def _pick(self, kind: str, pick: int) -> Pair:
        """A pair of one kind, falling back to a broader kind when there is none."""
        model, pairs = self.model, list(self.model.pairs.values())
        current = {}  # principal -> its newest live pair
        for pair in pairs:
            if model.live(pair):
                current[(pair.client, pair.user)] = pair
        current_ids = {p.id for p in current.values()}
        used = [p for p in pairs if p.rotated_at]
        kinds = {
            "any": pairs,
            "current": list(current.values()),
            "superseded": [p for p in pairs if model.live(p) and p.id not in current_ids],
            "live": [p for p in pairs if model.live(p)],
            "dead": [p for p in pairs if not model.live(p)],
            # used and still refreshable: another pair inside the grace window
            "in_grace": [p for p in used if model.refresh_usable(p)],
            # used, neither revoked nor expired: in the grace window, or a replay
            "used": [p for p in used if not p.revoked_at and model.now < p.refresh_expires_at],
        }
        candidates = kinds[kind] or (kind == "in_grace" and kinds["used"]) or pairs
        return candidates[pick % len(candidates)]

    # -- Rules ------------------------------------------------------------------------

    @rule(client=st.integers(0, len(OWNERS) - 1), user=st.integers(0, USERS - 1))
    def login(self, client: int, user: int) -> None:
        """Rule 1 (password grant): a new pair in a new family, then the cap (rule 3)."""
        self._issue(client, user, "password")

    @rule(client=st.integers(0, len(OWNERS) - 1))
    def client_credentials(self, client: int) -> None:
        """Rule 1 (client credentials): the pair acts as the client's owner (docs/lifecycle.md)."""
        self._issue(client, OWNERS[client], "client_credentials")

    def _issue(self, client: int, user: int, grant_type: str) -> None:
        if not (self.model.client_active[client] and self.model.user_active[user]):
            STATS["skipped: inactive"] += 1  # the token endpoint refuses before the service
            return
        issued = self._call(
            services.issue_pair,
            client=self.clients[client],
            user=self.users[user],
            issuer=ISSUER,
            grant_type=grant_type,
        )
        pair = self.model.new_pair(issued.pair.pk, client, user, None, issued)
        note(f"{grant_type} issued {pair.id} to {(client, user)}")
        self.expected[("issued", pair.id)] += 1
        self._apply_cap(client, user, pair)
        STATS[f"issue: {grant_type}"] += 1

    @precondition(lambda self: self.model.pairs)
    @rule(pick=PICK)
    def refresh_current(self, pick: int) -> None:
        """Rule 2 with a principal's current pair: the everyday refresh."""
        self._refresh(self._pick("current", pick))

    @precondition(lambda self: self.model.pairs)
    @rule(pick=PICK, late=st.sampled_from([None, 0, 1]))
    def refresh_again(self, pick: int, late: int | None) -> None:
        """Rule 2 with a used refresh token: another new pair inside the grace window; with
        ``late``, first wait until its grace end (+0 s, exclusive per §7, or +1 s): a replay,
        which revokes the family iff REUSE_DETECTION."""
        pair = self._pick("used" if late is not None else "in_grace", pick)
        if late is not None and pair.grace_ends_at is not None:
            self._advance_to(pair.grace_ends_at + late * SECOND)
        self._refresh(pair)

    @precondition(lambda self: self.model.pairs)
    @rule(
        kind=st.sampled_from(["superseded", "dead", "any", "unknown"]),
        pick=PICK,
        other_client=st.booleans(),
    )
    def refresh_other(self, kind: str, pick: int, other_client: bool) -> None:
        """Rule 2 with a superseded, evicted, expired, revoked or unknown refresh token, or
        one presented by another client (invalid_grant, nothing changes)."""
        if kind == "unknown":
            with pytest.raises(InvalidGrant):
                self._call(
                    services.refresh_pair,
                    client=self.clients[pick % len(OWNERS)],
                    refresh_token=f"rt_unknown{pick}",
                    issuer=ISSUER,
                )
            return
        self._refresh(self._pick(kind, pick), other_client=other_client)

    def _refresh(self, pair: Pair, *, other_client: bool = False) -> None:
        """The service answers a new pair or invalid_grant exactly when the model does."""
        model = self.model
        via = pair.client
        if other_client:
            others = [c for c in range(len(OWNERS)) if c != pair.client and model.client_active[c]]
            via = others[0] if others else via
        if not model.client_active[via]:
            STATS["skipped: inactive"] += 1  # fails client authentication at the endpoint
            return
        verdict = model.judge_refresh(pair, via)
        STATS[f"refresh: {verdict}"] += 1
        note(f"refresh {pair.id} via client {via}: model says {verdict}")
        try:
            issued = self._call(
                services.refresh_pair,
                client=self.clients[via],
                refresh_token=pair.refresh_token,
                issuer=ISSUER,
            )
        except InvalidGrant:
            issued = None
        if verdict not in ("first_use", "in_grace"):
            assert issued is None, f"refresh should be invalid_grant ({verdict})"
            if verdict == "replay":
                self._replayed(pair)
            return
        assert issued is not None, f"refresh should issue a new pair ({verdict})"
        if verdict == "first_use":
            model.start_grace(pair)
        child = model.new_pair(issued.pair.pk, pair.client, pair.user, pair, issued)
        self.expected[("refreshed", child.id, pair.id)] += 1
        self._apply_cap(pair.client, pair.user, child)

    def _replayed(self, pair: Pair) -> None:
        """A replay after the grace window: the family dies with REUSE_DETECTION on."""
        revoked = []
        if self.model.settings["reuse"]:
            family = [p for p in self.model.pairs.values() if p.family == pair.family]
            revoked = self.model.revoke(
                [p for p in family if self.model.live(p)], "reuse_detected"
            )
            self._expect_revoked(revoked, "reuse_detected")
            self.dead_families.add(pair.family)
            STATS["families revoked on reuse"] += 1
        # The app signals every replay; with detection off the revoked list is empty.
        self.expected[("reused", pair.id, frozenset(revoked))] += 1

    @rule(
        source=st.sampled_from(
            [
                "logout",
                "admin",
                "revocation_endpoint",
                "logout_all",
                "password_change",
                "user_disabled",
                "user_enabled",
                "client_disabled",
                "client_enabled",
            ]
        ),
        pick=PICK,
    )
    def revocation_source(self, source: str, pick: int) -> None:
        """Rule 4 and §7: one pair (logout, admin, RFC 7009); every live pair of a user on
        every client (logout-all, password change via set_password() + save(), saving the
        user inactive); every live pair of a client (saving it inactive). Revoked pairs stay
        revoked when the user or client is saved active again."""
        model = self.model
        STATS[f"revocation source: {source}"] += 1
        user_index, client_index = pick % USERS, pick % len(OWNERS)
        user, client = self.users[user_index], self.clients[client_index]
        revoked = []
        if source in ("logout", "admin", "revocation_endpoint") and model.pairs:
            pair = self._pick("any", pick)
            revoked = model.revoke([pair], source)
            result = self._call(services.revoke_pair_by_id, pair_id=pair.id, reason=source)
            assert list(result) == revoked
        elif source in ("logout_all", "password_change", "user_disabled"):
            doomed = [p for p in model.pairs.values() if p.user == user_index and model.live(p)]
            # Saving an inactive user again is no deactivation: nothing is revoked.
            deactivation = (
                model.user_active[user_index] and model.settings["revoke_on_deactivation"]
            )
            if source != "user_disabled" or deactivation:
                revoked = model.revoke(doomed, source)
            if source == "logout_all":
                result = self._call(services.revoke_user_pairs, user=user, reason=source)
                assert set(result) == set(revoked)
            elif source == "password_change":
                user.set_password(f"password {STATS[source]}")
                self._save(user)
            else:
                model.user_active[user_index] = user.is_active = False
                self._save(user)
        elif source == "client_disabled":
            doomed = [
                p for p in model.pairs.values() if p.client == client_index and model.live(p)
            ]
            if model.client_active[client_index] and model.settings["revoke_on_deactivation"]:
                revoked = model.revoke(doomed, source)
            model.client_active[client_index] = client.is_active = False
            self._save(client)
        elif source == "user_enabled":
            model.user_active[user_index] = user.is_active = True
            self._save(user)
        elif source == "client_enabled":
            model.client_active[client_index] = client.is_active = True
            self._save(client)
        self._expect_revoked(revoked, source)

    @rule(
        client=st.integers(0, len(OWNERS) - 1),
        access=st.sampled_from(ACCESS_OVERRIDES),
        refresh=st.sampled_from(REFRESH_OVERRIDES),
        grace=st.sampled_from(GRACE_OVERRIDES),
        cap=st.sampled_from(CAP_OVERRIDES),
    )
    def override_client(self, client: int, access, refresh, grace, cap) -> None:
        """§2: a client's non-null fields override the settings for its pairs from now on."""
        self.model.overrides[client] = {
            "access": access,
            "refresh": refresh,
            "grace": grace,
            "cap": cap,
        }
        instance = self.clients[client]
        instance.access_token_lifetime = access
        instance.refresh_token_lifetime = refresh
        instance.refresh_grace_period = grace
        instance.max_pairs_per_client = cap
        instance.full_clean()
        self._save(instance)

    @rule(
        cap=st.integers(1, 4),
        reuse=st.booleans(),
        session=st.sampled_from([None, 2 * DAY, 20 * DAY]),
        access=st.sampled_from([15 * DAY, 2 * HOUR]),
        grace=st.sampled_from([6 * HOUR, 30 * MINUTE]),
        revoke_on_deactivation=st.booleans(),
    )
    def change_settings(self, cap, reuse, session, access, grace, revoke_on_deactivation) -> None:
        """§2 settings (MAX_PAIRS_PER_CLIENT, REUSE_DETECTION, MAX_SESSION_LIFETIME, lifetimes,
        grace) and REVOKE_ON_{USER,CLIENT}_DEACTIVATION; they apply from the next step on."""
        self.model.settings.update(
            cap=cap,
            reuse=reuse,
            session=session,
            access=access,
            grace=grace,
            revoke_on_deactivation=revoke_on_deactivation,
        )
        self._apply_settings()

    @rule(seconds=JUMPS, cold_caches=st.booleans())
    def wait(self, seconds: int, cold_caches: bool) -> None:
        """Time passes in whole seconds, as the application clock counts it; optionally
        the process restarts with cold caches (the answers come from the database)."""
        self._advance_to(self.model.now + seconds * SECOND)
        if cold_caches:
            keys.access_tokens._verified.clear()
            for cache in caches.all():
                cache.clear()

    @precondition(lambda self: self.model.pairs)
    @rule(
        pick=PICK,
        instant=st.sampled_from(["access", "refresh", "grace", "session"]),
        offset=st.sampled_from([-1, 0, 1]),
    )
    def wait_until_an_expiry(self, pick: int, instant: str, offset: int) -> None:
        """§7: expiry instants are exclusive; land just before, on, or just after one."""
        pair = self._pick("live", pick)
        target = {
            "access": pair.access_expires_at,
            "refresh": pair.refresh_expires_at,
            "grace": pair.grace_ends_at,
            "session": pair.session_ends_at,
        }[instant]
        if target is not None:
            self._advance_to(target + offset * SECOND)

    # -- Invariants -------------------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        """Every stored timestamp, link and revocation is what docs/lifecycle.md says it is."""
        STATS["checkpoints"] += 1  # after __init__ and after every step
        assert clock.now() == self.model.now
        rows = {row.pk: row for row in TokenPair.objects.all()}
        assert set(rows) == set(self.model.pairs)
        for pair in self.model.pairs.values():
            row = rows[pair.id]
            actual = (
                row.client_id,
                row.user_id,
                row.family_id,
                row.parent_id,
                row.issued_at,
                row.access_expires_at,
                row.refresh_expires_at,
                row.session_ends_at,
                row.rotated_at,
                row.refresh_grace_ends_at,
                row.revoked_at,
                row.revoke_reason,
                row.live_until,
            )
            expected = (
                self.clients[pair.client].pk,
                self.users[pair.user].pk,
                pair.family,
                pair.parent,
                pair.issued_at,
                pair.access_expires_at,
                pair.refresh_expires_at,
                pair.session_ends_at,
                pair.rotated_at,
                pair.grace_ends_at,
                pair.revoked_at,
                pair.reason,
                self.model.stops_being_live(pair),
            )
            assert actual == expected, f"{pair}: database has {actual}"
        live = set(TokenPair.objects.live(self.model.now).values_list("pk", flat=True))
        assert live == {p.id for p in self.model.pairs.values() if self.model.live(p)}

    @invariant()
    def cap_holds(self) -> None:
        """Rule 3: no principal has more live pairs than the cap of its last issue/refresh;
        §7: its live pairs (GET /pairs/) are the model's, newest first."""
        for (client, user), bound in self.cap_bound.items():
            listed = services.principal_pairs(self.clients[client], self.users[user])
            assert len(listed) <= bound, f"principal {(client, user)} exceeds {bound}"
            assert {p.pk for p in listed} == {p.id for p in self.model.live_pairs(client, user)}
            issued = [p.issued_at for p in listed]
            assert issued == sorted(issued, reverse=True)

    @invariant()
    def revoked_stays_revoked(self) -> None:
        """Rule 4: a revocation is final; its instant and reason never change."""
        for pk, revoked_at, reason in TokenPair.objects.filter(
            revoked_at__isnull=False
        ).values_list("pk", "revoked_at", "revoke_reason"):
            assert self.revocations_seen.setdefault(pk, (revoked_at, reason)) == (
                revoked_at,
                reason,
            )
        assert not set(self.revocations_seen) & set(
            TokenPair.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True)
        )

    @invariant()
    def reused_families_stay_dead(self) -> None:
        """Rule 2: after reuse detection no pair of the family is live, ever again."""
        if self.dead_families:
            live = TokenPair.objects.live(self.model.now).filter(family_id__in=self.dead_families)
            assert not live.exists()

    @invariant()
    def signals_match(self) -> None:
        """§6: one signal per issue, refresh, revoked pair and replay, with the right data."""
        assert self.received == self.expected
        self.received.clear()
        self.expected.clear()

    @invariant()
    def access_tokens_authenticate_as_modelled(self) -> None:
        """§2/§4: a usable access token authenticates; expired, revoked, evicted, a
        deactivated client's or user's are refused (AuthenticationFailed)."""
        for pair in self.model.pairs.values():
            if self.model.authenticates(pair):
                user, auth = authenticate(pair.access_token)
                assert (user.pk, auth.pair_id) == (self.users[pair.user].pk, pair.id)
                STATS["accepted access tokens"] += 1
            else:
                with pytest.raises(AuthenticationFailed):
                    authenticate(pair.access_token)
                STATS["refused access tokens"] += 1


class TransactionRollback:
    """A savepoint opened now and rolled back by :meth:`rollback`: one example's data."""

    def __init__(self) -> None:
        self._atomic = transaction.atomic()
        self._atomic.__enter__()

    def rollback(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)


MACHINE_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.django_db
def test_lifecycle_state_machine() -> None:
    # One signing key for every example, valid from T0. ES256 because loading it (after each
    # settings change and each example) is cheap; loading an RSA key costs ~0.1 s.
    keys.create_signing_key("ES256", signs_from=T0)
    STATS.clear()
    run_state_machine_as_test(LifecycleMachine, settings=MACHINE_SETTINGS)
    if os.environ.get("TOKEN_LIFECYCLE_HYPOTHESIS_STATS"):
        STATS["steps"] = STATS["checkpoints"] - STATS["examples"]
        print("\nstate machine:", dict(sorted(STATS.items())), file=sys.stderr)


@pytest.mark.django_db
def test_pairs_issued_in_the_same_second_keep_their_order(make_client, make_user) -> None:
    """The newest of several pairs issued within one second is the current one (§2, §7)."""
    client, _ = make_client()
    user = make_user("alice")
    with freeze_time(T0):
        issued = [
            services.issue_pair(client=client, user=user, issuer=ISSUER, grant_type="password")
            for _ in range(8)
        ]
        listed = services.principal_pairs(client, user)
    # Newest first; a random order passes by chance once in 8! = 40320 runs.
    assert [pair.pk for pair in listed] == [each.pair.pk for each in reversed(issued)]
