"""The lifecycle rules (docs/lifecycle.md), as pure functions over timestamps.

Nothing here touches the database or reads the clock: every function is given
the instant it judges (``now``) and the :class:`Policy` in force. The
transactional layer (:mod:`token_lifecycle.services`) loads and locks rows,
asks these functions what to do, and saves the answer. Keeping the rules here
means each one can be read in one place and tested at its exact boundary
without I/O.

All expiry instants are exclusive: at exactly ``access_expires_at`` the access
token is expired, at exactly the grace end the old refresh token is refused.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from django.db.models import TextChoices

from .reasons import RefreshRefusal


class RevokeReason(TextChoices):
    """Why a pair was revoked; stored on the pair and shown to operators."""

    LOGOUT = "logout", "logout"
    LOGOUT_ALL = "logout_all", "logout from all sessions"
    ADMIN = "admin", "revoked by an admin"
    REVOCATION_ENDPOINT = "revocation_endpoint", "revoked by the client (RFC 7009)"
    EVICTED = "evicted", "evicted by the cap of live pairs"
    REUSE_DETECTED = "reuse_detected", "refresh token reused after its grace window"
    CODE_REUSED = "code_reused", "authorization code used a second time"
    PASSWORD_CHANGE = "password_change", "user changed password"
    USER_DISABLED = "user_disabled", "user deactivated"
    CLIENT_DISABLED = "client_disabled", "client deactivated"
    SESSION_EXPIRED = "session_expired", "absolute session lifetime reached"


@dataclasses.dataclass(frozen=True)
class Policy:
    """The rules in force for one client: the settings with its overrides applied."""

    access_token_lifetime: timedelta
    refresh_token_lifetime: timedelta
    refresh_grace_period: timedelta
    max_pairs: int
    max_session_lifetime: timedelta | None
    reuse_detection: bool


class PairState(Protocol):
    """The timestamps of a pair that the rules read (the model has them all)."""

    issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    rotated_at: datetime | None
    refresh_grace_ends_at: datetime | None
    revoked_at: datetime | None
    session_ends_at: datetime | None


# -- Rule 1: issue ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairTimes:
    """The timestamps a new pair is created with."""

    issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    session_ends_at: datetime | None
    #: When the pair stops being live if nobody revokes it; see :func:`live_until`.
    live_until: datetime


def session_ends_at(policy: Policy, family_started_at: datetime) -> datetime | None:
    """The absolute end of a family that starts now, or ``None`` without a session limit."""
    if policy.max_session_lifetime is None:
        return None
    return family_started_at + policy.max_session_lifetime


def new_pair_times(
    policy: Policy, now: datetime, session_end: datetime | None, *, refreshable: bool = True
) -> PairTimes:
    """Timestamps of a pair issued at ``now``: fresh lifetimes, capped at the session end.

    Used for a login (a new family, ``session_end`` from :func:`session_ends_at`)
    and for each refresh (the family's existing session end): expiry slides
    forward on every refresh but never past the session end. A pair issued
    without a refresh token (``refreshable=False``) has one that expired at
    birth, so it is live only while its access token is.
    """
    access_expires_at = now + policy.access_token_lifetime
    refresh_expires_at = now + policy.refresh_token_lifetime if refreshable else now
    if session_end is not None:
        access_expires_at = min(access_expires_at, session_end)
        refresh_expires_at = min(refresh_expires_at, session_end)
    return PairTimes(
        issued_at=now,
        access_expires_at=access_expires_at,
        refresh_expires_at=refresh_expires_at,
        session_ends_at=session_end,
        live_until=max(access_expires_at, refresh_expires_at),
    )


# -- Usability and liveness ---------------------------------------------------


def access_usable(pair: PairState, now: datetime) -> bool:
    """The access token authenticates: not revoked and not expired."""
    return pair.revoked_at is None and now < pair.access_expires_at


def refresh_usable(pair: PairState, now: datetime) -> bool:
    """The refresh token can be exchanged: not revoked, not expired, inside its grace window."""
    return pair.revoked_at is None and now < live_refresh_end(pair)


def is_live(pair: PairState, now: datetime) -> bool:
    """Either token of the pair is usable; only live pairs count against the cap."""
    return access_usable(pair, now) or refresh_usable(pair, now)


def live_refresh_end(pair: PairState) -> datetime:
    """The instant the refresh token stops being usable: its expiry, or its grace end."""
    if pair.refresh_grace_ends_at is None:
        return pair.refresh_expires_at
    return min(pair.refresh_expires_at, pair.refresh_grace_ends_at)


def live_until(pair: PairState) -> datetime:
    """The instant an unrevoked pair stops being live.

    Stored on the row so that "live pairs of a principal" is one indexed range
    query (``revoked_at IS NULL AND live_until > now``) rather than an
    expression over four columns.
    """
    return max(pair.access_expires_at, live_refresh_end(pair))


def seconds_until(instant: datetime, now: datetime) -> int:
    """Whole seconds from ``now`` to ``instant``, rounded down, never negative (``expires_in``)."""
    return max(0, int((instant - now) // timedelta(seconds=1)))


# -- Rule 2: refresh ----------------------------------------------------------


class RefreshOutcome(enum.Enum):
    FIRST_USE = "first_use"
    IN_GRACE = "in_grace"
    REVOKED = "revoked"
    SESSION_ENDED = "session_ended"
    EXPIRED = "expired"
    REUSED = "reused"


#: Each refusal's machine-readable reason (:mod:`.reasons`) and its description.
_REFUSALS = {
    RefreshOutcome.REVOKED: (RefreshRefusal.REVOKED, "The refresh token has been revoked."),
    RefreshOutcome.SESSION_ENDED: (
        RefreshRefusal.SESSION_ENDED,
        "The session has reached its maximum lifetime.",
    ),
    RefreshOutcome.EXPIRED: (RefreshRefusal.EXPIRED, "The refresh token has expired."),
    RefreshOutcome.REUSED: (
        RefreshRefusal.REUSE_DETECTED,
        "The refresh token was already used and its grace window has ended.",
    ),
}


@dataclasses.dataclass(frozen=True)
class RefreshDecision:
    """What a refresh with a pair's refresh token leads to."""

    outcome: RefreshOutcome
    #: Set on the first use only: the instants to store on the old pair.
    rotated_at: datetime | None = None
    refresh_grace_ends_at: datetime | None = None
    #: Reuse detection fired: revoke every live pair of the family.
    revoke_family: bool = False

    @property
    def issues_pair(self) -> bool:
        return self.outcome in (RefreshOutcome.FIRST_USE, RefreshOutcome.IN_GRACE)

    @property
    def refusal(self) -> tuple[RefreshRefusal, str] | None:
        """``(reason, description)`` of a refused refresh; None when a pair is issued."""
        return _REFUSALS.get(self.outcome)


def decide_refresh(pair: PairState, now: datetime, policy: Policy) -> RefreshDecision:
    """Judge a refresh with the pair's refresh token at ``now`` (docs/lifecycle.md rule 2).

    The checks run in the order of the spec: a revoked pair is refused and
    nothing else changes (an evicted pair must not look like a replay); an
    expired token or ended session is refused; a use after the grace window is
    a replay. Otherwise a new pair is issued, and the first use starts the grace
    window, which later uses never extend.
    """
    if pair.revoked_at is not None:
        return RefreshDecision(RefreshOutcome.REVOKED)
    if pair.session_ends_at is not None and now >= pair.session_ends_at:
        return RefreshDecision(RefreshOutcome.SESSION_ENDED)
    if now >= pair.refresh_expires_at:
        return RefreshDecision(RefreshOutcome.EXPIRED)
    if pair.rotated_at is None:
        return RefreshDecision(
            RefreshOutcome.FIRST_USE,
            rotated_at=now,
            refresh_grace_ends_at=now + policy.refresh_grace_period,
        )
    grace_ends_at = pair.refresh_grace_ends_at
    if grace_ends_at is None or now >= grace_ends_at:
        return RefreshDecision(RefreshOutcome.REUSED, revoke_family=policy.reuse_detection)
    return RefreshDecision(RefreshOutcome.IN_GRACE)


# -- Rule 3: the cap ----------------------------------------------------------

PairT = TypeVar("PairT", bound=PairState)


def pairs_to_evict(other_live_pairs: Sequence[PairT], max_pairs: int) -> list[PairT]:
    """The oldest live pairs (by issue time) to revoke so that a new pair fits the cap.

    ``other_live_pairs`` are the principal's live pairs besides the one just
    issued, which always stays: after eviction, they and the new pair number at
    most ``max_pairs``. The sort is stable, so pairs issued at the same instant
    keep the caller's order (the database orders ties by id).
    """
    excess = len(other_live_pairs) + 1 - max_pairs
    if excess <= 0:
        return []
    return sorted(other_live_pairs, key=lambda pair: pair.issued_at)[:excess]
