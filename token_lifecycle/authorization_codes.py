"""Authorization codes (RFC 6749 §4.1, RFC 7636): issued by the authorization
endpoint, redeemed once at the token endpoint.

A code is 256 random bits, stored only as its SHA-256 digest
(:func:`.credentials.digest`), bound to the client, the user who approved it,
the redirect URI, the scope and the S256 challenge. It can be exchanged while
``now < expires_at`` (``AUTHORIZATION_CODE_LIFETIME`` after issue), once.

**Redemption** is one transaction holding the code's row lock
(``SELECT ... FOR UPDATE``): two exchanges of one code at the same time are
serialised. The pair is issued by :func:`.services.issue_pair` in the same
transaction (a savepoint), then the code is claimed with a conditional
``UPDATE ... WHERE used_at IS NULL`` that also records the family: on a
database without row locks, the loser of a race sees no row updated and rolls
its pair back. A code is never spent without its pair, nor a pair left
without the code marked, and the exchange costs one statement on the code
besides its lookup.

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

from . import clock, credentials, keys, pkce, services
from .conf import lifecycle_settings
from .locking import database
from .models import AuthorizationCode, Client, GrantType
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
    keys.signing_key()  # loaded (or created) before the transaction, as services does
    alias = database()
    try:
        with transaction.atomic(using=alias):
            row = (
                AuthorizationCode.objects.using(alias)
                .select_for_update(of=("self",))  # the code's row, not its user's
                .select_related("user")
                .filter(code_digest=digest, client_id=client.pk)
                .first()
            )
            # Another client's code is indistinguishable from an unknown one.
            if row is None:
                raise InvalidGrant(_INVALID)
            now = clock.now()
            if row.used_at is None:
                if not _usable(row, now, redirect_uri, code_verifier):
                    # A failed attempt does not spend the code: whoever holds the
                    # verifier may still exchange it while it lasts.
                    raise InvalidGrant(_INVALID)
                issued = services.issue_pair(
                    client=client,
                    user=row.user,
                    issuer=issuer,
                    grant_type=GrantType.AUTHORIZATION_CODE,
                    scope=grant_scope(row.scope, client.allowed_scopes),
                )
                if _claim(row, now, issued.pair.family_id, alias):
                    return issued
                raise _ClaimedMeanwhile  # rolls the pair just issued back
            services.revoke_family(row.family_id, RevokeReason.CODE_REUSED)
    except _ClaimedMeanwhile:
        row.refresh_from_db(using=alias, fields=["family_id"])
        services.revoke_family(row.family_id, RevokeReason.CODE_REUSED)
    raise InvalidGrant(_INVALID)


class _ClaimedMeanwhile(Exception):
    """Another transaction spent the code first, on a database without row locks."""


def _claim(row: AuthorizationCode, now: Any, family_id: Any, alias: str) -> bool:
    """Mark the code used by ``family_id``; False when another transaction already did."""
    claimed = (
        AuthorizationCode.objects.using(alias)
        .filter(pk=row.pk, used_at__isnull=True)
        .update(used_at=now, family_id=family_id)
    )
    return claimed == 1


def _usable(row: AuthorizationCode, now: Any, redirect_uri: str, code_verifier: str) -> bool:
    """Every binding of a code checked, the replay aside (RFC 6749 §4.1.3, RFC 7636 §4.6)."""
    return (
        now < row.expires_at
        and redirect_uri == row.redirect_uri  # exact: the one used in the request
        and pkce.verifier_matches(code_verifier, row.code_challenge)
        and row.user.is_active
    )
