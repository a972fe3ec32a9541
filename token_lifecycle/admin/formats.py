"""Durations, instants and counts as an operator reads them on admin pages."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from token_lifecycle import clock


def counted(count: int, noun: str) -> str:
    """``counted(2, "pair")`` -> ``"2 pairs"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_duration(value: timedelta) -> str:
    """``timedelta(days=1, hours=6)`` -> ``"1 day 6 hours"``: how an operator says it."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0 seconds"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(counted(count, unit))
    return " ".join(parts)


def format_instant(value: datetime | None) -> str | None:
    """A local time to the minute, for messages and tooltips."""
    if value is None:
        return None
    return date_format(timezone.localtime(value), "Y-m-d H:i")


def table_instant(value: datetime | None) -> SafeString | None:
    """A compact local time for dense tables ("Nov 23, 14:05"), the full one on hover.

    The year shows only when it is not the current one.
    """
    if value is None:
        return None
    local = timezone.localtime(value)
    this_year = timezone.localtime(clock.now()).year
    short = "M j, H:i" if local.year == this_year else "M j Y, H:i"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        date_format(local, "Y-m-d H:i:s T"),
        date_format(local, short),
    )
