"""Client authentication (RFC 6749 §2.3), one small class per method.

Each method knows where its credentials are in a request and whether they
prove a client. An endpoint lists the methods it accepts in
``client_auth_methods`` (as DRF views list ``authentication_classes``), and the
RFC 8414 metadata advertises the names of those methods: a project that
subclasses a method, or drops one from an endpoint, changes what the metadata
says with it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import unquote_plus

from rest_framework.request import Request

from .. import cache, credentials
from ..models import Client
from .errors import InvalidClient, InvalidRequest

#: Compared against when the client does not exist, so that an unknown client
#: and a wrong secret take the same time.
_DUMMY_DIGEST = credentials.digest("no such client")

#: What a method found in a request: the client id and the secret, if any.
Credentials = tuple[str, str | None]


class ClientAuthMethod:
    """One way for a client to authenticate, named as in RFC 8414 / RFC 7591."""

    #: The ``token_endpoint_auth_method`` name.
    name: ClassVar[str]
    #: Body parameters this method reads: never passed on to the grant.
    parameters: ClassVar[tuple[str, ...]] = ()

    def find_credentials(self, request: Request, params: dict[str, str]) -> Credentials | None:
        """The credentials of this method in the request, or None if it does not use it.

        Raises :class:`InvalidClient` or :class:`InvalidRequest` for credentials
        of this method that are malformed.
        """
        raise NotImplementedError

    def authenticates(self, client: Client, secret: str | None) -> bool:
        """Whether ``secret`` proves ``client``: a public client has no secret to send."""
        if client.is_public:
            return not secret
        return client.check_secret(secret or "")


class ClientSecretBasic(ClientAuthMethod):
    """HTTP Basic, both parts form-urlencoded first (RFC 6749 §2.3.1)."""

    name = "client_secret_basic"

    def find_credentials(self, request: Request, params: dict[str, str]) -> Credentials | None:
        scheme, _, encoded = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            client_id, separator, secret = decoded.partition(":")
            if not separator:
                raise ValueError
            return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidClient("The Basic credentials are malformed.") from None


class ClientSecretPost(ClientAuthMethod):
    """``client_id`` and ``client_secret`` in the body (RFC 6749 §2.3.1)."""

    name = "client_secret_post"
    parameters = ("client_id", "client_secret")

    def find_credentials(self, request: Request, params: dict[str, str]) -> Credentials | None:
        if "client_secret" not in params:
            return None
        if "client_id" not in params:
            raise InvalidRequest("client_secret was sent without client_id.")
        return params["client_id"], params["client_secret"]


class ClientIdOnly(ClientAuthMethod):
    """A public client: ``client_id`` in the body and no secret (RFC 6749 §2.1)."""

    name = "none"
    parameters = ("client_id",)

    def find_credentials(self, request: Request, params: dict[str, str]) -> Credentials | None:
        if "client_id" not in params or "client_secret" in params:
            return None
        return params["client_id"], None

    def authenticates(self, client: Client, secret: str | None) -> bool:
        return client.is_public


#: What the OAuth endpoints accept, in the order the metadata lists them.
DEFAULT_METHODS: tuple[type[ClientAuthMethod], ...] = (
    ClientSecretBasic,
    ClientSecretPost,
    ClientIdOnly,
)


def authenticate_client(
    request: Request,
    params: dict[str, str],
    methods: Sequence[type[ClientAuthMethod]] = DEFAULT_METHODS,
) -> Client:
    """The client making the request, authenticated by exactly one of ``methods``.

    Consumes the methods' parameters from ``params``. Every failed
    authentication is the same 401 ``invalid_client``: the answer does not say
    whether the client exists.
    """
    found = [
        (method, presented)
        for method in (method_class() for method_class in methods)
        if (presented := method.find_credentials(request, params)) is not None
    ]
    for method in methods:
        for name in method.parameters:
            params.pop(name, None)
    if len(found) > 1:
        # A client_id alone only names the client: next to credentials of that same
        # client it is no second method (RFC 6749 §4.1.3 has clients send both).
        proven = {pair[0] for method, pair in found if not isinstance(method, ClientIdOnly)}
        found = [
            (method, presented)
            for method, presented in found
            if not (isinstance(method, ClientIdOnly) and presented[0] in proven)
        ]
    if len(found) > 1:
        raise InvalidRequest("Use one client authentication method, not both.")
    if not found:
        raise InvalidClient("Client authentication is required.")
    method, (client_id, secret) = found[0]

    client = cache.client_by_id(client_id)
    if client is None:
        credentials.matches(secret or "", _DUMMY_DIGEST)
        raise InvalidClient("Client authentication failed.")
    if not method.authenticates(client, secret) or not client.is_active:
        raise InvalidClient("Client authentication failed.")
    return client
