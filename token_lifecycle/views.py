"""HTTP endpoints. They translate between HTTP and :mod:`.services`, nothing more."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.contrib.auth import authenticate
from django.db import InterfaceError, OperationalError
from django.http import Http404
from django.urls import reverse
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from . import clock, keys, services
from .authentication import BearerTokenAuthentication, ServiceUnavailable
from .conf import lifecycle_settings
from .endpoints import OAuthEndpoint, authenticate_client, parse_body
from .errors import InvalidGrant, InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from .models import Client, GrantType, SigningKey, TokenPair
from .rules import RevokeReason, access_usable, live_refresh_end, refresh_usable
from .throttling import PasswordFailureLimiter, TokenEndpointThrottle
from .tokens import issuer_for

logger = logging.getLogger(__name__)


def token_response(issued: services.IssuedPair) -> dict:
    """The RFC 6749 §5.1 success body."""
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "refresh_expires_in": issued.refresh_expires_in,
    }
    if issued.pair.scope:
        body["scope"] = issued.pair.scope
    return body


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise InvalidRequest(f"The {name!r} parameter is required.")
    return value


class TokenView(OAuthEndpoint):
    """``POST /token/``: the RFC 6749 token endpoint for three grant types.

    Rate limits: see :mod:`.throttling`.
    """

    throttle_classes = [TokenEndpointThrottle]

    def post(self, request) -> Response:
        params = parse_body(request)
        client = authenticate_client(request, params)
        grant_type = _required(params, "grant_type")
        grant = self.grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantType(f"The grant type {grant_type[:50]!r} is not supported.")
        if not client.allows_grant(grant_type):
            raise UnauthorizedClient(f"This client may not use the {grant_type} grant.")
        issued = grant(self, request, client, params)
        return Response(token_response(issued))

    def client_credentials(self, request, client: Client, params) -> services.IssuedPair:
        if client.is_public:
            raise UnauthorizedClient("A public client cannot use the client_credentials grant.")
        if not client.owner.is_active:
            raise UnauthorizedClient("The client's owner account is inactive.")
        return services.issue_pair(
            client=client,
            user=client.owner,
            issuer=issuer_for(request),
            grant_type=GrantType.CLIENT_CREDENTIALS,
            scope=params.get("scope"),
        )

    def password(self, request, client: Client, params) -> services.IssuedPair:
        username = _required(params, "username")
        password = _required(params, "password")
        limiter = PasswordFailureLimiter(request, username)
        limiter.check()
        user = authenticate(request._request, username=username, password=password)
        if user is None:
            limiter.failed()
            raise InvalidGrant("Invalid username or password.")
        limiter.succeeded()
        return services.issue_pair(
            client=client,
            user=user,
            issuer=issuer_for(request),
            grant_type=GrantType.PASSWORD,
            scope=params.get("scope"),
        )

    def refresh_token(self, request, client: Client, params) -> services.IssuedPair:
        token = _required(params, "refresh_token")
        if token.count(".") == 2:
            raise InvalidGrant("An access token cannot be used as a refresh token.")
        return services.refresh_pair(
            client=client,
            refresh_token=token,
            issuer=issuer_for(request),
            scope=params.get("scope"),
        )

    grants = {
        GrantType.CLIENT_CREDENTIALS: client_credentials,
        GrantType.PASSWORD: password,
        GrantType.REFRESH_TOKEN: refresh_token,
    }


class RevocationView(OAuthEndpoint):
    """``POST /token/revoke/``: RFC 7009. Revokes the whole pair holding the token.

    The answer is 200 whether or not anything was revoked: an unknown token,
    another client's token and an already revoked one look the same, so the
    endpoint tells a caller nothing about tokens that are not its own.
    """

    def post(self, request) -> Response:
        params = parse_body(request)
        client = authenticate_client(request, params)
        token = _required(params, "token")
        pair, _ = services.pair_for_token(token, issuer=issuer_for(request), accept_expired=True)
        if pair is not None and pair.client_id == client.pk:
            services.revoke_pair(pair, RevokeReason.REVOCATION_ENDPOINT)
        return Response(status=200)


class IntrospectionView(OAuthEndpoint):
    """``POST /token/introspect/``: RFC 7662.

    A client sees its own tokens; one with ``can_introspect`` (a resource
    server) sees every client's. Anything else is ``{"active": false}``.
    """

    def post(self, request) -> Response:
        params = parse_body(request)
        client = authenticate_client(request, params)
        token = _required(params, "token")
        issuer = issuer_for(request)
        pair, kind = services.pair_for_token(token, issuer=issuer)
        if pair is None or not (client.can_introspect or pair.client_id == client.pk):
            return Response({"active": False})
        return Response(introspection(pair, kind, issuer=issuer, now=services.clock()))


def introspection(pair: TokenPair, kind: str, *, issuer: str, now) -> dict:
    """The RFC 7662 answer for one token of a pair."""
    if kind == services.ACCESS_TOKEN:
        usable, expires_at = access_usable(pair, now), pair.access_expires_at
    else:
        usable, expires_at = refresh_usable(pair, now), live_refresh_end(pair)
    if not (usable and pair.client.is_active and pair.user.is_active):
        return {"active": False}
    body = {
        "active": True,
        "token_use": kind,
        "client_id": pair.client.client_id,
        "username": pair.user.get_username(),
        "sub": str(pair.user_id),
        "iss": issuer,
        "jti": str(pair.pk),
        "iat": int(pair.issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    if kind == services.ACCESS_TOKEN:
        body["token_type"] = "Bearer"
    if pair.scope:
        body["scope"] = pair.scope
    audience = lifecycle_settings().audience
    if audience:
        body["aud"] = audience
    return body


class JWKSView(APIView):
    """``GET /.well-known/jwks.json``: the public keys that verify access tokens (RFC 7517)."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]

    def get(self, request) -> Response:
        keys.signing_key()  # a fresh install publishes its first key, not an empty set
        now = clock.now()
        published = SigningKey.objects.published(now).values_list("public_jwk", flat=True)
        response = Response({"keys": list(published)})
        max_age = int(lifecycle_settings().jwks_max_age.total_seconds())
        response["Cache-Control"] = f"public, max-age={max_age}"
        return response


class MetadataView(APIView):
    """``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]

    def get(self, request, issuer_path: str | None = None) -> Response:
        issuer = issuer_for(request)
        if issuer_path is not None and issuer_path.strip("/") != urlsplit(issuer).path.strip("/"):
            raise Http404("No authorization server with that issuer here.")

        def url(name: str) -> str:
            return request.build_absolute_uri(reverse(f"token_lifecycle:{name}"))

        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        algorithms = sorted(
            set(SigningKey.objects.published(clock.now()).values_list("algorithm", flat=True))
            | {lifecycle_settings().signing_algorithm}
        )
        response = Response(
            {
                "issuer": issuer,
                "token_endpoint": url("token"),
                "revocation_endpoint": url("revoke"),
                "introspection_endpoint": url("introspect"),
                "jwks_uri": url("jwks"),
                "grant_types_supported": [grant.value for grant in GrantType],
                "token_endpoint_auth_methods_supported": auth_methods,
                "revocation_endpoint_auth_methods_supported": auth_methods,
                "introspection_endpoint_auth_methods_supported": auth_methods,
                # Not registered by RFC 8414; says how access tokens (RFC 9068) are signed.
                "access_token_signing_alg_values_supported": algorithms,
            }
        )
        response["Cache-Control"] = "public, max-age=3600"
        return response


class SessionView(APIView):
    """Base of the endpoints a bearer token uses about its own sessions."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, (OperationalError, InterfaceError)):
            logger.warning("Database unavailable; answering 503.", exc_info=exc)
            exc = ServiceUnavailable()
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


def _iso(instant) -> str | None:
    return instant.isoformat().replace("+00:00", "Z") if instant else None


class PairsView(SessionView):
    """``GET /pairs/``: the caller's live pairs (its client, its user), newest first.

    ``current`` marks the newest; ``presented`` the pair whose access token
    made this request (not always the current one: a server may still use a
    superseded pair inside its window).
    """

    def get(self, request) -> Response:
        pairs = services.principal_pairs(request.auth.client, request.user)
        return Response(
            [
                {
                    "id": str(pair.pk),
                    "current": index == 0,
                    "presented": pair.pk == request.auth.pair_id,
                    "issued_at": _iso(pair.issued_at),
                    "access_expires_at": _iso(pair.access_expires_at),
                    "refresh_expires_at": _iso(pair.refresh_expires_at),
                    "refresh_grace_ends_at": _iso(pair.refresh_grace_ends_at),
                    "scope": pair.scope,
                }
                for index, pair in enumerate(pairs)
            ]
        )


class LogoutView(SessionView):
    """``POST /logout/``: revokes the pair of the presented access token."""

    def post(self, request) -> Response:
        revoked = services.revoke_pair_by_id(request.auth.pair_id, RevokeReason.LOGOUT)
        return Response({"revoked": len(revoked)})


class LogoutAllView(SessionView):
    """``POST /logout-all/``: revokes every live pair of the caller's user, on every client."""

    def post(self, request) -> Response:
        revoked = services.revoke_user_pairs(request.user, RevokeReason.LOGOUT_ALL)
        return Response({"revoked": len(revoked)})
