"""The resource server's API: who the token says the caller is, and a scoped resource."""

from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from token_lifecycle.permissions import HasScope


class ResourceView(APIView):
    """``GET /api/resource/``: the caller, as the token and the introspection answer say."""

    def get(self, request: Request) -> Response:
        return Response(
            {
                "sub": request.user.id,
                "username": request.user.username,
                "client_id": request.user.client_id,
                "scopes": sorted(request.user.scopes),
                "token_id": request.auth["jti"],
            }
        )


class ReportsView(APIView):
    """``GET /api/reports/``: only for tokens granted the ``reports`` scope."""

    permission_classes = [IsAuthenticated, HasScope]
    required_scopes = ["reports"]

    def get(self, request: Request) -> Response:
        return Response({"reports": []})


urlpatterns = [
    path("api/resource/", ResourceView.as_view()),
    path("api/reports/", ReportsView.as_view()),
]
