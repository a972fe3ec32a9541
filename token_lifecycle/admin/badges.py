"""Status badges: a pair's or a signing key's status as a coloured label.

The colours are in :data:`STYLESHEET`, which every admin page of the app loads.
"""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst

from token_lifecycle.models import TokenPair
from token_lifecycle.rules import RevokeReason

from .formats import format_instant
from .status import KeyStatus, PairStatus

STYLESHEET = "token_lifecycle/admin.css"

#: Badge texts shorter than the filter's labels, which the badge's tooltip gives.
_BADGE_TEXT = {PairStatus.SUPERSEDED: "superseded", PairStatus.ACCESS_ONLY: "access only"}


def pair_badge(status: PairStatus | str, pair: TokenPair) -> SafeString:
    """A pair's status; a superseded pair says whether it is in grace, a revoked one why."""
    status = PairStatus(status)
    text, title = _BADGE_TEXT.get(status, status.label), status.label
    if status is PairStatus.SUPERSEDED and pair.refresh_grace_ends_at is not None:
        text = "superseded, in grace"
        title = f"refresh token usable until {format_instant(pair.refresh_grace_ends_at)}"
    elif status is PairStatus.REVOKED:
        reason = pair.revoke_reason or "unknown"
        text = f"revoked: {reason.replace('_', ' ')}"
        label = RevokeReason(reason).label if reason in RevokeReason.values else reason
        title = f"{capfirst(label)}, {format_instant(pair.revoked_at)}"
    return format_html(
        '<span class="tl-status tl-status--{}" title="{}">{}</span>', status.value, title, text
    )


def key_badge(status: KeyStatus) -> SafeString:
    return format_html('<span class="tl-status tl-key--{}">{}</span>', status.value, status.label)
