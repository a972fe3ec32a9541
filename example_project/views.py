from rest_framework.response import Response
from rest_framework.views import APIView


class WhoAmIView(APIView):
    """``GET /api/whoami/``: who the bearer token says you are."""

    def get(self, request):
        return Response(
            {
                "username": request.user.get_username(),
                "client_id": request.auth.client_id,
                "pair_id": str(request.auth.pair_id),
            }
        )
