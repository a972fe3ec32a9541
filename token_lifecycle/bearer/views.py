"""The endpoints a bearer token uses about its own sessions: list, logout, logout-all."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
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


class LogoutView(SessionView):
    """``POST /logout/``: revokes the pair of the presented access token."""

    def post(self, request) -> Response:
        revoked = services.revoke_pair_by_id(request.auth.pair_id, RevokeReason.LOGOUT)
        return Response({"revoked": len(revoked)})


class LogoutAllView(SessionView):
    """``POST /logout-all/``: revokes every live pair of the caller's user, on every client."""

    def post(self, request) -> Response:
        revoked = services.revoke_user_pairs(request.user, RevokeReason.LOGOUT_ALL)
        return Response({"revoked": len(revoked)})
