"""URLs of the benchmark project: one whoami per package, and each package's token endpoints.

| path | what |
|---|---|
| ``/api/whoami/<name>/`` | ``views.WhoAmI`` with package ``name``'s authentication |
| ``/auth/token/`` | token_lifecycle's token endpoint (all grants) |
| ``/simplejwt/token/``, ``/simplejwt/token/refresh/`` | simplejwt obtain pair, refresh |
| ``/o/token/`` | django-oauth-toolkit's token endpoint (all grants) |
| ``/knox/login/`` | knox login (HTTP Basic with the user's password) |
"""

from django.urls import include, path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from bench_project import views

WHOAMI_VIEWS = {
    "allowany": views.AllowAnyWhoAmI,
    "ours": views.OursWhoAmI,
    "simplejwt": views.SimpleJWTWhoAmI,
    "simplejwt-stateless": views.SimpleJWTStatelessWhoAmI,
    "dot": views.DOTWhoAmI,
    "knox": views.KnoxWhoAmI,
}

urlpatterns = [
    *(path(f"api/whoami/{name}/", view.as_view()) for name, view in WHOAMI_VIEWS.items()),
    path("auth/", include("token_lifecycle.urls")),
    path("simplejwt/token/", TokenObtainPairView.as_view()),
    path("simplejwt/token/refresh/", TokenRefreshView.as_view()),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("knox/login/", views.KnoxLogin.as_view()),
]
