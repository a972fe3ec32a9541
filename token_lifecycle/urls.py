"""Include with ``path("auth/", include("token_lifecycle.urls"))``.

To also serve the metadata and JWKS at the site root, where RFC 8414 clients
look first, include :mod:`token_lifecycle.well_known_urls` at ``""``.
"""

from django.urls import path

from . import views

app_name = "token_lifecycle"

urlpatterns = [
    path("token/", views.TokenView.as_view(), name="token"),
    path("token/revoke/", views.RevocationView.as_view(), name="revoke"),
    path("token/introspect/", views.IntrospectionView.as_view(), name="introspect"),
    path("pairs/", views.PairsView.as_view(), name="pairs"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("logout-all/", views.LogoutAllView.as_view(), name="logout-all"),
    path(".well-known/jwks.json", views.JWKSView.as_view(), name="jwks"),
    path(
        ".well-known/oauth-authorization-server",
        views.MetadataView.as_view(),
        name="metadata",
    ),
]
