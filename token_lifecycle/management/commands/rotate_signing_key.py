"""``manage.py rotate_signing_key [--algorithm ALG] [--immediately] [--compromised]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from token_lifecycle import clock, keys
from token_lifecycle.cache import shared_cache
from token_lifecycle.conf import SIGNING_ALGORITHMS, lifecycle_settings
from token_lifecycle.models import SigningKey


class Command(BaseCommand):
    help = (
        "Add a new signing key. It is published in the JWKS now and signs once "
        "JWKS_MAX_AGE has passed; the previous key keeps verifying until every "
        "token it signed has expired."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--algorithm",
            choices=SIGNING_ALGORITHMS,
            help="Algorithm of the new key (default: the SIGNING_ALGORITHM setting).",
        )
        parser.add_argument(
            "--immediately",
            action="store_true",
            help="Sign with the new key at once, without waiting for JWKS caches.",
        )
        parser.add_argument(
            "--compromised",
            action="store_true",
            help="The current key leaked: sign with the new key at once and stop "
            "accepting tokens signed by older keys, in every process sharing the "
            "validation cache by the time this command returns (within 60 s in a "
            "process whose cache is its own); clients will refresh.",
        )

    def handle(self, *args, algorithm, immediately: bool, compromised: bool, **options):
        new_key = keys.rotate(algorithm, immediately=immediately, compromised=compromised)
        now = clock.now()
        self.stdout.write(f"New key {new_key.kid} ({new_key.algorithm}), published now.")
        when = (
            "now" if new_key.signs_from <= now else f"at {new_key.signs_from:%Y-%m-%d %H:%M:%S %Z}"
        )
        self.stdout.write(f"It signs {when}.")
        for old in SigningKey.objects.exclude(pk=new_key.pk).published(now):
            self.stdout.write(
                f"Key {old.kid} ({old.algorithm}) signs until "
                f"{old.retired_at:%Y-%m-%d %H:%M:%S %Z} and verifies until "
                f"{old.verify_until:%Y-%m-%d %H:%M:%S %Z}."
            )
        if compromised:
            self.stdout.write("Older keys no longer verify: their tokens are refused from now on.")
            alias = lifecycle_settings().cache_alias
            if shared_cache() is not None:
                self.stdout.write(f"Every process sharing the cache {alias!r} has been told.")
            else:
                self.stdout.write(
                    f"Other processes may use them for up to {keys.KEY_CACHE_SECONDS} s more: "
                    f"the cache {alias!r} is not shared between processes."
                )
