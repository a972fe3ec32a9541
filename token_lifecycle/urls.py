"""Include with ``path("auth/", include("token_lifecycle.urls"))``.

To also serve the metadata and JWKS at the site root, where RFC 8414 clients
look first, include :mod:`token_lifecycle.well_known_urls` at ``""``.
"""

from django.urls import path

from .bearer.views import LogoutAllView, LogoutView, PairsView
from .oauth.authorization import AuthorizationView
from .oauth.discovery import JWKSView, MetadataView
from .oauth.views import IntrospectionView, RevocationView, TokenView

app_name = "token_lifecycle"

urlpatterns = [
    path("authorize/", AuthorizationView.as_view(), name="authorize"),
    path("token/", TokenView.as_view(), name="token"),
    path("token/revoke/", RevocationView.as_view(), name="revoke"),
    path("token/introspect/", IntrospectionView.as_view(), name="introspect"),
    path("pairs/", PairsView.as_view(), name="pairs"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("logout-all/", LogoutAllView.as_view(), name="logout-all"),
    path(".well-known/jwks.json", JWKSView.as_view(), name="jwks"),
    path(".well-known/oauth-authorization-server", MetadataView.as_view(), name="metadata"),
]
