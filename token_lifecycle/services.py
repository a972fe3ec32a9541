"""The transactional layer: lock, load, ask :mod:`.rules`, save.

Every change to a principal's pairs (issue, refresh, eviction, reuse
revocation) is one short transaction holding that principal's lock
(:mod:`.locking`), so the cap holds exactly under concurrent requests.
Access tokens are signed after the transaction commits, so locks are held
for database work only. Signals are sent after commit.

A revocation writes its tombstones into the validation cache (:mod:`.cache`)
before its transaction commits: a request that reads the pair from the
database meanwhile cannot cache it as valid over them. Should the transaction
roll back, the pairs are refused for at most ``VALIDATION_CACHE_SECONDS``:
failing closed.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from . import cache, clock, credentials, keys, pair_store, rules, signals
from .locking import database, lock_principal, lock_user
from .models import Client, TokenPair, uuid7
from .oauth.errors import InvalidGrant
from .reasons import RefreshRefusal
from .rules import RefreshOutcome, RevokeReason
from .scopes import grant_scope, narrow_scope

ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"
_BATCH = 500  # ids per IN list: SQLite's variable limit, and short statements


@dataclasses.dataclass(frozen=True)
class IssuedPair:
    """A new pair with its two tokens in clear: the only moment they exist as such."""

    pair: TokenPair
    access_token: str
    #: None when the pair was issued without a usable refresh token.
    refresh_token: str | None
    now: datetime

    @property
    def expires_in(self) -> int:
        return rules.seconds_until(self.pair.access_expires_at, self.now)

    @property
    def refresh_expires_in(self) -> int:
        return rules.seconds_until(self.pair.refresh_expires_at, self.now)


# -- Issue and refresh --------------------------------------------------------


def issue_pair(
    *,
    client: Client,
    user: Any,
    issuer: str,
    grant_type: str,
    scope: str | None = None,
    refreshable: bool = True,
    family_id: uuid.UUID | None = None,
) -> IssuedPair:
    """Issue (a new pair in a new family for client and user), then the cap.

    ``refreshable=False`` issues no usable refresh token: the answer leaves it
    out (``IssuedPair.refresh_token`` is None) and the pair dies with its access
    token, instead of counting against the cap for the refresh lifetime.
    ``family_id`` names the new family (and its first pair) when the caller
    recorded it already: a code exchange, inside its transaction.
    """
    granted_scope = grant_scope(scope, client.allowed_scopes)
    policy = client.policy()
    keys.signing_key()  # loaded (or created) before the transaction
    alias = database()
    # Inside a caller's transaction (a code exchange) no savepoint: a failure here
    # fails the caller's transaction anyway, and on PostgreSQL each is a round trip.
    with transaction.atomic(using=alias, savepoint=False):
        lock_principal(client.pk, user.pk)
        # Read after the lock: pairs of a principal are stamped in the order they are made.
        now = clock.now()
        others = pair_store.live_pairs(alias, client.pk, user.pk, now)
        session_end = rules.session_ends_at(policy, now)
        times = rules.new_pair_times(policy, now, session_end, refreshable=refreshable)
        pair, refresh_token, evicted = _new_pair(
            client,
            user.pk,
            times,
            scope=granted_scope,
            evict=rules.pairs_to_evict(others, policy.max_pairs),
            pair_id=family_id,
        )
        transaction.on_commit(
            lambda: signals.pair_issued.send(TokenPair, pair=pair, grant_type=grant_type)
        )
        _after_revocation(evicted, RevokeReason.EVICTED)
    return _sign(pair, refresh_token if refreshable else None, client, issuer, now)


def refresh_pair(
    *, client: Client, refresh_token: str, issuer: str, scope: str | None = None
) -> IssuedPair:
    """Refresh, then the cap. Every refusal is :class:`InvalidGrant` with a reason.

    A replay after the grace window revokes the family first (with reuse
    detection on): that revocation commits although the request fails.
    """
    digest = credentials.digest(refresh_token)
    policy = client.policy()
    keys.signing_key()
    alias = database()
    # Who holds the token names the lock. On PostgreSQL the lookup takes it in
    # the same statement; elsewhere the lookup comes first, so that an unknown
    # token never takes SQLite's one write lock. The pair is read again under it.
    lookup_locks = pair_store.lookup_takes_locks(alias)
    if not lookup_locks:
        found, granted_scope = _holder(alias, digest, client, scope)
    with transaction.atomic(using=alias):
        if lookup_locks:
            found, granted_scope = _holder(alias, digest, client, scope, lock=True)
        else:
            lock_principal(client.pk, found.user_pk)
        now = clock.now()
        pair, live_others = pair_store.live_pairs_and_one(
            alias, client.pk, found.user_pk, now, found.pair_pk
        )
        if pair is None:  # purged since it was looked up
            raise InvalidGrant("The refresh token is invalid.", reason=RefreshRefusal.INVALID)
        decision = rules.decide_refresh(pair, now, policy)
        if decision.outcome is RefreshOutcome.REUSED:
            _handle_reuse(pair, decision.revoke_family, now)
        elif decision.issues_pair:
            first_use = decision.outcome is RefreshOutcome.FIRST_USE
            if first_use:
                pair.rotated_at = decision.rotated_at
                pair.refresh_grace_ends_at = decision.refresh_grace_ends_at
                pair.live_until = rules.live_until(pair)
            # The refreshed pair counts against the cap while it is live.
            others = live_others + ([pair] if rules.is_live(pair, now) else [])
            others.sort(key=lambda row: (row.issued_at, row.pk))
            times = rules.new_pair_times(policy, now, pair.session_ends_at)
            child, new_refresh_token, evicted = _new_pair(
                client,
                pair.user_id,
                times,
                scope=granted_scope,
                evict=rules.pairs_to_evict(others, policy.max_pairs),
                parent=pair,
                parent_rotated=first_use,
            )
            transaction.on_commit(
                lambda: signals.pair_refreshed.send(TokenPair, pair=child, parent=pair)
            )
            _after_revocation(evicted, RevokeReason.EVICTED)
    if decision.refusal is not None:
        reason, description = decision.refusal
        raise InvalidGrant(description, reason=reason)
    return _sign(child, new_refresh_token, client, issuer, now)


def _holder(
    alias: str, digest: str, client: Client, scope: str | None, *, lock: bool = False
) -> tuple[pair_store.RefreshTokenOwner, str]:
    """Who holds the refresh token, and the scope the refresh may grant; or InvalidGrant."""
    found = pair_store.find_by_refresh_digest(alias, digest, lock=lock)
    if found is None or found.client_pk != client.pk:
        # Another client's token is indistinguishable from an unknown one.
        raise InvalidGrant("The refresh token is invalid.", reason=RefreshRefusal.INVALID)
    if not found.user_is_active:
        raise InvalidGrant("The user account is inactive.", reason=RefreshRefusal.USER_INACTIVE)
    return found, narrow_scope(scope, found.scope)


def _new_pair(
    client: Client,
    user_pk: Any,
    times: rules.PairTimes,
    *,
    scope: str,
    evict: list,
    parent: TokenPair | None = None,
    parent_rotated: bool = False,
    pair_id: uuid.UUID | None = None,
) -> tuple[TokenPair, str, list[tuple]]:
    """Insert a pair and evict ``evict``; with ``parent_rotated``, store the parent's
    first use too. One statement on PostgreSQL (:func:`.pair_store.insert`).

    Returns the pair, its refresh token and the ``(id, client, user)`` of the
    pairs evicted, for :func:`_after_revocation` once the caller's own signal is
    registered (so that signals keep the order of events).
    """
    refresh_token = credentials.new_refresh_token()
    pair = TokenPair(
        id=pair_id or uuid7(),
        client=client,
        user_id=user_pk,
        parent=parent,
        refresh_token_digest=credentials.digest(refresh_token),
        scope=scope,
        issued_at=times.issued_at,
        access_expires_at=times.access_expires_at,
        refresh_expires_at=times.refresh_expires_at,
        session_ends_at=times.session_ends_at,
        live_until=times.live_until,
    )
    pair.family_id = parent.family_id if parent else pair.id
    evicted = pair_store.insert(
        database(),
        pair,
        rotated_parent=parent if parent_rotated else None,
        evict=[other.pk for other in evict],
        revoked_at=times.issued_at,  # the request's instant
        reason=RevokeReason.EVICTED,
    )
    return pair, refresh_token, evicted


def _sign(
    pair: TokenPair, refresh_token: str | None, client: Client, issuer: str, now: datetime
) -> IssuedPair:
    access_token = keys.encode_access_token(
        pair_id=str(pair.pk),
        subject=str(pair.user_id),
        client_id=client.client_id,
        issued_at=pair.issued_at,
        expires_at=pair.access_expires_at,
        issuer=issuer,
        scope=pair.scope,
    )
    return IssuedPair(pair, access_token, refresh_token, now)


def _handle_reuse(pair: TokenPair, revoke_family: bool, now: datetime) -> None:
    revoked: list = []
    if revoke_family:
        family = TokenPair.objects.live(now).filter(family_id=pair.family_id)
        revoked = _revoke(family, RevokeReason.REUSE_DETECTED, now)
    transaction.on_commit(
        lambda: signals.refresh_token_reused.send(
            TokenPair, pair=pair, family_id=pair.family_id, revoked_pair_ids=revoked
        )
    )


# -- Finding a pair from a token (revocation, introspection) -------------------


def pair_for_token(
    token: str, *, issuer: str, accept_expired: bool = False
) -> tuple[TokenPair | None, str | None]:
    """The pair a token belongs to and the token's kind, or ``(None, None)``.

    The kind is read from the token's shape, not from a ``token_type_hint``:
    refresh tokens are opaque ``rt_`` strings, access tokens are JWTs. An
    access token must carry our valid signature, so a forged JWT naming some
    pair's id finds nothing; with ``accept_expired`` (revocation) it may have
    expired, and its key may have retired.
    """
    pairs = TokenPair.objects.select_related("client", "user")
    if token.startswith(credentials.REFRESH_TOKEN_PREFIX):
        pair = pairs.filter(refresh_token_digest=credentials.digest(token)).first()
        return (pair, REFRESH_TOKEN) if pair else (None, None)
    try:
        claims = keys.decode_access_token(
            token, issuer=issuer, now=clock.now(), accept_expired=accept_expired
        )
        pair_id = uuid.UUID(claims["jti"])
    except (keys.InvalidAccessToken, ValueError):
        return None, None
    pair = pairs.filter(pk=pair_id).first()
    return (pair, ACCESS_TOKEN) if pair else (None, None)


# -- Revocation ---------------------------------------------------------------


def _revoke(pairs: QuerySet[TokenPair], reason: str, now: datetime) -> list:
    """Revoke those of ``pairs`` not revoked yet; returns their ids.

    The rows are locked before they are changed, so a pair revoked by two
    transactions at once is reported (and signalled) by exactly one of them.
    """
    rows = list(
        pairs.filter(revoked_at__isnull=True)
        .select_for_update()
        .order_by("pk")
        .values_list("pk", "client_id", "user_id")
    )
    for start in range(0, len(rows), _BATCH):
        batch = [row[0] for row in rows[start : start + _BATCH]]
        TokenPair.objects.filter(pk__in=batch).update(revoked_at=now, revoke_reason=reason)
    return _after_revocation(rows, reason)


def _after_revocation(rows: list[tuple], reason: str) -> list:
    """Tombstones now and signals after commit, for pairs revoked as ``(id, client, user)``."""
    if not rows:
        return []
    revoked_ids = [row[0] for row in rows]
    cache.forget_pairs(revoked_ids)

    def send() -> None:
        for pair_id, client_pk, user_pk in rows:
            signals.pair_revoked.send(
                TokenPair, pair_id=pair_id, client_pk=client_pk, user_pk=user_pk, reason=reason
            )

    transaction.on_commit(send)
    return revoked_ids


def revoke_pair(pair: TokenPair, reason: str) -> bool:
    """Revoke one pair (both tokens). Returns False if it was already revoked."""
    return bool(revoke_pair_by_id(pair.pk, reason))


def revoke_pair_by_id(pair_id: Any, reason: str) -> list:
    """Revoke the pair with this id if it is not revoked yet; returns what was revoked."""
    with transaction.atomic(using=database()):
        return _revoke(TokenPair.objects.filter(pk=pair_id), reason, clock.now())


def revoke_user_pairs(user: Any, reason: str) -> list:
    """Revoke every live pair of a user, across all clients (logout-all, password change).

    Holds the user's lock, so no pair issued concurrently escapes.
    """
    with transaction.atomic(using=database()):
        lock_user(user.pk)
        now = clock.now()
        return _revoke(TokenPair.objects.live(now).filter(user=user), reason, now)


def revoke_client_pairs(client: Client, reason: str) -> list:
    """Revoke every live pair of a client (admin action, client deactivation).

    Not under per-principal locks (a client may have any number of users): a
    refresh already past client authentication when this commits may still
    add a pair. Deactivating the client closes that gap, since its tokens are
    refused on the next request and its refresh requests fail to authenticate.
    """
    with transaction.atomic(using=database()):
        now = clock.now()
        return _revoke(TokenPair.objects.live(now).filter(client=client), reason, now)


def revoke_family(family_id: Any, reason: str) -> list:
    """Revoke every live pair of a family (a reused authorization code); returns their ids.

    A family belongs to one principal; its lock is held, so a refresh in flight
    either commits first (and its pair is revoked here) or finds its parent revoked.
    """
    with transaction.atomic(using=database()):
        principal = (
            TokenPair.objects.filter(family_id=family_id)
            .values_list("client_id", "user_id")
            .first()
        )
        if principal is None:  # purged, or never issued
            return []
        lock_principal(*principal)
        now = clock.now()
        return _revoke(TokenPair.objects.live(now).filter(family_id=family_id), reason, now)


def principal_pairs(client: Client, user: Any) -> list[TokenPair]:
    """The live pairs of (client, user), newest first: ``GET /pairs/``."""
    pairs = TokenPair.objects.live(clock.now()).filter(client_id=client.pk, user_id=user.pk)
    return list(pairs.order_by("-issued_at", "-id"))


def rotate_client_secret(client: Client) -> str:
    """Give a confidential client a new secret and return it (shown once, stored hashed)."""
    secret = client.set_new_secret()
    client.save(update_fields=["client_secret_digest"])
    return secret
