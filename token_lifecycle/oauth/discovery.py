"""The discovery documents: the JWKS (RFC 7517) and the server's metadata (RFC 8414).

Public and cacheable, unlike the OAuth endpoints: GET, no client
authentication, ``Cache-Control: public``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import Http404
from django.urls import reverse
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import clock, keys, pkce
from ..conf import lifecycle_settings
from ..issuer import issuer_for
from ..models import GrantType, SigningKey
from ..outage import as_unavailable
from .endpoint import OAuthEndpoint
from .views import IntrospectionView, RevocationView, TokenView


class _Document(APIView):
    """A public JSON document; a database outage is DRF's 503 with ``Retry-After``."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        return super().handle_exception(as_unavailable(exc))


class JWKSView(_Document):
    """``GET /.well-known/jwks.json``: the public keys that verify access tokens."""

    def get(self, request: Request) -> Response:
        keys.signing_key()  # a fresh install publishes its first key, not an empty set
        published = SigningKey.objects.published(clock.now()).values_list("public_jwk", flat=True)
        response = Response({"keys": [keys.published_jwk(jwk) for jwk in published]})
        max_age = int(lifecycle_settings().jwks_max_age.total_seconds())
        response["Cache-Control"] = f"public, max-age={max_age}"
        return response


class MetadataView(_Document):
    """``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata.

    The client authentication methods listed are those the views accept
    (``client_auth_methods``); a project serving subclasses names them here.
    """

    token_view: type[OAuthEndpoint] = TokenView
    revocation_view: type[OAuthEndpoint] = RevocationView
    introspection_view: type[OAuthEndpoint] = IntrospectionView

    def get(self, request: Request, issuer_path: str | None = None) -> Response:
        issuer = issuer_for(request)
        if issuer_path is not None and issuer_path.strip("/") != urlsplit(issuer).path.strip("/"):
            raise Http404("No authorization server with that issuer here.")

        def url(name: str) -> str:
            return request.build_absolute_uri(reverse(f"token_lifecycle:{name}"))

        algorithms = sorted(
            set(SigningKey.objects.published(clock.now()).values_list("algorithm", flat=True))
            | {lifecycle_settings().signing_algorithm}
        )
        response = Response(
            {
                "issuer": issuer,
                "authorization_endpoint": url("authorize"),
                "token_endpoint": url("token"),
                "revocation_endpoint": url("revoke"),
                "introspection_endpoint": url("introspect"),
                "jwks_uri": url("jwks"),
                "response_types_supported": ["code"],
                "grant_types_supported": [grant.value for grant in GrantType],
                "code_challenge_methods_supported": [pkce.S256],
                # RFC 9207: every authorization response carries iss.
                "authorization_response_iss_parameter_supported": True,
                "token_endpoint_auth_methods_supported": _names(self.token_view),
                "revocation_endpoint_auth_methods_supported": _names(self.revocation_view),
                "introspection_endpoint_auth_methods_supported": _names(self.introspection_view),
                # Not registered by RFC 8414; says how access tokens (RFC 9068) are signed.
                "access_token_signing_alg_values_supported": algorithms,
            }
        )
        response["Cache-Control"] = "public, max-age=3600"
        return response


def _names(view: type[OAuthEndpoint]) -> list[str]:
    return [method.name for method in view.client_auth_methods]
