"""Middleware of the example project."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.views.defaults import bad_request

security_logger = logging.getLogger("django.security.DisallowedHost")


def reject_unknown_hosts(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Answer a request for a host not in ``ALLOWED_HOSTS`` with the plain 400 page.

    Django already does so with ``DEBUG`` off; with it on (``make demo``) it
    shows its debug page instead, settings and all, to whoever sent the
    request: a web page whose host name resolves to 127.0.0.1 (DNS rebinding)
    could read it. Checking the host before anything else answers both alike.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost as error:
            security_logger.error(str(error), extra={"status_code": 400, "request": request})
            return bad_request(request, error)
        return get_response(request)

    return middleware
