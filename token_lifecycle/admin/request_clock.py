"""One instant per admin request, read once from the application clock."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest

from token_lifecycle import clock


def request_now(request: HttpRequest) -> datetime:
    """``clock.now()`` at the first call for ``request``, the same instant afterwards.

    A page filters, counts and labels pairs in several queries; judged at one
    instant they agree, even when a second ticks between them.
    """
    if not hasattr(request, "_token_lifecycle_now"):
        request._token_lifecycle_now = clock.now()
    return request._token_lifecycle_now
