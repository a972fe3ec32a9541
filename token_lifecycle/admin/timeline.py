"""A client's timeline: which pairs are drawn, and where their bars go.

The Client change page draws each pair against one time axis: when its access
token is usable, when its refresh token is, and the grace window a refresh
opened, with "now" marked. :func:`recent_pairs` is the one query choosing
the pairs; everything that decides where a bar goes (:func:`build_timeline`)
is pure (no database, no clock, no HTML), so the picture is tested without a
browser; the template only turns percentages into SVG attributes.

Positions are percentages of the axis width, which lets the SVG scale with
the page and needs no inline CSS (the admin keeps working under a strict
Content-Security-Policy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q

from token_lifecycle.conf import lifecycle_settings
from token_lifecycle.models import Client, TokenPair, TokenPairQuerySet

from .status import ENDED, PairStatus, PairWithPrincipal, current_pair_ids, newness, pair_status

#: Rows drawn at most; the page says when there are more.
ROW_LIMIT = 50
#: Target number of labelled ticks on the axis.
MAX_TICKS = 8
#: Tick spacings to choose from, finest first.
TICK_STEPS = tuple(
    [timedelta(hours=hours) for hours in (1, 2, 3, 6, 12)]
    + [timedelta(days=days) for days in (1, 2, 7, 14, 30, 60, 90, 180, 365)]
)
#: Narrowest bar drawn, in percent: a 6-hour grace window on a 60-day axis is 0.4 %.
MIN_BAR_WIDTH = 0.8
#: A tick label closer than this to "now" (in percent) is left out, so both stay legible.
NOW_LABEL_CLEARANCE = 5.0
#: Blank margin on each side of the axis, in percent of the drawn span.
MARGIN = 2.0
_MIN_SPAN = timedelta(hours=1)


class BarKind:
    ACCESS = "access"
    REFRESH = "refresh"
    GRACE = "grace"


@dataclasses.dataclass(frozen=True)
class Bar:
    """One validity period of a pair, as drawn: ``[start, end)`` at ``left`` for ``width``."""

    kind: str
    start: datetime
    end: datetime
    left: float
    width: float


@dataclasses.dataclass(frozen=True)
class Row:
    """One pair: its status and its bars (access on top, refresh and grace below)."""

    pair: Any
    status: PairStatus
    bars: tuple[Bar, ...]
    #: Where the revocation happened, for a revoked pair.
    revoked_left: float | None
    #: The first row of its principal's group (the template draws a separator).
    first_of_principal: bool

    @property
    def is_current(self) -> bool:
        return self.status is PairStatus.CURRENT

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def bar(self, kind: str) -> Bar | None:
        return next((bar for bar in self.bars if bar.kind == kind), None)


@dataclasses.dataclass(frozen=True)
class Tick:
    at: datetime
    left: float
    #: False when the label would overlap the "now" label; the grid line stays.
    labelled: bool = True


@dataclasses.dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    now: datetime
    now_left: float
    ticks: tuple[Tick, ...]
    #: A Django date format for the tick labels, precise enough for the spacing.
    tick_format: str
    rows: tuple[Row, ...]


# -- Which pairs --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecentPairs:
    #: At most :data:`ROW_LIMIT`, newest first.
    pairs: list[TokenPair]
    #: Pairs that ended before this instant are left out.
    since: datetime
    #: More pairs than :data:`ROW_LIMIT` qualified.
    truncated: bool


def recent_pairs(client: Client, now: datetime) -> RecentPairs:
    """The client's live pairs and those that ended recently, newest first.

    "Recently" is the purge retention (at least a day): the window in which
    ended pairs still exist anyway.
    """
    since = now - max(lifecycle_settings().purge_retention, timedelta(days=1))
    # Ended after ``since``, or not yet: unrevoked and live at ``since``, or revoked after it.
    ended_after = TokenPairQuerySet.live_q(since) | Q(revoked_at__gt=since)
    found = list(
        TokenPair.objects.filter(ended_after, client=client)
        .select_related("user")
        .order_by("-issued_at", "-id")[: ROW_LIMIT + 1]
    )
    return RecentPairs(found[:ROW_LIMIT], since, truncated=len(found) > ROW_LIMIT)


# -- Geometry -----------------------------------------------------------------


def validity_periods(pair: PairWithPrincipal) -> list[tuple[str, datetime, datetime]]:
    """The periods during which each token of ``pair`` was or will be usable.

    - access: from issue to the access expiry;
    - refresh: from issue to its first use (or its expiry if never used);
    - grace: from the first use to the grace end (never past the refresh expiry).

    A revocation cuts every period short. Empty periods are left out.
    """
    cut = pair.revoked_at

    def ending(*candidates: datetime | None) -> datetime:
        return min(instant for instant in (*candidates, cut) if instant is not None)

    periods = [
        (BarKind.ACCESS, pair.issued_at, ending(pair.access_expires_at)),
        (BarKind.REFRESH, pair.issued_at, ending(pair.refresh_expires_at, pair.rotated_at)),
    ]
    if pair.rotated_at is not None and pair.refresh_grace_ends_at is not None:
        periods.append(
            (
                BarKind.GRACE,
                pair.rotated_at,
                ending(pair.refresh_grace_ends_at, pair.refresh_expires_at),
            )
        )
    return [(kind, start, end) for kind, start, end in periods if end > start]


def build_timeline(pairs: Sequence[PairWithPrincipal], now: datetime) -> Timeline | None:
    """Lay ``pairs`` out on one axis spanning all their periods and ``now``.

    Rows are grouped by principal (the group with the newest pair first),
    newest pair first within a group, so a current pair sits right above the
    pairs it superseded. ``now`` gives the time zone ticks are aligned in.
    Returns None when there is nothing to draw.
    """
    if not pairs:
        return None
    current = current_pair_ids(pairs, now)
    periods = {pair.pk: validity_periods(pair) for pair in pairs}
    instants = [now, *(pair.issued_at for pair in pairs)]
    instants += [end for spans in periods.values() for _, _, end in spans]
    start, end = _padded(min(instants), max(instants))

    def percent(instant: datetime) -> float:
        return _clamp((instant - start) / (end - start) * 100)

    rows = []
    previous_principal = None
    for pair in _grouped(pairs):
        bars = tuple(
            _bar(kind, begin, finish, percent) for kind, begin, finish in periods[pair.pk]
        )
        principal = (pair.client_id, pair.user_id)
        rows.append(
            Row(
                pair=pair,
                status=pair_status(pair, now, is_current=pair.pk in current),
                bars=bars,
                revoked_left=None if pair.revoked_at is None else percent(pair.revoked_at),
                first_of_principal=principal != previous_principal,
            )
        )
        previous_principal = principal
    step = tick_step(end - start)
    now_left = percent(now)
    return Timeline(
        start=start,
        end=end,
        now=now,
        now_left=now_left,
        ticks=tuple(
            Tick(at, percent(at), labelled=abs(percent(at) - now_left) >= NOW_LABEL_CLEARANCE)
            for at in ticks(start, end, step, now)
        ),
        tick_format="M j, H:i" if step < timedelta(days=1) else "M j",
        rows=tuple(rows),
    )


def tick_step(span: timedelta) -> timedelta:
    """The finest spacing that puts at most :data:`MAX_TICKS` ticks on ``span``."""
    for step in TICK_STEPS:
        if span / step <= MAX_TICKS:
            return step
    return TICK_STEPS[-1]


def ticks(start: datetime, end: datetime, step: timedelta, now: datetime) -> list[datetime]:
    """Instants in ``[start, end]`` that are multiples of ``step`` from a midnight.

    Midnight of ``start``'s day in ``now``'s time zone, so that day ticks fall
    on the days an operator reads on the page.
    """
    local_start = start.astimezone(now.tzinfo)
    midnight = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    steps_before = -((midnight - local_start) // step)  # ceiling division
    instant = midnight + steps_before * step
    found = []
    while instant <= end:
        found.append(instant)
        instant += step
    return found


def _padded(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    span = max(last - first, _MIN_SPAN)
    margin = span * (MARGIN / 100)
    return first - margin, first + span + margin


def _clamp(value: float) -> float:
    return min(100.0, max(0.0, value))


def _bar(kind: str, start: datetime, end: datetime, percent) -> Bar:
    left = percent(start)
    width = max(percent(end) - left, MIN_BAR_WIDTH)
    return Bar(kind, start, end, min(left, 100.0 - width), width)


def _grouped(pairs: Sequence[PairWithPrincipal]) -> list[PairWithPrincipal]:
    newest: dict[tuple[int, int], tuple] = {}
    for pair in pairs:
        principal = (pair.client_id, pair.user_id)
        newest[principal] = max(newest.get(principal, newness(pair)), newness(pair))
    return sorted(
        pairs,
        key=lambda pair: (newest[(pair.client_id, pair.user_id)], newness(pair)),
        reverse=True,
    )
