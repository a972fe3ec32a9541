"""The ``GET /api/whoami/`` equivalent, once per package, plus the AllowAny baseline.

The views differ only in ``authentication_classes``: each uses its package's
class alone, with ``IsAuthenticated``. The body is the same for everyone (the
username), so rendering costs the same. The knox login view authenticates the
user with HTTP Basic (username and password), knox's documented set-up.
"""

from knox.auth import TokenAuthentication
from knox.views import LoginView
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import (
    JWTAuthentication,
    JWTStatelessUserAuthentication,
)

from token_lifecycle.authentication import BearerTokenAuthentication


class WhoAmI(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"username": request.user.get_username()})


class AllowAnyWhoAmI(WhoAmI):
    """The baseline: same view, no authentication at all."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


class OursWhoAmI(WhoAmI):
    authentication_classes = [BearerTokenAuthentication]


class SimpleJWTWhoAmI(WhoAmI):
    authentication_classes = [JWTAuthentication]


class SimpleJWTStatelessWhoAmI(WhoAmI):
    authentication_classes = [JWTStatelessUserAuthentication]


class DOTWhoAmI(WhoAmI):
    authentication_classes = [OAuth2Authentication]


class KnoxWhoAmI(WhoAmI):
    authentication_classes = [TokenAuthentication]


class KnoxLogin(LoginView):
    authentication_classes = [BasicAuthentication]
