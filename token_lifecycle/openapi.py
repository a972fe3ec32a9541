"""OpenAPI 3 description of the endpoints, for projects that use drf-spectacular.

Optional: install ``django-token-lifecycle[openapi]`` (drf-spectacular), add
``"drf_spectacular"`` to ``INSTALLED_APPS``, set
``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"``
and import this module once (for instance from the project's ``urls.py``).
Nothing else in the app imports it, so the app runs without drf-spectacular.

Only extensions, no decorators: importing this module registers

- an authentication extension for :class:`~.authentication.BearerTokenAuthentication`
  (HTTP bearer, ``bearerFormat: JWT``), so every view using it, the project's
  own included, is documented with the ``bearerAuth`` security scheme;
- a view extension for each of the app's views, describing their request
  bodies (form-urlencoded and JSON), answers and headers.

The serializers below describe the wire format; the views never use them.
"""

from __future__ import annotations

import re

try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
    from drf_spectacular.plumbing import build_bearer_security_scheme_object
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import (
        OpenApiParameter,
        OpenApiResponse,
        PolymorphicProxySerializer,
        extend_schema,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "token_lifecycle.openapi needs drf-spectacular: "
        "pip install 'django-token-lifecycle[openapi]'"
    ) from error

from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings

from .conf import SIGNING_ALGORITHMS
from .models import GrantType
from .oauth.parsing import FORM, JSON, MAX_VALUE_LENGTH
from .reasons import RefreshRefusal

__all__ = ["BEARER_FAILURES", "BEARER_FAILURE_HEADERS", "BearerTokenScheme"]

OAUTH_TAG = "OAuth 2.0"
SESSIONS_TAG = "Sessions"
DISCOVERY_TAG = "Discovery"

OAUTH_ERRORS = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "slow_down",
    "temporarily_unavailable",
]


# -- Authentication schemes -----------------------------------------------------------------


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <access token>`` (RFC 6750), the token a JWT (RFC 9068)."""

    target_class = "token_lifecycle.authentication.BearerTokenAuthentication"
    match_subclasses = True
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        scheme = build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer", bearer_format="JWT"
        )
        scheme["description"] = (
            "An access token from the token endpoint. A bad, expired or revoked token gets 401 "
            'with `WWW-Authenticate: Bearer realm="api", error="invalid_token"`.'
        )
        return scheme


class ClientAuthenticationDocumentation(BaseAuthentication):
    """Never used to authenticate: it stands for RFC 6749 §2.3 client authentication.

    The OAuth endpoints authenticate the client themselves (``oauth/clients.py``);
    this class only lets the schema name the HTTP Basic scheme they accept.
    """

    def authenticate(self, request):  # pragma: no cover - documentation only
        return None


class ClientSecretBasicScheme(OpenApiAuthenticationExtension):
    target_class = ClientAuthenticationDocumentation
    name = "clientSecretBasic"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": (
                "Client authentication (RFC 6749 §2.3.1): `client_id:client_secret`, each "
                "form-urlencoded, in HTTP Basic. Instead, a confidential client may send "
                "`client_id` and `client_secret` in the body, and a public client sends "
                "`client_id` only. A failure is 401 `invalid_client`."
            ),
        }


# -- Wire formats ---------------------------------------------------------------------------


def _param(help_text: str, *, required: bool = False) -> serializers.CharField:
    return serializers.CharField(
        required=required, max_length=MAX_VALUE_LENGTH, help_text=help_text
    )


class _ClientCredentialsInBody(serializers.Serializer):
    client_id = _param("The client id, when not sent with HTTP Basic.")
    client_secret = _param("The client secret of a confidential client, with `client_id`.")


class ClientCredentialsGrantSerializer(_ClientCredentialsInBody):
    grant_type = serializers.ChoiceField(choices=[GrantType.CLIENT_CREDENTIALS.value])
    scope = _param("Space-separated scopes; all the client's scopes when omitted.")

    class Meta:
        ref_name = "ClientCredentialsGrant"


class PasswordGrantSerializer(_ClientCredentialsInBody):
    grant_type = serializers.ChoiceField(choices=[GrantType.PASSWORD.value])
    username = _param("The user's username.", required=True)
    password = _param("The user's password.", required=True)
    scope = _param("Space-separated scopes; all the client's scopes when omitted.")

    class Meta:
        ref_name = "PasswordGrant"


class RefreshTokenGrantSerializer(_ClientCredentialsInBody):
    grant_type = serializers.ChoiceField(choices=[GrantType.REFRESH_TOKEN.value])
    refresh_token = _param("The refresh token (`rt_...`) of the pair to refresh.", required=True)
    scope = _param("Narrows the pair's scope; it can never widen it.")

    class Meta:
        ref_name = "RefreshTokenGrant"


TOKEN_REQUEST = PolymorphicProxySerializer(
    component_name="TokenRequest",
    serializers={
        GrantType.CLIENT_CREDENTIALS.value: ClientCredentialsGrantSerializer,
        GrantType.PASSWORD.value: PasswordGrantSerializer,
        GrantType.REFRESH_TOKEN.value: RefreshTokenGrantSerializer,
    },
    resource_type_field_name="grant_type",
    many=False,
)


class TokenResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField(help_text="A JWT (RFC 9068), signed per the JWKS.")
    token_type = serializers.ChoiceField(choices=["Bearer"])
    expires_in = serializers.IntegerField(
        help_text="Whole seconds until the access token expires."
    )
    refresh_token = serializers.CharField(
        required=False,
        help_text="Opaque; shown only in this answer. Absent for a client_credentials "
        "answer when the client is set not to get one (RFC 6749 §4.4.3).",
    )
    refresh_expires_in = serializers.IntegerField(
        required=False, help_text="Whole seconds until the refresh token expires."
    )
    scope = serializers.CharField(required=False, help_text="Present when the pair has scopes.")

    class Meta:
        ref_name = "TokenResponse"


class OAuthErrorSerializer(serializers.Serializer):
    error = serializers.ChoiceField(choices=OAUTH_ERRORS)
    error_description = serializers.CharField()
    reason = serializers.ChoiceField(
        choices=[refusal.value for refusal in RefreshRefusal],
        required=False,
        help_text="Why a refresh was refused (`invalid_grant` only); read this, not the text.",
    )

    class Meta:
        ref_name = "OAuthError"


class TokenParameterSerializer(_ClientCredentialsInBody):
    """RFC 7009 and RFC 7662 requests: one token, an optional hint."""

    token = _param("An access token or a refresh token.", required=True)
    token_type_hint = _param(
        "`access_token` or `refresh_token`; accepted and not needed (the kind of a token "
        "is read from its shape)."
    )

    class Meta:
        ref_name = "TokenParameter"


class IntrospectionSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    token_use = serializers.ChoiceField(choices=["access_token", "refresh_token"], required=False)
    token_type = serializers.CharField(required=False, help_text="`Bearer`, for access tokens.")
    client_id = serializers.CharField(required=False)
    username = serializers.CharField(required=False)
    sub = serializers.CharField(required=False)
    iss = serializers.CharField(required=False)
    jti = serializers.UUIDField(required=False, help_text="The pair id.")
    iat = serializers.IntegerField(required=False)
    exp = serializers.IntegerField(required=False)
    scope = serializers.CharField(required=False)
    aud = serializers.CharField(required=False)

    class Meta:
        ref_name = "Introspection"


class LivePairSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The pair id, the access token's `jti`.")
    current = serializers.BooleanField(help_text="True for the newest live pair only.")
    presented = serializers.BooleanField(help_text="The pair of the token of this request.")
    issued_at = serializers.DateTimeField()
    access_expires_at = serializers.DateTimeField()
    refresh_expires_at = serializers.DateTimeField()
    refresh_grace_ends_at = serializers.DateTimeField(
        allow_null=True, help_text="Null while the refresh token is unused."
    )
    scope = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "LivePair"


class RevokedCountSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(min_value=0)

    class Meta:
        ref_name = "RevokedCount"


class BearerErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()

    class Meta:
        ref_name = "BearerError"


class JSONWebKeySerializer(serializers.Serializer):
    kty = serializers.ChoiceField(choices=["RSA", "EC", "OKP"])
    kid = serializers.CharField()
    alg = serializers.ChoiceField(choices=list(SIGNING_ALGORITHMS))
    use = serializers.ChoiceField(choices=["sig"])
    n = serializers.CharField(required=False)
    e = serializers.CharField(required=False)
    crv = serializers.CharField(required=False)
    x = serializers.CharField(required=False)
    y = serializers.CharField(required=False)

    class Meta:
        ref_name = "JSONWebKey"


class JSONWebKeySetSerializer(serializers.Serializer):
    keys = JSONWebKeySerializer(many=True)

    class Meta:
        ref_name = "JSONWebKeySet"


class AuthorizationServerMetadataSerializer(serializers.Serializer):
    issuer = serializers.URLField()
    token_endpoint = serializers.URLField()
    revocation_endpoint = serializers.URLField()
    introspection_endpoint = serializers.URLField()
    jwks_uri = serializers.URLField()
    grant_types_supported = serializers.ListField(child=serializers.CharField())
    token_endpoint_auth_methods_supported = serializers.ListField(child=serializers.CharField())
    revocation_endpoint_auth_methods_supported = serializers.ListField(
        child=serializers.CharField()
    )
    introspection_endpoint_auth_methods_supported = serializers.ListField(
        child=serializers.CharField()
    )
    access_token_signing_alg_values_supported = serializers.ListField(
        child=serializers.CharField()
    )

    class Meta:
        ref_name = "AuthorizationServerMetadata"


# -- Responses and headers ------------------------------------------------------------------


def _header(name: str, statuses: list[int], description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=True,
        response=statuses,
        description=description,
    )


def _oauth_error(description: str) -> OpenApiResponse:
    return OpenApiResponse(OAuthErrorSerializer, description=description)


OAUTH_FAILURES = {
    400: _oauth_error(
        "Malformed or refused request (RFC 6749 §5.2): `invalid_request`, `invalid_grant`, "
        "`unsupported_grant_type`, `unauthorized_client` or `invalid_scope`."
    ),
    401: _oauth_error("`invalid_client`: client authentication failed or is missing."),
    413: _oauth_error("`invalid_request`: the body is larger than `MAX_REQUEST_BODY_BYTES`."),
    503: _oauth_error("`temporarily_unavailable`: the database is unreachable; retry."),
}
OAUTH_HEADERS = [
    _header("Cache-Control", [200, 400, 401, 413, 429, 503], "`no-store`"),
    _header("Pragma", [200, 400, 401, 413, 429, 503], "`no-cache`"),
    _header("WWW-Authenticate", [401], '`Basic realm="api"`'),
    _header("Retry-After", [429, 503], "Seconds to wait before retrying."),
]
OAUTH_BODY_NOTE = (
    f"The body is `{FORM}` (RFC 6749) or `{JSON}` (an object of strings), in UTF-8. A "
    "parameter with an empty value counts as omitted; a repeated one is `invalid_request`."
)

#: The answers of any view authenticated by ``BearerTokenAuthentication`` when it refuses.
BEARER_FAILURES = {
    401: OpenApiResponse(
        BearerErrorSerializer,
        description=(
            'No bearer token (`WWW-Authenticate: Bearer realm="api"`), or a bad, expired, '
            'revoked or wrong-type one (`error="invalid_token"` in the challenge).'
        ),
    ),
    503: OpenApiResponse(
        BearerErrorSerializer, description="The database is unreachable; retry later."
    ),
}
#: The headers of :data:`BEARER_FAILURES`; with it, for a project's own bearer-protected views.
BEARER_FAILURE_HEADERS = [
    _header("WWW-Authenticate", [401], 'A `Bearer realm="api"` challenge (RFC 6750 §3).'),
    _header("Retry-After", [503], "Seconds to wait before retrying."),
]
BEARER_HEADERS = [_header("Cache-Control", [200, 401, 503], "`no-store`"), *BEARER_FAILURE_HEADERS]
PUBLIC_HEADERS = [_header("Cache-Control", [200], "`public, max-age=...`")]
#: ``well_known_urls``' ``<path:issuer_path>``: anything but a line break routes to the view.
ISSUER_PATH = OpenApiParameter(
    "issuer_path",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern="^[^\\n]+$",
    description="The issuer's path (`auth` for `https://host/auth`); another one is a 404.",
)


# -- Views ----------------------------------------------------------------------------------


class _OAuthEndpointExtension(OpenApiViewExtension):
    """Base of the token, revocation and introspection endpoints' descriptions."""

    match_subclasses = True
    schema: dict = {}

    def view_replacement(self):
        @extend_schema(tags=[OAUTH_TAG], parameters=OAUTH_HEADERS, **self.schema)
        class Documented(self.target):
            # Documentation only: the views authenticate clients themselves.
            authentication_classes = [ClientAuthenticationDocumentation]
            permission_classes = [AllowAny]  # adds {}: body credentials, or a public client

        return Documented


class TokenViewSchema(_OAuthEndpointExtension):
    target_class = "token_lifecycle.oauth.views.TokenView"
    schema = {
        "summary": "Issue or refresh a token pair (RFC 6749)",
        "description": (
            "`grant_type` is `client_credentials` (the pair acts as the client's owner), "
            "`password` (`username`, `password`) or `refresh_token` (`refresh_token`: a new "
            "pair in the same family; the old refresh token stays usable for the grace "
            "period after its first use, and a replay after it revokes the family). "
            + OAUTH_BODY_NOTE
        ),
        "request": {FORM: TOKEN_REQUEST, JSON: TOKEN_REQUEST},
        "responses": dict(
            sorted(
                {
                    200: OpenApiResponse(TokenResponseSerializer, description="A new pair."),
                    **OAUTH_FAILURES,
                    429: _oauth_error(
                        "`slow_down`: too many requests, or too many failed passwords for this "
                        "username or address."
                    ),
                }.items()
            )
        ),
    }


class RevocationViewSchema(_OAuthEndpointExtension):
    target_class = "token_lifecycle.oauth.views.RevocationView"
    schema = {
        "summary": "Revoke a token's pair (RFC 7009)",
        "description": (
            "Revokes the pair holding the access or refresh token (both its tokens). The "
            "answer is the same empty 200 for an unknown token, a revoked one and another "
            "client's token. " + OAUTH_BODY_NOTE
        ),
        "request": {FORM: TokenParameterSerializer, JSON: TokenParameterSerializer},
        "responses": {
            200: OpenApiResponse(description="Revoked, or nothing to revoke (empty body)."),
            **OAUTH_FAILURES,
        },
    }


class IntrospectionViewSchema(_OAuthEndpointExtension):
    target_class = "token_lifecycle.oauth.views.IntrospectionView"
    schema = {
        "summary": "Introspect a token (RFC 7662)",
        "description": (
            "A client sees its own tokens; a client with `can_introspect` sees every "
            "client's. Anything inactive, unknown or not visible is exactly "
            '`{"active": false}`. ' + OAUTH_BODY_NOTE
        ),
        "request": {FORM: TokenParameterSerializer, JSON: TokenParameterSerializer},
        "responses": {
            200: OpenApiResponse(IntrospectionSerializer, description="The token's state."),
            **OAUTH_FAILURES,
        },
    }


class _SessionExtension(OpenApiViewExtension):
    match_subclasses = True
    schema: dict = {}

    def view_replacement(self):
        @extend_schema(tags=[SESSIONS_TAG], parameters=BEARER_HEADERS, request=None, **self.schema)
        class Documented(self.target):
            pass

        return Documented


class PairsViewSchema(_SessionExtension):
    target_class = "token_lifecycle.bearer.views.PairsView"
    schema = {
        "summary": "The caller's live pairs",
        "description": (
            "Live pairs of the caller's principal (its client and user), newest first; "
            "`current` marks the newest, `presented` the pair of this request's token."
        ),
        "responses": {
            200: OpenApiResponse(LivePairSerializer(many=True), description="Newest first."),
            **BEARER_FAILURES,
        },
    }


class LogoutViewSchema(_SessionExtension):
    target_class = "token_lifecycle.bearer.views.LogoutView"
    schema = {
        "summary": "Log out: revoke the presented token's pair",
        "responses": {
            200: OpenApiResponse(RevokedCountSerializer, description="`revoked` is 1."),
            **BEARER_FAILURES,
        },
    }


class LogoutAllViewSchema(_SessionExtension):
    target_class = "token_lifecycle.bearer.views.LogoutAllView"
    schema = {
        "summary": "Log out everywhere: revoke every live pair of the caller's user",
        "description": "On every client, not only the caller's.",
        "responses": {
            200: OpenApiResponse(RevokedCountSerializer, description="How many were revoked."),
            **BEARER_FAILURES,
        },
    }


def _discovery_schema_class():
    """The project's schema class, with operation ids fit for the discovery URLs.

    The same view serves ``/auth/.well-known/...`` and, through
    ``well_known_urls``, the site root with and without the issuer's path:
    the derived ids would hold dots and collide.
    """

    class DiscoverySchema(api_settings.DEFAULT_SCHEMA_CLASS):
        def get_operation_id(self) -> str:
            operation_id = re.sub(r"[^A-Za-z0-9]+", "_", super().get_operation_id()).strip("_")
            if "{issuer_path}" in self.path:
                operation_id += "_by_issuer_path"
            return operation_id

        def get_override_parameters(self):
            parameters = super().get_override_parameters()
            if "{issuer_path}" in self.path:
                parameters = [*parameters, ISSUER_PATH]
            return parameters

    return DiscoverySchema


class _PublicExtension(OpenApiViewExtension):
    match_subclasses = True
    schema: dict = {}

    def view_replacement(self):
        @extend_schema(tags=[DISCOVERY_TAG], parameters=PUBLIC_HEADERS, **self.schema)
        class Documented(self.target):
            schema = _discovery_schema_class()()

        return Documented


class JWKSViewSchema(_PublicExtension):
    target_class = "token_lifecycle.oauth.discovery.JWKSView"
    schema = {
        "summary": "The public keys verifying access tokens (RFC 7517)",
        "description": "Any service can verify access tokens with these keys alone.",
        "responses": {200: JSONWebKeySetSerializer},
    }


class MetadataViewSchema(_PublicExtension):
    target_class = "token_lifecycle.oauth.discovery.MetadataView"
    schema = {
        "summary": "Authorization server metadata (RFC 8414)",
        "description": "The endpoints, grant types and client authentication methods.",
        "responses": {
            200: AuthorizationServerMetadataSerializer,
            404: OpenApiResponse(
                BearerErrorSerializer,
                description="At the site root: the path names another issuer than ours.",
            ),
        },
    }
