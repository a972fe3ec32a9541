"""``manage.py create_client NAME --owner USERNAME [--grant G]... [--public]
[--no-refresh-token] [--json]``."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from token_lifecycle.models import CONFIGURABLE_GRANTS, Client, GrantType


class Command(BaseCommand):
    help = (
        "Create an API client and print its credentials. The secret is shown only "
        "now: it is stored as a hash."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--owner",
            required=True,
            help="Username of the owner; client_credentials pairs act as this user.",
        )
        parser.add_argument(
            "--grant",
            action="append",
            choices=[grant.value for grant in CONFIGURABLE_GRANTS],
            dest="grants",
            help="Allowed grant (repeatable). Default: client_credentials, or password "
            "for a public client. refresh_token is always allowed.",
        )
        parser.add_argument(
            "--public",
            action="store_true",
            help="A public client (mobile app, SPA): no secret, authenticates with client_id.",
        )
        parser.add_argument(
            "--no-refresh-token",
            action="store_false",
            dest="client_credentials_refresh",
            help="client_credentials answers carry no refresh token (RFC 6749 §4.4.3): the "
            "client logs in again when its access token expires. Default: they carry one.",
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
        owner: str,
        grants,
        public: bool,
        client_credentials_refresh: bool,
        as_json: bool,
        **opts,
    ):
        user_model = get_user_model()
        try:
            owner_user = user_model._default_manager.get_by_natural_key(owner)
        except user_model.DoesNotExist:
            raise CommandError(f"No user {owner!r}.") from None
        default = GrantType.PASSWORD if public else GrantType.CLIENT_CREDENTIALS
        client = Client(
            name=name,
            owner=owner_user,
            is_public=public,
            grant_types=" ".join(dict.fromkeys(grants or [default])),
            client_credentials_refresh=client_credentials_refresh,
        )
        secret = None if public else client.set_new_secret()
        try:
            client.full_clean()
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        client.save()
        self._print(client, secret, as_json=as_json)

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
        if not client.client_credentials_refresh:
            self.stdout.write("client_credentials answers carry no refresh token.")
