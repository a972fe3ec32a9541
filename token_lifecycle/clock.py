"""The application clock.

Django's ``timezone.now()`` (which tests freeze), never the database's clock,
truncated to whole seconds: token timestamps are JWT NumericDates, so every
stored instant equals the ``iat``/``exp`` of the tokens it belongs to, and
comparisons between stored instants and ``now`` agree with the tokens'.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now().replace(microsecond=0)
