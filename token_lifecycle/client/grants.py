"""How a client logs in: the grant it uses to obtain a new pair (a new family).

A grant gives the parameters of a login request by a client (``login_params``).
It also says whether it *can* log in right now: client credentials always
can; a password grant only while it has a password (a string, or a callback
that may return ``None`` when no one is there to type it); a browser login
whenever a person can answer it. That is what lets
:class:`~token_lifecycle.client.TokenAuth` re-authenticate by itself when the
refresh token dies, and tell the caller when it cannot.
"""

from __future__ import annotations

import dataclasses
import sys
import webbrowser
from collections.abc import Callable
from typing import Any

from .authorization import (
    AuthorizationFailed,
    AuthorizationTimedOut,
    authorization_url,
    code_from_response,
    new_state,
)
from .discovery import ServerMetadata
from .loopback import DEFAULT_PATH, LoopbackListener, Params, page
from .pkce import Pkce


@dataclasses.dataclass(frozen=True)
class ClientCredentials:
    """``grant_type=client_credentials``: the client acts as its owner (server to server)."""

    scope: str | None = None

    @property
    def principal(self) -> str:
        """What distinguishes this principal's pair from others of the same client."""
        return f"client_credentials scope={self.scope or ''}"

    def login_params(self, client_id: str) -> dict[str, str] | None:
        return _with_scope({"grant_type": "client_credentials"}, self.scope)


@dataclasses.dataclass(frozen=True)
class PasswordGrant:
    """``grant_type=password`` for one user.

    ``password`` is a string, or a callable returning the password (or
    ``None`` when it cannot be had, e.g. no terminal to prompt): it is called
    at each login only, so a service need not keep the password in memory.
    The callable runs while the store's lock is held, so the other workers
    wait for its result instead of prompting too.
    """

    username: str
    password: str | Callable[[], str | None] | None = dataclasses.field(default=None, repr=False)
    scope: str | None = None

    @property
    def principal(self) -> str:
        return f"password user={self.username} scope={self.scope or ''}"

    def login_params(self, client_id: str) -> dict[str, str] | None:
        password = self.password() if callable(self.password) else self.password
        if password is None:
            return None
        params = {"grant_type": "password", "username": self.username, "password": password}
        return _with_scope(params, self.scope)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class LoopbackLogin:
    """``grant_type=authorization_code`` with PKCE, through the system browser (RFC 8252).

    How a native or command-line app logs a person in without ever seeing
    their password: at each login it listens on ``127.0.0.1`` on a free port
    (:mod:`.loopback`), opens the browser on the server's authorization page,
    where the person logs in and consents, takes the redirect back, checks
    its ``state`` and ``iss`` (:mod:`.authorization`) and returns the code
    with its PKCE verifier for the token request.

    ``authorization_endpoint`` and ``issuer`` usually come from the server's
    metadata: :meth:`from_metadata`. ``iss_required`` refuses a redirect
    without ``iss`` (the server advertises that it always sends one).
    ``opener`` is called with the authorization URL and returns whether a
    browser was opened (default :func:`webbrowser.open`; replace it in tests,
    or to show the URL differently). ``notify`` tells the person what to do
    (default: a line on stderr); it is given the URL to open by hand when the
    opener fails. ``timeout`` is how long the person has, in seconds.
    """

    authorization_endpoint: str
    issuer: str
    scope: str | None = None
    iss_required: bool = False
    timeout: float = 120.0
    opener: Callable[[str], bool] = dataclasses.field(
        default=webbrowser.open, repr=False, compare=False
    )
    notify: Callable[[str], None] = dataclasses.field(
        default=_to_stderr, repr=False, compare=False
    )
    redirect_path: str = DEFAULT_PATH

    @classmethod
    def from_metadata(cls, metadata: ServerMetadata, **options: Any) -> LoopbackLogin:
        """A login with the endpoint and issuer of ``metadata`` (:func:`~.discovery.discover`)."""
        if metadata.authorization_endpoint is None:
            raise ValueError(f"{metadata.issuer} has no authorization_endpoint")
        return cls(
            metadata.authorization_endpoint,
            metadata.issuer,
            iss_required=metadata.authorization_response_iss_parameter_supported,
            **options,
        )

    @property
    def principal(self) -> str:
        # Whoever logs in on this machine: the person is known only after the login.
        return f"authorization_code scope={self.scope or ''}"

    def login_params(self, client_id: str) -> dict[str, str]:
        """Run one browser login: the token request's parameters, or AuthorizationFailed."""
        pkce, state = Pkce.new(), new_state()

        def code_of(params: Params) -> str:
            return code_from_response(
                params, state=state, issuer=self.issuer, iss_required=self.iss_required
            )

        def page_for(params: Params) -> tuple[int, str]:
            try:
                code_of(params)
            except AuthorizationFailed as failure:
                return 400, page("Login failed", f"{failure.error}. Return to the application.")
            return 200, page("Logged in", "You may close this window.")

        with LoopbackListener(self.redirect_path, page_for=page_for) as listener:
            redirect_uri = listener.redirect_uri
            url = authorization_url(
                self.authorization_endpoint,
                client_id=client_id,
                redirect_uri=redirect_uri,
                state=state,
                pkce=pkce,
                scope=self.scope,
            )
            self._open(url)
            params = listener.wait(self.timeout)
        if params is None:
            raise AuthorizationTimedOut("timeout", f"No login came back within {self.timeout} s.")
        return {
            "grant_type": "authorization_code",
            "code": code_of(params),
            "redirect_uri": redirect_uri,
            "code_verifier": pkce.verifier,
        }

    def _open(self, url: str) -> None:
        try:
            opened = self.opener(url)
        except webbrowser.Error:
            opened = False
        if opened:
            self.notify(f"Continue in your browser (waiting up to {self.timeout:.0f} s).")
        else:
            self.notify(f"Open this URL in a browser to log in:\n\n    {url}\n")


Grant = ClientCredentials | PasswordGrant | LoopbackLogin


def _with_scope(params: dict[str, str], scope: str | None) -> dict[str, str]:
    if scope:
        params["scope"] = scope
    return params
