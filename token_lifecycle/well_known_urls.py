"""The discovery documents at the site root, for ``path("", include(...))``.

RFC 8414 §3 places the metadata of an issuer ``https://host/auth`` at
``https://host/.well-known/oauth-authorization-server/auth``; clients that
discover from the host name alone look there. ``token_lifecycle.urls`` must be
included too (these views link to its endpoints).
"""

from django.urls import path

from .oauth.discovery import JWKSView, MetadataView

urlpatterns = [
    path(
        ".well-known/oauth-authorization-server/<path:issuer_path>",
        MetadataView.as_view(),
        name="token_lifecycle_root_metadata",
    ),
    # The bare URL describes an issuer without a path (RFC 8414 §3.1): 404 unless ours is one.
    path(
        ".well-known/oauth-authorization-server",
        MetadataView.as_view(),
        {"issuer_path": ""},
        name="token_lifecycle_root_metadata_bare",
    ),
    path(".well-known/jwks.json", JWKSView.as_view(), name="token_lifecycle_root_jwks"),
]
