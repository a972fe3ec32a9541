from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView


class ResourceView(APIView):
    """``GET /api/resource/``: what this service knows about the caller, from the token alone."""

    def get(self, request):
        return Response(
            {
                "sub": request.user.id,
                "client_id": request.user.client_id,
                "scopes": sorted(request.user.scopes),
                "token_id": request.auth["jti"],
            }
        )


urlpatterns = [path("api/resource/", ResourceView.as_view())]
