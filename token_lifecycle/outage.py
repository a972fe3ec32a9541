"""A database outage is a 503 the client may retry, never a 500.

One spelling for every HTTP path: the bearer authentication (a cold cache
needs the database), the session endpoints and the OAuth endpoints (which
render it in the RFC 6749 shape, ``temporarily_unavailable``).
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from rest_framework.exceptions import APIException

logger = logging.getLogger("token_lifecycle")

#: What Django raises when the database is down, restarting, or gave up on a deadlock.
DATABASE_ERRORS = (OperationalError, InterfaceError)


class ServiceUnavailable(APIException):
    """503 with ``Retry-After: 1``: the transaction rolled back, so retrying is safe."""

    status_code = 503
    default_detail = "The service is temporarily unavailable; retry later."
    default_code = "temporarily_unavailable"
    wait = 1  # DRF's exception handler turns this into Retry-After


def as_unavailable(error: Exception) -> Exception:
    """``error`` itself, or :class:`ServiceUnavailable` if it is a database outage."""
    if isinstance(error, DATABASE_ERRORS):
        logger.warning("Database unavailable; answering 503.", exc_info=error)
        return ServiceUnavailable()
    return error
