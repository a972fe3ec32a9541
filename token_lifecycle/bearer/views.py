"""The endpoints a bearer token uses about its own sessions: list, logout, logout-all."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..oauth.refresh_cookie import clear_refresh_cookie
from ..outage import as_unavailable
from ..rules import RevokeReason
from .authentication import BearerTokenAuthentication


class SessionView(APIView):
    """Base of the endpoints a bearer token uses about its own sessions."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        return super().handle_exception(as_unavailable(exc))

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


def _iso(instant) -> str | None:
    return instant.isoformat().replace("+00:00", "Z") if instant else None


class PairsView(SessionView):
    """``GET /pairs/``: the caller's live pairs (its client, its user), newest first.

    ``current`` marks the newest; ``presented`` the pair whose access token
    made this request (not always the current one: a server may still use a
    superseded pair inside its window).
    """

    def get(self, request) -> Response:
        pairs = services.principal_pairs(request.auth.client, request.user)
        return Response(
            [
                {
                    "id": str(pair.pk),
                    "current": index == 0,
                    "presented": pair.pk == request.auth.pair_id,
                    "issued_at": _iso(pair.issued_at),
                    "access_expires_at": _iso(pair.access_expires_at),
                    "refresh_expires_at": _iso(pair.refresh_expires_at),
                    "refresh_grace_ends_at": _iso(pair.refresh_grace_ends_at),
                    "scope": pair.scope,
                }
                for index, pair in enumerate(pairs)
            ]
        )


def _logged_out(request: Request, revoked: list) -> Response:
    """The answer to a logout; it clears the refresh cookie of a browser-mode client.

    The cookie is not sent here (its path is the token endpoint's), so whether
    it held one of the pairs revoked cannot be seen: the caller's client says.
    """
    response = Response({"revoked": len(revoked)})
    if request.auth.client.refresh_token_in_cookie:
        clear_refresh_cookie(response)
    return response


class LogoutView(SessionView):
    """``POST /logout/``: revokes the pair of the presented access token."""

    def post(self, request) -> Response:
        revoked = services.revoke_pair_by_id(request.auth.pair_id, RevokeReason.LOGOUT)
        return _logged_out(request, revoked)


class LogoutAllView(SessionView):
    """``POST /logout-all/``: revokes every live pair of the caller's user, on every client."""

    def post(self, request) -> Response:
        revoked = services.revoke_user_pairs(request.user, RevokeReason.LOGOUT_ALL)
        return _logged_out(request, revoked)
