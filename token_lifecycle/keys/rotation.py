"""Rotating signing keys (``manage.py rotate_signing_key``)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Max, Q, Value
from django.db.models.functions import Coalesce, Greatest

from .. import clock
from ..conf import lifecycle_settings
from ..models import Client, SigningKey
from .store import KEY_CACHE_SECONDS, clear_cache, create_signing_key, publish_key_state


def longest_access_lifetime() -> timedelta:
    """The longest access-token lifetime in force: the setting or a client's override."""
    overrides = Client.objects.aggregate(longest=Max("access_token_lifetime"))["longest"]
    return max(filter(None, [lifecycle_settings().access_token_lifetime, overrides]))


def rotate(
    algorithm: str | None = None, *, immediately: bool = False, compromised: bool = False
) -> SigningKey:
    """Add a signing key and retire the current one.

    By default the new key is published now and signs once ``JWKS_MAX_AGE``
    has passed, so that every cached JWKS already holds it. The retired key
    verifies until every token it may have signed has expired: its last
    signing instant, plus the lag of processes' loaded keys, the longest access
    lifetime and the leeway. ``immediately`` skips the publication delay (for
    verifiers that refetch the JWKS on an unknown kid, like PyJWT's
    ``PyJWKClient``). ``compromised`` also stops every older key verifying at
    once: their tokens get 401 and clients refresh (refresh tokens are not
    signed, so they keep working). A withdrawn key is never extended again.

    Once the change commits, a new key-state version in the shared validation
    cache makes every process drop its loaded keys (:mod:`.store`): from then
    on none signs with a withdrawn key nor accepts its tokens. Processes whose
    cache is their own notice within ``KEY_CACHE_SECONDS``.
    """
    settings = lifecycle_settings()
    now = clock.now()
    with transaction.atomic():
        nothing_signs = not SigningKey.objects.signing(now).exists()
        immediate = immediately or compromised or nothing_signs
        signs_from = now if immediate else now + settings.jwks_max_age
        new_key = create_signing_key(algorithm, signs_from=signs_from)
        others = SigningKey.objects.exclude(pk=new_key.pk).published(now)
        if compromised:
            others.update(retired_at=Coalesce("retired_at", Value(now)), verify_until=now)
        else:
            verify_until = (
                signs_from
                + timedelta(seconds=KEY_CACHE_SECONDS)
                + longest_access_lifetime()
                + settings.leeway
            )
            # Keys still signing, or scheduled to sign after the new one starts;
            # a verify_until already further out is kept.
            superseded = Q(retired_at__isnull=True) | Q(retired_at__gt=signs_from)
            others.filter(superseded).update(
                retired_at=signs_from,
                verify_until=Greatest(
                    Coalesce("verify_until", Value(verify_until)), Value(verify_until)
                ),
            )
        # Published after the commit: a process reloading on the new version
        # must read the new rows, never the old ones under the new version.
        transaction.on_commit(publish_key_state)
    clear_cache()  # this process at once, even inside a caller's transaction
    return new_key
