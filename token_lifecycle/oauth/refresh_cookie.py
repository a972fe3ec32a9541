"""Browser mode's refresh cookie: set with every token, read on a refresh, cleared with its pair.

A client with ``refresh_token_in_cookie`` gets its refresh token in a cookie
named ``REFRESH_COOKIE_NAME`` instead of the JSON body, so that no script of
the page (nor a cross-site-scripting bug in it) can read it:

- ``HttpOnly``: invisible to ``document.cookie``;
- ``Secure``: sent over HTTPS only (Chromium counts ``http://localhost`` and
  ``http://127.0.0.1`` as secure, so local development needs no exception);
- ``SameSite=Strict``: never sent with a request another site starts;
- ``Path`` = the token endpoint: sent to it (and to ``revoke/`` and
  ``introspect/`` below it), to no other URL of the site;
- ``Max-Age`` (and ``Expires``) = the refresh token's remaining life.

A refresh that omits ``refresh_token`` uses the cookie, and then must come from
one of the client's registered origins (:func:`presented_refresh_token`).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse
from django.utils.http import http_date
from django.views.debug import get_exception_reporter_filter

from .. import services
from ..conf import lifecycle_settings
from ..models import Client
from ..reasons import RefreshRefusal
from . import cors
from .errors import InvalidRequest, OAuthError
from .parsing import MAX_VALUE_LENGTH, required

#: Refusals after which the cookie's pair can never refresh again: the cookie is
#: cleared with them. Not ``invalid`` (the cookie may be another client's, on
#: the same API host) nor ``user_inactive`` (the user may be reactivated).
CLEARED_ON = frozenset(
    {
        RefreshRefusal.REVOKED,
        RefreshRefusal.EXPIRED,
        RefreshRefusal.SESSION_ENDED,
        RefreshRefusal.REUSE_DETECTED,
    }
)


def cookie_name() -> str:
    return lifecycle_settings().refresh_cookie_name


def cookie_path() -> str:
    """The token endpoint's path, where the project mounted the app (``/auth/token/``)."""
    return reverse("token_lifecycle:token")


def set_refresh_cookie(response: HttpResponseBase, issued: services.IssuedPair) -> None:
    """Put the refresh token of ``issued`` in the cookie, for its remaining life.

    Nothing when none was issued (``client_credentials`` without refresh).
    """
    if issued.refresh_token is None:
        return
    _set(
        response,
        issued.refresh_token,
        max_age=issued.refresh_expires_in,
        # From the app's clock, as Max-Age is: not from the process's time.time().
        expires=http_date(issued.pair.refresh_expires_at.timestamp()),
    )


def clear_refresh_cookie(response: HttpResponseBase) -> None:
    """Tell the browser to drop the cookie: same name, path and flags, already expired.

    Django's ``delete_cookie`` would leave out ``Secure``, and a browser ignores
    a cookie without it that would replace a ``Secure`` one over plain HTTP.
    """
    _set(response, "", max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT")


def _set(response: HttpResponseBase, value: str, *, max_age: int, expires: str) -> None:
    response.set_cookie(
        cookie_name(),
        value,
        max_age=max_age,
        expires=expires,
        path=cookie_path(),
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def presented_refresh_token(
    request: HttpRequest, client: Client, params: dict[str, str]
) -> tuple[str, bool]:
    """The refresh token a refresh request presents, and whether it came from the cookie.

    The ``refresh_token`` parameter as usual; for a browser-mode client, the
    cookie when the parameter is absent. A request carrying both is refused:
    which one the caller meant is not ours to guess. A client not in browser
    mode never has its refresh token read from a cookie: a cookie it sends is
    ignored (it may be another client's).

    A cookie is used only for a request whose ``Origin`` is one of the client's
    registered origins: what a page of another site could make a browser send
    (SameSite aside) is refused with ``invalid_request``, before any lookup.
    """
    if not client.refresh_token_in_cookie:
        return required(params, "refresh_token"), False
    parameter = params.get("refresh_token")
    cookie = request.COOKIES.get(cookie_name())
    if parameter is not None:
        if cookie:
            raise InvalidRequest(
                "Send the refresh token either in the refresh cookie or as the "
                "'refresh_token' parameter, not both."
            )
        return parameter, False
    if not cookie:
        raise InvalidRequest("The 'refresh_token' parameter (or the refresh cookie) is required.")
    if not cors.client_allows(client, request.headers.get("Origin")):
        raise InvalidRequest(
            "A refresh from the cookie must carry an Origin header naming one of the "
            "client's allowed origins."
        )
    if len(cookie) > MAX_VALUE_LENGTH:
        raise InvalidRequest("The refresh cookie is too long.")
    return cookie, True


def clears_cookie(error: Exception) -> bool:
    """Whether a refused refresh from the cookie should clear it (see :data:`CLEARED_ON`)."""
    return isinstance(error, OAuthError) and error.reason in CLEARED_ON


class _ReportFilterHidingTheCookie:
    """The request's error-report filter, with the refresh cookie's value hidden too.

    Django's reports list a request's cookies and hide only those whose names
    look secret (``tl_refresh`` does not), so a crash would mail the token.
    Everything else is the project's own filter (``DEFAULT_EXCEPTION_REPORTER_FILTER``).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_safe_cookies(self, request: HttpRequest) -> dict:
        cookies = dict(self.inner.get_safe_cookies(request))
        if cookie_name() in cookies:
            cookies[cookie_name()] = self.inner.cleansed_substitute
        return cookies


def hide_from_error_reports(request: HttpRequest) -> None:
    """Keep the refresh cookie of ``request`` out of Django's error reports (email, DEBUG page)."""
    request.exception_reporter_filter = _ReportFilterHidingTheCookie(
        get_exception_reporter_filter(request)
    )
