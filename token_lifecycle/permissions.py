"""``HasScope``: a DRF permission requiring scopes of the access token (RFC 6750 §3.1).

A view names the scopes it needs, every one of them required::

    class Reports(APIView):
        permission_classes = [HasScope]
        required_scopes = ["reports:read"]

or, without the attribute, ``permission_classes = [HasScope.of("reports:read")]``.

The scopes are those of ``request.auth``: the ``scopes`` of the access token
on the authorization server (:class:`token_lifecycle.authentication.AccessToken`)
or the ``scope`` claim of the verified claims on a resource server
(:class:`token_lifecycle.remote.RemoteTokenAuthentication`). A request without
credentials is 401 as usual; one whose token lacks a scope is 403 with
``WWW-Authenticate: Bearer error="insufficient_scope", scope="..."``. This
module imports no model, so resource servers can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .rfc6750 import challenge


class InsufficientScope(PermissionDenied):
    """403 with the RFC 6750 §3.1 challenge naming the scopes the resource needs."""

    default_detail = "The access token does not grant the scope this resource needs."
    default_code = "insufficient_scope"

    def __init__(self, scopes: Iterable[str]) -> None:
        super().__init__()
        needed = " ".join(sorted(scopes))
        # DRF's exception handler sends auth_header as WWW-Authenticate.
        self.auth_header = challenge("insufficient_scope", str(self.detail), needed)


class HasScope(BasePermission):
    """Allows a request whose access token holds every scope the view requires."""

    #: Scopes required whatever the view says (set by :meth:`of`).
    scopes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *scopes: str) -> type[HasScope]:
        """A class requiring ``scopes``: ``permission_classes = [HasScope.of("read")]``."""
        return type(f"HasScope[{' '.join(scopes)}]", (cls,), {"scopes": frozenset(scopes)})

    def required(self, view: Any) -> frozenset[str]:
        return self.scopes | frozenset(getattr(view, "required_scopes", ()))

    def has_permission(self, request: Request, view: Any) -> bool:
        required = self.required(view)
        if not required:
            # A view without scopes behind HasScope is a mistake: refuse rather than allow.
            raise PermissionDenied("This resource names no required scope.")
        if not getattr(request.user, "is_authenticated", False):
            return False  # no credentials: DRF answers 401 with the authentication's challenge
        if not required <= token_scopes(request.auth):
            raise InsufficientScope(required)
        return True


def token_scopes(auth: Any) -> frozenset[str]:
    """The scopes of ``request.auth``: an object with ``scopes``, or claims with ``scope``.

    Anything else (a session, no token at all) holds no scope.
    """
    scopes = getattr(auth, "scopes", None)
    if scopes is not None:
        return frozenset(scopes)
    if isinstance(auth, Mapping) and isinstance(auth.get("scope"), str):
        return frozenset(auth["scope"].split())
    return frozenset()
