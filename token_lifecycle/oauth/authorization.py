"""``GET/POST /authorize/``: the authorization endpoint (RFC 6749 §4.1.1, RFC 7636, RFC 9207).

Checked in this order, so that nothing is ever sent to an address the client
did not register (RFC 6749 §4.1.2.1):

1. ``client_id`` (an active client) and ``redirect_uri`` (registered for it,
   :mod:`token_lifecycle.redirect_uris`), each present once. Failing either
   renders a 400 page and redirects nowhere.
2. Everything else. A failure redirects to the redirect URI with ``error``,
   ``error_description``, ``state`` (when it was valid) and ``iss``.
3. The user: a visitor is sent to ``LOGIN_URL`` with ``next``; a logged-in
   user approves on the consent page (a POST with CSRF protection) unless the
   client has ``skip_consent``. Approval redirects with ``code``, ``state``
   and ``iss``; refusal with ``error=access_denied``.

Consent is asked on every authorization and never remembered. Every answer
carries ``no-store`` and forbids framing (``X-Frame-Options: DENY``, CSP
``frame-ancestors 'none'``): the consent page is a click-jacking target.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.encoding import iri_to_uri
from django.views import View
from django.views.decorators.csrf import csrf_protect

from .. import authorization_codes, pkce
from ..issuer import issuer_for
from ..models import Client, GrantType
from ..scopes import grant_scope
from .errors import InvalidScope
from .parsing import MAX_VALUE_LENGTH

#: Longest ``state`` echoed (characters). A longer one is refused with
#: ``invalid_request`` and not echoed: the redirect stays a bounded URL.
MAX_STATE_LENGTH = 1024
#: RFC 6749 Appendix A.5: ``state = 1*VSCHAR``.
_VSCHAR = re.compile(r"[\x20-\x7e]+\Z")
_NOT_ERROR_TEXT = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
#: The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
REQUEST_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
ALLOW, DENY = "allow", "deny"


class UntrustedRequest(Exception):
    """The client or its redirect URI cannot be trusted: a 400 page, never a redirect."""


class AuthorizationError(Exception):
    """An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclasses.dataclass(frozen=True)
class AuthorizationRequest:
    """A request whose every parameter has been checked."""

    client: Client
    redirect_uri: str
    #: None when absent (PKCE protects the flow; the client decides whether to send one).
    state: str | None
    #: The granted scope (:func:`..scopes.grant_scope`), space-separated.
    scope: str
    code_challenge: str

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    def parameters(self) -> dict[str, str]:
        """The request as parameters: the consent form's hidden fields, the login's ``next``."""
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "code_challenge": self.code_challenge,
            "code_challenge_method": pkce.S256,
        }
        if self.state is not None:
            params["state"] = self.state
        return {name: value for name, value in params.items() if value}


def trusted_target(params: QueryDict) -> tuple[Client, str]:
    """The client and redirect URI, or :class:`UntrustedRequest`."""
    try:
        client_id = _single(params, "client_id")
        redirect_uri = _single(params, "redirect_uri")
    except AuthorizationError as error:
        raise UntrustedRequest(error.description) from None
    if client_id is None:
        raise UntrustedRequest("The request does not name a client (client_id).")
    client = Client.objects.filter(client_id=client_id, is_active=True).first()
    if client is None:
        raise UntrustedRequest("No active application is registered under this client_id.")
    if redirect_uri is None:
        raise UntrustedRequest("The request does not say where to return to (redirect_uri).")
    if not client.redirect_uri_matches(redirect_uri):
        raise UntrustedRequest("The redirect_uri is not registered for this application.")
    return client, redirect_uri


def valid_state(params: QueryDict) -> str | None:
    """``state`` if present and echoable; raises :class:`AuthorizationError` (echoing none)."""
    values = params.getlist("state")
    if len(values) > 1:
        raise AuthorizationError("invalid_request", "The 'state' parameter is repeated.")
    state = values[0] if values else ""
    if not state:
        return None
    if len(state) > MAX_STATE_LENGTH:
        raise AuthorizationError(
            "invalid_request", f"The state is longer than {MAX_STATE_LENGTH} characters."
        )
    if not _VSCHAR.match(state):
        raise AuthorizationError(
            "invalid_request", "The state must be printable ASCII (RFC 6749 Appendix A.5)."
        )
    return state


def checked_request(
    params: QueryDict, client: Client, redirect_uri: str, state: str | None
) -> AuthorizationRequest:
    """The rest of the request (step 2), or :class:`AuthorizationError`."""
    repeated = sorted(name for name in params if len(params.getlist(name)) > 1)
    if repeated:
        # Only our own parameter names are echoed; another name is arbitrary input.
        name = repeated[0]
        known = name in REQUEST_PARAMETERS
        message = f"The {name!r} parameter is repeated." if known else "A parameter is repeated."
        raise AuthorizationError("invalid_request", message)
    response_type = _single(params, "response_type")
    if response_type is None:
        raise AuthorizationError("invalid_request", "The 'response_type' parameter is required.")
    if response_type != "code":
        raise AuthorizationError(
            "unsupported_response_type", "Only response_type=code is supported."
        )
    if not client.allows_grant(GrantType.AUTHORIZATION_CODE):
        raise AuthorizationError(
            "unauthorized_client", "This client may not use the authorization_code grant."
        )
    challenge = _single(params, "code_challenge")
    method = _single(params, "code_challenge_method")
    if challenge is None:
        raise AuthorizationError(
            "invalid_request", "PKCE is required: send code_challenge (RFC 7636)."
        )
    if method != pkce.S256:
        raise AuthorizationError("invalid_request", "The code_challenge_method must be S256.")
    problem = pkce.challenge_problem(challenge)
    if problem is not None:
        raise AuthorizationError("invalid_request", problem)
    try:
        scope = grant_scope(_single(params, "scope"), client.allowed_scopes)
    except InvalidScope as error:
        raise AuthorizationError("invalid_scope", error.description) from None
    return AuthorizationRequest(client, redirect_uri, state, scope, challenge)


def _single(params: QueryDict, name: str) -> str | None:
    """A parameter given at most once; empty counts as absent (RFC 6749 §3.1)."""
    values = params.getlist(name)
    if len(values) > 1:
        raise AuthorizationError("invalid_request", f"The {name!r} parameter is repeated.")
    value = values[0] if values else ""
    if len(value) > MAX_VALUE_LENGTH or not value.isprintable():
        raise AuthorizationError(
            "invalid_request", f"The {name!r} parameter is too long or has control characters."
        )
    return value or None


def _error_text(text: str) -> str:
    """RFC 6749 §4.1.2.1: ``error_description`` is printable ASCII without ``"`` and ``\\``."""
    return _NOT_ERROR_TEXT.sub("", text.replace("§", "section "))


def with_parameters(uri: str, params: dict[str, str]) -> str:
    """``uri`` with ``params`` added to its query, which is kept as is (RFC 6749 §3.1.2)."""
    if "?" not in uri:
        return f"{uri}?{urlencode(params)}"
    # "https://app/cb?" or "...?a=1&" already end where the next parameter starts.
    separator = "" if uri.endswith(("?", "&")) else "&"
    return uri + separator + urlencode(params)


def client_redirect(url: str) -> HttpResponse:
    """A 302 to a registered redirect URI, whatever its scheme (private-use schemes included).

    Not ``HttpResponseRedirect``, which allows http, https and ftp only: the
    URI here was checked against the client's registration, which is what
    makes it safe.
    """
    response = HttpResponse(status=302)
    response["Location"] = iri_to_uri(url)
    return response


@method_decorator(csrf_protect, name="dispatch")
class AuthorizationView(View):
    """The authorization endpoint. Override the templates or ``content_security_policy``."""

    http_method_names = ["get", "post", "head", "options"]
    template_name = "token_lifecycle/authorize.html"
    error_template_name = "token_lifecycle/authorize_error.html"
    #: The consent page's styles are inline; a project template loading its own
    #: stylesheet widens ``style-src`` here.
    content_security_policy = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    )

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.authorize(request, request.GET, decision=None)

    def post(self, request: HttpRequest) -> HttpResponse:
        return self.authorize(request, request.POST, decision=request.POST.get("decision", ""))

    def authorize(
        self, request: HttpRequest, params: QueryDict, *, decision: str | None
    ) -> HttpResponse:
        """Check the request, then log in, consent (GET) or the decision (POST), then redirect."""
        try:
            client, redirect_uri = trusted_target(params)
        except UntrustedRequest as error:
            page = render(request, self.error_template_name, {"message": str(error)}, status=400)
            return self.protect(page)
        issuer = issuer_for(request)
        state = None
        try:
            state = valid_state(params)
            authorization = checked_request(params, client, redirect_uri, state)
            if not request.user.is_authenticated:
                return self.protect(self.login(request, authorization))
            if decision == DENY:
                raise AuthorizationError("access_denied", "The user did not allow the access.")
            if client.skip_consent or decision == ALLOW:
                return self.protect(self.grant(request, authorization, issuer))
            if decision is None:
                return self.protect(self.consent_page(request, authorization))
            raise AuthorizationError("invalid_request", "The decision must be allow or deny.")
        except AuthorizationError as error:
            answer = {"error": error.error, "error_description": _error_text(error.description)}
            return self.protect(self.back_to_client(redirect_uri, answer, state, issuer))

    def login(self, request: HttpRequest, authorization: AuthorizationRequest) -> HttpResponse:
        """Django's login page, returning to this same request (a GET) afterwards."""
        here = reverse("token_lifecycle:authorize") + "?" + urlencode(authorization.parameters())
        return redirect_to_login(here)

    def consent_page(
        self, request: HttpRequest, authorization: AuthorizationRequest
    ) -> HttpResponse:
        context = {
            "client": authorization.client,
            "user": request.user,
            "scopes": authorization.scopes,
            "parameters": authorization.parameters(),
            "action": reverse("token_lifecycle:authorize"),
            "allow": ALLOW,
            "deny": DENY,
        }
        return render(request, self.template_name, context)

    def grant(
        self, request: HttpRequest, authorization: AuthorizationRequest, issuer: str
    ) -> HttpResponse:
        code = authorization_codes.issue(
            client=authorization.client,
            user=request.user,
            redirect_uri=authorization.redirect_uri,
            scope=authorization.scope,
            code_challenge=authorization.code_challenge,
        )
        return self.back_to_client(
            authorization.redirect_uri, {"code": code}, authorization.state, issuer
        )

    def back_to_client(
        self, redirect_uri: str, answer: dict[str, str], state: str | None, issuer: str
    ) -> HttpResponse:
        """The redirect to the client: ``answer``, then ``state`` and ``iss`` (RFC 9207)."""
        params = dict(answer)
        if state is not None:
            params["state"] = state
        params["iss"] = issuer
        return client_redirect(with_parameters(redirect_uri, params))

    def protect(self, response: HttpResponse) -> HttpResponse:
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        response["X-Frame-Options"] = "DENY"
        response["Content-Security-Policy"] = self.content_security_policy
        # The authorization request's URL (state, challenge) never leaves this origin in
        # a Referer. Not "no-referrer": browsers then send "Origin: null" with the
        # consent form's POST, and Django's CSRF check refuses it.
        response["Referrer-Policy"] = "same-origin"
        return response
