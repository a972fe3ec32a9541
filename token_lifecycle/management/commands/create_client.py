"""``manage.py create_client NAME --owner USERNAME [--grant G]... [--public]
[--redirect-uri URI]... [--skip-consent] [--refresh-token-in-cookie]
[--allowed-origin ORIGIN]... [--no-refresh-token] [--scope S]... [--can-introspect]
[--access-token-lifetime D] [--refresh-token-lifetime D] [--refresh-grace-period D]
[--max-pairs N] [--json]``."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from token_lifecycle.conf import parse_duration
from token_lifecycle.models import CONFIGURABLE_GRANTS, Client, GrantType
from token_lifecycle.oauth.errors import InvalidScope
from token_lifecycle.scopes import grant_scope

#: The model field each option sets, to name the option in a validation error.
_OPTIONS = {
    "grant_types": "--grant",
    "redirect_uris": "--redirect-uri",
    "allowed_origins": "--allowed-origin",
    "scope": "--scope",
    "access_token_lifetime": "--access-token-lifetime",
    "refresh_token_lifetime": "--refresh-token-lifetime",
    "refresh_grace_period": "--refresh-grace-period",
    "max_pairs_per_client": "--max-pairs",
}

_NO_OWNER = (
    "Every client has an owner, the user its client_credentials pairs act as. Name an "
    "existing user with --owner USERNAME, or create one first with "
    "`python manage.py createsuperuser` (or in the admin)."
)


def _duration(text: str) -> timedelta:
    """The duration syntax of ``TOKEN_LIFECYCLE_*`` variables (``conf.from_env``)."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} {error}") from None


class Command(BaseCommand):
    help = (
        "Create an API client and print its credentials. The secret is shown only "
        "now: it is stored as a hash."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--owner",
            help="Username of the owner (required); client_credentials pairs act as this user.",
        )
        parser.add_argument(
            "--grant",
            action="append",
            choices=[grant.value for grant in CONFIGURABLE_GRANTS],
            dest="grants",
            help="Allowed grant (repeatable). Default: authorization_code with --redirect-uri, "
            "else client_credentials, or password for a public client. refresh_token is "
            "always allowed.",
        )
        parser.add_argument(
            "--public",
            action="store_true",
            help="A public client (mobile app, SPA): no secret, authenticates with client_id.",
        )
        parser.add_argument(
            "--redirect-uri",
            action="append",
            dest="redirect_uris",
            metavar="URI",
            help="A redirect URI of the authorization_code grant (repeatable): https, "
            "loopback http (any port matches), or a private-use scheme.",
        )
        parser.add_argument(
            "--skip-consent",
            action="store_true",
            help="A first-party app: users who log in are not asked to approve it.",
        )
        parser.add_argument(
            "--refresh-token-in-cookie",
            action="store_true",
            help="Browser mode: the refresh token goes in an HttpOnly cookie, not the body.",
        )
        parser.add_argument(
            "--allowed-origin",
            action="append",
            dest="allowed_origins",
            metavar="ORIGIN",
            help="A browser origin, scheme://host[:port], that may refresh from the cookie "
            "(repeatable).",
        )
        parser.add_argument(
            "--no-refresh-token",
            action="store_false",
            dest="client_credentials_refresh",
            help="client_credentials answers carry no refresh token (RFC 6749 §4.4.3): the "
            "client logs in again when its access token expires. Default: they carry one.",
        )
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help='Scopes the client may request (repeatable, or space-separated: "read write"). '
            "Default: none.",
        )
        parser.add_argument(
            "--can-introspect",
            action="store_true",
            help="A resource server: may introspect tokens issued to any client (RFC 7662).",
        )
        for option, what in (
            ("--access-token-lifetime", "ACCESS_TOKEN_LIFETIME"),
            ("--refresh-token-lifetime", "REFRESH_TOKEN_LIFETIME"),
            ("--refresh-grace-period", "REFRESH_GRACE_PERIOD"),
        ):
            parser.add_argument(
                option,
                type=_duration,
                metavar="DURATION",
                help=f"This client's {what} instead of the setting's, e.g. 15m, 6h, 30d, 1h30m.",
            )
        parser.add_argument(
            "--max-pairs",
            type=int,
            metavar="N",
            help="This client's MAX_PAIRS_PER_CLIENT (1 or more) instead of the setting's.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help='Print only {"client_id": ..., "client_secret": ...}.',
        )

    def handle(
        self,
        *args,
        name: str,
        owner: str | None,
        grants,
        public: bool,
        redirect_uris: list[str] | None,
        skip_consent: bool,
        refresh_token_in_cookie: bool,
        allowed_origins: list[str] | None,
        client_credentials_refresh: bool,
        scopes: list[str] | None,
        can_introspect: bool,
        access_token_lifetime: timedelta | None,
        refresh_token_lifetime: timedelta | None,
        refresh_grace_period: timedelta | None,
        max_pairs: int | None,
        as_json: bool,
        **opts,
    ):
        owner_user = self._owner(owner)
        if redirect_uris:
            default = GrantType.AUTHORIZATION_CODE
        else:
            default = GrantType.PASSWORD if public else GrantType.CLIENT_CREDENTIALS
        client = Client(
            name=name,
            owner=owner_user,
            is_public=public,
            grant_types=" ".join(dict.fromkeys(grants or [default])),
            redirect_uris="\n".join(dict.fromkeys(redirect_uris or [])),
            skip_consent=skip_consent,
            refresh_token_in_cookie=refresh_token_in_cookie,
            allowed_origins="\n".join(dict.fromkeys(allowed_origins or [])),
            client_credentials_refresh=client_credentials_refresh,
            scope=self._scope(scopes),
            can_introspect=can_introspect,
            access_token_lifetime=access_token_lifetime,
            refresh_token_lifetime=refresh_token_lifetime,
            refresh_grace_period=refresh_grace_period,
            max_pairs_per_client=max_pairs,
        )
        secret = None if public else client.set_new_secret()
        try:
            client.full_clean()
        except ValidationError as error:
            raise CommandError(_explain(error)) from None
        client.save()
        self._print(client, secret, as_json=as_json)

    def _owner(self, username: str | None):
        if not username:
            raise CommandError(f"--owner is missing. {_NO_OWNER}")
        user_model = get_user_model()
        try:
            return user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"No user {username!r}. {_NO_OWNER}") from None

    def _scope(self, scopes: list[str] | None) -> str:
        text = " ".join(scopes or [])
        try:
            # The endpoint's own parsing: RFC 6749 §3.3 scope tokens, sorted, each once.
            return grant_scope(" ".join(text.split()), frozenset(text.split()))
        except InvalidScope:
            raise CommandError(
                f"--scope {text!r}: a scope is printable ASCII without spaces, quotes "
                "or backslashes (RFC 6749 §3.3)."
            ) from None

    def _print(self, client: Client, secret: str | None, *, as_json: bool) -> None:
        if as_json:
            payload = {"client_id": client.client_id, "client_secret": secret}
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(f"client_id:     {client.client_id}")
        if secret is None:
            self.stdout.write("client_secret: none (public client)")
        else:
            self.stdout.write(f"client_secret: {secret}")
            self.stdout.write("The secret is shown only now; store it safely.")
        self.stdout.write(f"grants:        {client.grant_types} refresh_token")
        for uri in client.redirect_uri_list:
            self.stdout.write(f"redirect URI:  {uri}")
        if client.skip_consent:
            self.stdout.write("users are not asked for consent (first-party app)")
        if client.refresh_token_in_cookie:
            self.stdout.write("refresh token in an HttpOnly cookie (browser mode)")
        for origin in client.origin_list:
            self.stdout.write(f"origin:        {origin}")
        if not client.client_credentials_refresh:
            self.stdout.write("client_credentials answers carry no refresh token.")
        if client.scope:
            self.stdout.write(f"scope:         {client.scope}")
        if client.can_introspect:
            self.stdout.write("may introspect every client's tokens (resource server)")
        overrides = [
            ("access token lifetime: ", client.access_token_lifetime),
            ("refresh token lifetime:", client.refresh_token_lifetime),
            ("refresh grace period:  ", client.refresh_grace_period),
            ("max pairs:             ", client.max_pairs_per_client),
        ]
        for label, value in overrides:
            if value is not None:
                self.stdout.write(f"{label} {value}")


def _explain(error: ValidationError) -> str:
    """The model's validation messages, each named after the option that set the field."""
    if not hasattr(error, "error_dict"):
        return "; ".join(error.messages)
    parts = []
    for field, messages in error.message_dict.items():
        option = _OPTIONS.get(field)
        parts.extend(f"{option}: {message}" if option else message for message in messages)
    return "; ".join(parts)
