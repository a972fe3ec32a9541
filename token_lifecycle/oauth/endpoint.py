"""The base view of the OAuth endpoints (token, revocation, introspection).

No DRF authentication or parsing (the body is parsed by :mod:`.parsing`, the
client authenticated by :mod:`.clients`), JSON whatever the ``Accept`` header,
``no-store``, and every refusal in the RFC 6749 §5.2 shape: DRF's own
exceptions (wrong method, throttled, database outage) included. An endpoint
with :attr:`~OAuthEndpoint.cors_enabled` answers CORS and its preflights for
the origins of browser-mode clients (:mod:`.cors`).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.http import HttpRequest
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from rest_framework.exceptions import MethodNotAllowed, Throttled
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Client
from ..outage import ServiceUnavailable, as_unavailable
from . import cors, refresh_cookie
from .clients import DEFAULT_METHODS, ClientAuthMethod, authenticate_client
from .errors import OAuthError, TemporarilyUnavailable, TooManyRequests, WrongMethod


class _JSONOnly(BaseContentNegotiation):
    """OAuth endpoints answer JSON whatever the Accept header says."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# Every request here carries a secret (client secret, password, refresh or access
# token): Django's error reports hide all its POST parameters and the local
# variables of every frame below dispatch(), whatever grant or subclass raised.
@method_decorator(sensitive_post_parameters(), name="dispatch")
@method_decorator(sensitive_variables(), name="dispatch")
class OAuthEndpoint(APIView):
    """Base view: no DRF authentication or parsing, RFC 6749 errors, ``no-store``.

    Subclasses parse with :func:`~.parsing.parse_body`, authenticate the client
    with :meth:`authenticate_client`, and raise :class:`OAuthError` for refusals.
    """

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _JSONOnly
    #: The RFC 6749 §2.3 methods this endpoint accepts; the metadata lists their names.
    client_auth_methods: Sequence[type[ClientAuthMethod]] = DEFAULT_METHODS
    #: Whether pages of browser-mode clients may call this endpoint (:mod:`.cors`).
    cors_enabled = False
    #: The client :meth:`authenticate_client` authenticated, once it has.
    client: Client | None = None

    def initialize_request(self, request: HttpRequest, *args, **kwargs) -> Request:
        # The refresh cookie's path is the token endpoint: every request it reaches is here.
        refresh_cookie.hide_from_error_reports(request)
        return super().initialize_request(request, *args, **kwargs)

    def authenticate_client(self, request: Request, params: dict[str, str]) -> Client:
        self.client = authenticate_client(request, params, self.client_auth_methods)
        return self.client

    def options(self, request: Request, *args, **kwargs) -> Response:
        # A preflight gets its answer in headers (finalize_response), no body.
        if self.cors_enabled and cors.is_preflight(request):
            return Response(status=204)
        return super().options(request, *args, **kwargs)

    def as_oauth_error(self, exc: Exception) -> Exception:
        """``exc`` as an :class:`OAuthError` when it has an RFC 6749 spelling."""
        exc = as_unavailable(exc)
        if isinstance(exc, ServiceUnavailable):
            return TemporarilyUnavailable(str(exc.detail))
        if isinstance(exc, MethodNotAllowed):
            return WrongMethod(self.request.method, self.allowed_methods)
        if isinstance(exc, Throttled):
            return TooManyRequests(exc.wait or 1)
        return exc

    def handle_exception(self, exc: Exception) -> Response:
        exc = self.as_oauth_error(exc)
        if isinstance(exc, OAuthError):
            return Response(exc.as_dict(), status=exc.status, headers=exc.headers())
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        if self.cors_enabled:
            origin = cors.allowed_origin(request, self.client)
            cors.add_headers(response, origin, preflight=cors.is_preflight(request))
        return response
