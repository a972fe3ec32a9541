"""The token (RFC 6749), revocation (RFC 7009) and introspection (RFC 7662) endpoints.

They translate between HTTP and :mod:`token_lifecycle.services`, nothing more.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import authenticate
from rest_framework.request import Request
from rest_framework.response import Response

from .. import authorization_codes, clock, keys, services
from ..issuer import issuer_for
from ..models import Client, GrantType, TokenPair
from ..reasons import RefreshRefusal
from ..rules import RevokeReason, access_usable, live_refresh_end, refresh_usable
from . import refresh_cookie
from .endpoint import OAuthEndpoint
from .errors import InvalidGrant, UnauthorizedClient, UnsupportedGrantType
from .parsing import parse_body, required
from .throttling import PasswordFailureLimiter, TokenEndpointThrottle


def token_response(issued: services.IssuedPair, *, refresh_in_cookie: bool = False) -> dict:
    """The RFC 6749 §5.1 success body; without a refresh token when none was issued.

    With ``refresh_in_cookie`` (browser mode) the refresh token is left out too,
    being in the cookie, while ``refresh_expires_in`` stays: the page shows
    when its session ends from it.
    """
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }
    if issued.refresh_token is not None:
        if not refresh_in_cookie:
            body["refresh_token"] = issued.refresh_token
        body["refresh_expires_in"] = issued.refresh_expires_in
    if issued.pair.scope:
        body["scope"] = issued.pair.scope
    return body


class TokenView(OAuthEndpoint):
    """``POST /token/``: the RFC 6749 token endpoint for four grant types.

    Each grant is the method named in :attr:`grant_methods`, so a subclass can
    override one. Rate limits: see :mod:`.throttling`. Every grant's answer to a
    browser-mode client goes through :meth:`post`, which puts its refresh token
    in the cookie (:mod:`.refresh_cookie`); pages of its origins may call it
    (:mod:`.cors`).
    """

    throttle_classes = [TokenEndpointThrottle]
    cors_enabled = True
    #: Whether this request's refresh token came from the cookie (set by :meth:`refresh_token`).
    refreshed_from_cookie = False
    grant_methods = {
        GrantType.AUTHORIZATION_CODE: "authorization_code",
        GrantType.CLIENT_CREDENTIALS: "client_credentials",
        GrantType.PASSWORD: "password",
        GrantType.REFRESH_TOKEN: "refresh_token",
    }

    def post(self, request: Request) -> Response:
        params = parse_body(request)
        client = self.authenticate_client(request, params)
        grant_type = required(params, "grant_type")
        method = self.grant_methods.get(grant_type)
        if method is None:
            raise UnsupportedGrantType(f"The grant type {grant_type[:50]!r} is not supported.")
        if not client.allows_grant(grant_type):
            raise UnauthorizedClient(f"This client may not use the {grant_type} grant.")
        issued = getattr(self, method)(request, client, params)
        in_cookie = client.refresh_token_in_cookie
        response = Response(token_response(issued, refresh_in_cookie=in_cookie))
        if in_cookie:
            refresh_cookie.set_refresh_cookie(response, issued)
        return response

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if self.refreshed_from_cookie and refresh_cookie.clears_cookie(exc):
            refresh_cookie.clear_refresh_cookie(response)
        return response

    def authorization_code(
        self, request: Request, client: Client, params: dict[str, str]
    ) -> services.IssuedPair:
        return authorization_codes.redeem(
            client=client,
            code=required(params, "code"),
            redirect_uri=required(params, "redirect_uri"),
            code_verifier=required(params, "code_verifier"),
            issuer=issuer_for(request),
        )

    def client_credentials(
        self, request: Request, client: Client, params: dict[str, str]
    ) -> services.IssuedPair:
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
            # RFC 6749 §4.4.3: a refresh token SHOULD NOT be included; a per-client choice.
            refreshable=client.client_credentials_refresh,
        )

    def password(
        self, request: Request, client: Client, params: dict[str, str]
    ) -> services.IssuedPair:
        username = required(params, "username")
        password = required(params, "password")
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

    def refresh_token(
        self, request: Request, client: Client, params: dict[str, str]
    ) -> services.IssuedPair:
        token, self.refreshed_from_cookie = refresh_cookie.presented_refresh_token(
            request, client, params
        )
        if token.count(".") == 2:
            raise InvalidGrant(
                "An access token cannot be used as a refresh token.",
                reason=RefreshRefusal.INVALID,
            )
        return services.refresh_pair(
            client=client,
            refresh_token=token,
            issuer=issuer_for(request),
            scope=params.get("scope"),
        )


class RevocationView(OAuthEndpoint):
    """``POST /token/revoke/``: RFC 7009. Revokes the whole pair holding the token.

    The answer is 200 whether or not anything was revoked: an unknown token,
    another client's token and an already revoked one look the same, so the
    endpoint tells a caller nothing about tokens that are not its own.

    Revoking a pair of a browser-mode client clears its refresh cookie, and
    pages of the client's origins may call it (:mod:`.cors`).
    """

    cors_enabled = True

    def post(self, request: Request) -> Response:
        params = parse_body(request)
        client = self.authenticate_client(request, params)
        token = required(params, "token")
        pair, _ = services.pair_for_token(token, issuer=issuer_for(request), accept_expired=True)
        response = Response(status=200)
        if pair is not None and pair.client_id == client.pk:
            services.revoke_pair(pair, RevokeReason.REVOCATION_ENDPOINT)
            if client.refresh_token_in_cookie:
                refresh_cookie.clear_refresh_cookie(response)
        return response


class IntrospectionView(OAuthEndpoint):
    """``POST /token/introspect/``: RFC 7662.

    A client sees its own tokens; one with ``can_introspect`` (a resource
    server) sees every client's. Anything else is ``{"active": false}``.
    """

    def post(self, request: Request) -> Response:
        params = parse_body(request)
        client = self.authenticate_client(request, params)
        token = required(params, "token")
        issuer = issuer_for(request)
        pair, kind = services.pair_for_token(token, issuer=issuer)
        if pair is None or not (client.can_introspect or pair.client_id == client.pk):
            return Response({"active": False})
        return Response(introspection(pair, kind, issuer=issuer, now=clock.now()))


def introspection(pair: TokenPair, kind: str, *, issuer: str, now: datetime) -> dict:
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
    body["aud"] = keys.audience_for(issuer)  # what the access tokens carry
    return body
