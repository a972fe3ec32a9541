"""What state a pair or a signing key is in, in one word, at an instant.

The lifecycle rules (:mod:`token_lifecycle.rules`) answer the questions a
request asks: is this access token usable, may this refresh token be
exchanged? An operator asks another one: what is this pair *now*? The answer
is one of five :class:`PairStatus` values, derived from the same rules, so
the admin can never disagree with what the token endpoint and the
authentication do.

The classification exists in two forms, kept side by side so they cannot
drift apart (``tests/test_admin.py`` checks that they agree on every state):

- pure functions over one object (:func:`pair_status`, :func:`current_pair_ids`,
  :func:`key_status`), for the timeline and anything already in memory;
- query expressions (:func:`status_q`, :func:`with_status`), so that the
  changelist can filter and label a page of pairs in the database, "current"
  included, in one query.

Both are built from the rules' own spellings (:mod:`token_lifecycle.rules`
in Python, :class:`~token_lifecycle.models.TokenPairQuerySet` in SQL); what
this module adds is only "current", which compares a pair with its
principal's others.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from django.db.models import Case, Exists, OuterRef, Q, QuerySet, TextChoices, Value, When

from token_lifecycle import rules
from token_lifecycle.models import TokenPair, TokenPairQuerySet


class PairStatus(TextChoices):
    """A pair's state at an instant; the five values partition all pairs."""

    #: The newest live pair of its principal (docs/lifecycle.md), the one a client should be using.
    CURRENT = "current", "current"
    #: Live, not current, and its refresh token still usable: a pair just rotated
    #: (inside its grace window), or another session of the same principal.
    SUPERSEDED = "superseded", "superseded, refresh usable"
    #: Live, not current, only its access token still usable.
    ACCESS_ONLY = "access_only", "access token only"
    #: Not revoked, but neither token is usable any more.
    EXPIRED = "expired", "expired"
    #: Revoked, for the reason stored on the pair.
    REVOKED = "revoked", "revoked"


#: Statuses of pairs that no longer authenticate anything.
ENDED = frozenset({PairStatus.EXPIRED, PairStatus.REVOKED})


class PairWithPrincipal(rules.PairState, Protocol):
    """What :func:`current_pair_ids` reads: the rules' timestamps plus identity."""

    pk: object
    client_id: int
    user_id: int


# -- In Python ----------------------------------------------------------------


def pair_status(pair: rules.PairState, now: datetime, *, is_current: bool) -> PairStatus:
    """The status of ``pair`` at ``now``.

    Whether a pair is its principal's current one depends on the principal's
    other pairs, so the caller says (see :func:`current_pair_ids`); it only
    matters for a live pair.
    """
    if pair.revoked_at is not None:
        return PairStatus.REVOKED
    if not rules.is_live(pair, now):
        return PairStatus.EXPIRED
    if is_current:
        return PairStatus.CURRENT
    if rules.refresh_usable(pair, now):
        return PairStatus.SUPERSEDED
    return PairStatus.ACCESS_ONLY


def newness(pair: PairWithPrincipal) -> tuple:
    """Sort key of a principal's pairs, oldest first: issue time, then the time-ordered id."""
    return (pair.issued_at, pair.pk)


def current_pair_ids(pairs: Iterable[PairWithPrincipal], now: datetime) -> set:
    """Ids of the current pairs among ``pairs``: the newest live pair of each principal.

    Exact for any set of pairs that holds every live pair of a principal
    newer than the ones it holds, such as "the most recent N pairs of a
    client" (a newer pair is always among the more recent ones).
    """
    newest: dict[tuple[int, int], PairWithPrincipal] = {}
    for pair in pairs:
        if not rules.is_live(pair, now):
            continue
        principal = (pair.client_id, pair.user_id)
        held = newest.get(principal)
        if held is None or newness(pair) > newness(held):
            newest[principal] = pair
    return {pair.pk for pair in newest.values()}


# -- In the database ----------------------------------------------------------

#: Revoked is the one status that holds whatever the instant.
_REVOKED = Q(revoked_at__isnull=False)


def newer_live_pair_exists(now: datetime) -> Exists:
    """True for a pair whose principal has a newer live pair (so it is not current).

    A correlated subquery served by the partial index on live pairs of a
    principal (``tl_pair_principal_live``): one index probe per row. "Newer"
    is :func:`newness`.
    """
    newer = Q(issued_at__gt=OuterRef("issued_at")) | Q(
        issued_at=OuterRef("issued_at"), id__gt=OuterRef("id")
    )
    return Exists(
        TokenPair.objects.live(now).filter(newer, client=OuterRef("client"), user=OuterRef("user"))
    )


def status_q(status: PairStatus | str, now: datetime) -> Q:
    """A filter selecting exactly the pairs with ``status`` at ``now``."""
    status = PairStatus(status)
    if status is PairStatus.REVOKED:
        return _REVOKED
    if status is PairStatus.EXPIRED:
        return TokenPairQuerySet.expired_q(now)
    live = TokenPairQuerySet.live_q(now)
    if status is PairStatus.CURRENT:
        return live & ~newer_live_pair_exists(now)
    refresh_usable = TokenPairQuerySet.refresh_usable_q(now)
    superseded = live & newer_live_pair_exists(now)
    if status is PairStatus.SUPERSEDED:
        return superseded & refresh_usable
    return superseded & ~refresh_usable


def with_status(queryset: QuerySet[TokenPair], now: datetime) -> QuerySet[TokenPair]:
    """Annotate each pair with ``status``, the value :func:`pair_status` gives at ``now``."""
    # The first matching When wins, in the order of pair_status.
    return queryset.annotate(
        status=Case(
            When(_REVOKED, then=Value(PairStatus.REVOKED.value)),
            When(TokenPairQuerySet.expired_q(now), then=Value(PairStatus.EXPIRED.value)),
            When(~newer_live_pair_exists(now), then=Value(PairStatus.CURRENT.value)),
            When(TokenPairQuerySet.refresh_usable_q(now), then=Value(PairStatus.SUPERSEDED.value)),
            default=Value(PairStatus.ACCESS_ONLY.value),
        )
    )


# -- Signing keys -------------------------------------------------------------


class KeyStatus(TextChoices):
    """Where a signing key is in its life (see ``SigningKey``)."""

    #: Published in the JWKS, signs later (a rotation gives verifiers time to fetch it).
    PENDING = "pending", "pending"
    SIGNING = "signing", "signing"
    #: Published and verifying tokens it signed, no longer (or never going to be) signing.
    VERIFYING = "verifying", "verifying only"
    #: Out of the JWKS; tokens it signed are refused.
    RETIRED = "retired", "retired"


class KeyState(Protocol):
    signs_from: datetime
    retired_at: datetime | None
    verify_until: datetime | None


def key_status(key: KeyState, now: datetime) -> KeyStatus:
    """The status of a signing key at ``now``; it signs during ``[signs_from, retired_at)``."""
    if key.verify_until is not None and now >= key.verify_until:
        return KeyStatus.RETIRED
    signing_ends = key.retired_at
    if key.signs_from <= now and (signing_ends is None or now < signing_ends):
        return KeyStatus.SIGNING
    if now < key.signs_from and (signing_ends is None or key.signs_from < signing_ends):
        return KeyStatus.PENDING
    return KeyStatus.VERIFYING
