"""How a client logs in: the grant it uses to obtain a new pair (a new family).

A grant also says whether it *can* log in right now: client credentials always
can; a password grant only while it has a password (a string, or a callback
that may return ``None`` when no one is there to type it). That is what lets
:class:`~token_lifecycle.client.TokenAuth` re-authenticate by itself when the
refresh token dies, and tell the caller when it cannot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class ClientCredentials:
    """``grant_type=client_credentials``: the client acts as its owner (server to server)."""

    scope: str | None = None

    @property
    def principal(self) -> str:
        """What distinguishes this principal's pair from others of the same client."""
        return f"client_credentials scope={self.scope or ''}"

    def login_params(self) -> dict[str, str] | None:
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

    def login_params(self) -> dict[str, str] | None:
        password = self.password() if callable(self.password) else self.password
        if password is None:
            return None
        params = {"grant_type": "password", "username": self.username, "password": password}
        return _with_scope(params, self.scope)


Grant = ClientCredentials | PasswordGrant


def _with_scope(params: dict[str, str], scope: str | None) -> dict[str, str]:
    if scope:
        params["scope"] = scope
    return params
