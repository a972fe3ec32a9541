"""Authorization codes (RFC 6749 §4.1, RFC 7636): issued by the authorization
endpoint, redeemed once at the token endpoint.

A code is 256 random bits, stored only as its SHA-256 digest
(:func:`.credentials.digest`), bound to the client, the user who approved it,
the redirect URI, the scope and the S256 challenge. It can be exchanged while
``now < expires_at`` (``AUTHORIZATION_CODE_LIFETIME`` after issue), once.

**Redemption** is one transaction: the code is claimed
(:func:`.code_store.claim`, whose one statement is the whole rule of a
usable code and marks it used by the family about to start), then the pair
is issued by :func:`.services.issue_pair` under that family's id. A code is
never spent without its pair, nor a pair issued without the code marked.
A failed attempt (wrong verifier, other redirect URI, expired) changes
nothing: whoever holds the verifier may still exchange the code while it
lasts.

**A second use** of a code by the client it was issued to (RFC 6749 §4.1.2)
is refused and revokes every live pair of the family its first exchange
started, refreshed pairs included, with reason ``code_reused``. It does so
whatever the verifier and redirect URI presented: the code leaking is the
signal, and failing closed ends the session it may have handed to someone
else. That revocation commits although the request fails.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from . import clock, code_store, credentials, keys, pkce, services
from .conf import lifecycle_settings
from .locking import database
from .models import AuthorizationCode, Client, GrantType, uuid7
from .oauth.errors import InvalidGrant
from .rules import RevokeReason
from .scopes import grant_scope

#: One answer for every refusal: which check failed is no business of the caller's.
_INVALID = (
    "The authorization code is invalid, expired, already used, or was issued for "
    "another client, redirect URI or code verifier."
)


def issue(*, client: Client, user: Any, redirect_uri: str, scope: str, code_challenge: str) -> str:
    """Store a new code for an approved authorization request and return it (in clear, once).

    ``scope`` must already be granted (:func:`.scopes.grant_scope`) and
    ``code_challenge`` checked (:func:`.pkce.challenge_problem`).
    """
    code = credentials.new_authorization_code()
    now = clock.now()
    AuthorizationCode.objects.using(database()).create(
        code_digest=credentials.digest(code),
        client=client,
        user=user,
        redirect_uri=redirect_uri,
        scope=scope,
        code_challenge=code_challenge,
        created_at=now,
        expires_at=now + lifecycle_settings().authorization_code_lifetime,
    )
    return code


def redeem(
    *, client: Client, code: str, redirect_uri: str, code_verifier: str, issuer: str
) -> services.IssuedPair:
    """Exchange ``code`` for a pair in a new family, or raise :class:`InvalidGrant`."""
    digest = credentials.digest(code)
    challenge = pkce.challenge_for(code_verifier)
    alias = database()
    if challenge is not None:
        keys.signing_key()  # loaded (or created) before the transaction, as services does
        family_id = uuid7()
        with transaction.atomic(using=alias):
            claimed = code_store.claim(
                alias,
                digest=digest,
                client_pk=client.pk,
                redirect_uri=redirect_uri,  # exact: the one used in the request
                challenge=challenge,
                now=clock.now(),
                family_id=family_id,
            )
            if claimed is not None:
                return services.issue_pair(
                    client=client,
                    user=claimed.user,
                    issuer=issuer,
                    grant_type=GrantType.AUTHORIZATION_CODE,
                    scope=grant_scope(claimed.scope, client.allowed_scopes),
                    family_id=family_id,
                )
    # Unknown, another client's, expired, another binding, or used already:
    # only the last one does more than refuse.
    first_use = (
        AuthorizationCode.objects.using(alias)
        .filter(code_digest=digest, client_id=client.pk, used_at__isnull=False)
        .values_list("family_id", flat=True)
        .first()
    )
    if first_use is not None:
        services.revoke_family(first_use, RevokeReason.CODE_REUSED)
    raise InvalidGrant(_INVALID)
