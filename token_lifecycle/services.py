"""The transactional layer: load, lock, apply a rule from :mod:`.rules`, save.

Every change to a principal's pairs (issue, refresh, eviction, reuse
revocation) happens in one short transaction holding that principal's lock,
so the cap holds exactly however many processes issue at once, while
different principals (other users of the same client) never wait for each
other. See :func:`lock_principal`.

Access tokens are signed after the transaction commits, so the lock is held
for database work only. Signals are sent after commit (``on_commit``).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db import connections, router, transaction

from . import clock as app_clock
from . import credentials, pair_sql, rules, signals, validation
from .errors import InvalidGrant, InvalidScope
from .keys import signing_key
from .models import Client, TokenPair
from .rules import RefreshOutcome, RevokeReason
from .tokens import InvalidAccessToken, decode_access_token, encode_access_token

#: The application clock (see ``clock.py``).
clock = app_clock.now


@dataclasses.dataclass(frozen=True)
class IssuedPair:
    """A new pair with its two tokens in clear: the only moment they exist as such."""

    pair: TokenPair
    access_token: str
    refresh_token: str
    now: datetime

    @property
    def expires_in(self) -> int:
        return rules.seconds_until(self.pair.access_expires_at, self.now)

    @property
    def refresh_expires_in(self) -> int:
        return rules.seconds_until(self.pair.refresh_expires_at, self.now)


# -- Locking ------------------------------------------------------------------


def _db_alias() -> str:
    return router.db_for_write(TokenPair)


def _lock_user_row(user_pk: int) -> None:
    """Other backends (MySQL, Oracle...): the user's row stands in for both locks."""
    user_model = TokenPair._meta.get_field("user").related_model
    list(user_model._default_manager.select_for_update().filter(pk=user_pk).values_list("pk"))


def lock_principal(client_pk: int, user_pk: int) -> None:
    """Serialise changes to one principal's pairs until the current transaction ends.

    PostgreSQL: an exclusive advisory lock on (client, user), so the cap holds
    exactly while logins of other users, or of the same user through other
    clients, proceed in parallel; plus a *shared* lock on the user, which only
    :func:`lock_user` (a user-wide revocation) waits for. One statement, no
    row locked. SQLite: nothing, the database admits one writer at a time (use
    ``transaction_mode: IMMEDIATE``, see the README). Other backends: the
    user's row, which serialises one user's logins.
    """
    connection = connections[_db_alias()]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0)),"
                " pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [
                    pair_sql.user_lock_name(user_pk),
                    pair_sql.principal_lock_name(client_pk, user_pk),
                ],
            )
    elif connection.features.has_select_for_update:
        _lock_user_row(user_pk)


def lock_user(user_pk: int) -> None:
    """Hold off every issue and refresh of one user until the transaction ends.

    Taken by user-wide revocations: a login or refresh in flight, through any
    client, either commits before (and its pair is revoked) or starts after
    (and finds its pair revoked or the user changed): none escapes.
    """
    connection = connections[_db_alias()]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [pair_sql.user_lock_name(user_pk)],
            )
    elif connection.features.has_select_for_update:
        _lock_user_row(user_pk)


# -- Issue and refresh --------------------------------------------------------


def _new_pair(
    client: Client,
    user_pk: int,
    times: rules.PairTimes,
    *,
    scope: str,
    evict: list,
    parent=None,
    parent_rotated: bool = False,
):
    """Insert a pair and evict ``evict`` (rule 3); with ``parent_rotated``, store the
    parent's first use too. One statement on PostgreSQL (see pair_sql.insert).

    Returns the pair, its refresh token and the ``(id, client, user)`` of the
    pairs evicted, for :func:`_after_revocation` once the caller's own signal is
    registered (so that signals keep the order of events).
    """
    refresh_token = credentials.new_refresh_token()
    pair = TokenPair(
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
    evicted = pair_sql.insert(
        _db_alias(),
        pair,
        rotated_parent=parent if parent_rotated else None,
        evict=[other.pk for other in evict],
        revoked_at=times.issued_at,  # the request's instant
        reason=RevokeReason.EVICTED,
    )
    return pair, refresh_token, evicted


def _sign(issued: TokenPair, refresh_token: str, client: Client, issuer: str, now: datetime):
    access_token = encode_access_token(
        pair_id=str(issued.pk),
        subject=str(issued.user_id),
        client_id=client.client_id,
        issued_at=issued.issued_at,
        expires_at=issued.access_expires_at,
        issuer=issuer,
        scope=issued.scope,
    )
    return IssuedPair(issued, access_token, refresh_token, now)


def issue_pair(
    *, client: Client, user, issuer: str, grant_type: str, scope: str | None = None
) -> IssuedPair:
    """Rule 1 (issue) and rule 3 (cap): a new pair in a new family for (client, user)."""
    granted_scope = grant_scope(scope, client.allowed_scopes)
    policy = client.policy()
    signing_key()  # loaded (or created) before the transaction, see keys.py
    with transaction.atomic(using=_db_alias()):
        lock_principal(client.pk, user.pk)
        # Read after the lock: pairs of a principal are stamped in the order they are made.
        now = clock()
        others = pair_sql.live_pairs(_db_alias(), client.pk, user.pk, now)
        times = rules.new_pair_times(policy, now, rules.session_ends_at(policy, now))
        pair, refresh_token, evicted = _new_pair(
            client,
            user.pk,
            times,
            scope=granted_scope,
            evict=rules.pairs_to_evict(others, policy.max_pairs),
        )
        transaction.on_commit(
            lambda: signals.pair_issued.send(TokenPair, pair=pair, grant_type=grant_type)
        )
        _after_revocation(evicted, RevokeReason.EVICTED)
    return _sign(pair, refresh_token, client, issuer, now)


def refresh_pair(
    *, client: Client, refresh_token: str, issuer: str, scope: str | None = None
) -> IssuedPair:
    """Rule 2 (refresh) and rule 3 (cap).

    Raises :class:`InvalidGrant` for every refusal. A replay after the grace
    window revokes the family first (when reuse detection is on): that
    revocation commits even though the request fails.
    """
    digest = credentials.digest(refresh_token)
    policy = client.policy()
    signing_key()
    alias = _db_alias()
    # Who holds the token picks the lock. On PostgreSQL the lookup takes it in
    # the same statement, inside the transaction; elsewhere it runs first
    # (SQLite's transaction is the database's one write lock: not for unknown
    # tokens). The pair itself is read again under the lock.
    lookup_locks = pair_sql.lookup_takes_locks(alias)
    if not lookup_locks:
        found, granted_scope = _refresh_token_owner(alias, digest, client, scope)
    with transaction.atomic(using=alias):
        if lookup_locks:
            found, granted_scope = _refresh_token_owner(alias, digest, client, scope, lock=True)
        else:
            lock_principal(client.pk, found.user_pk)
        now = clock()
        pair, live_others = pair_sql.live_pairs_and_one(
            alias, client.pk, found.user_pk, now, found.pair_pk
        )
        if pair is None:  # purged since we looked it up
            raise InvalidGrant("The refresh token is invalid.")
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
    if not decision.issues_pair:
        raise InvalidGrant(decision.error_description)
    return _sign(child, new_refresh_token, client, issuer, now)


def _refresh_token_owner(
    alias: str, digest: str, client: Client, scope: str | None, *, lock: bool = False
) -> tuple[pair_sql.RefreshTokenOwner, str]:
    """Who holds the refresh token, and the scope the refresh may grant; or InvalidGrant."""
    found = pair_sql.find_by_refresh_digest(alias, digest, lock=lock)
    if found is None or found.client_pk != client.pk:
        # Another client's token is indistinguishable from an unknown one.
        raise InvalidGrant("The refresh token is invalid.")
    if not found.user_is_active:
        raise InvalidGrant("The user account is inactive.")
    return found, narrow_scope(scope, found.scope)


def _handle_reuse(pair: TokenPair, revoke_family: bool, now: datetime) -> None:
    revoked: list = []
    if revoke_family:
        family = TokenPair.objects.live(now).filter(family_id=pair.family_id)
        revoked = _revoke_ids(
            list(family.values_list("pk", flat=True)), RevokeReason.REUSE_DETECTED, now
        )
    transaction.on_commit(
        lambda: signals.refresh_token_reused.send(
            TokenPair, pair=pair, family_id=pair.family_id, revoked_pair_ids=revoked
        )
    )


# -- Scope --------------------------------------------------------------------


_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def _scope_tokens(requested: str) -> set[str]:
    """RFC 6749 §3.3: scope tokens are printable ASCII, separated by single spaces."""
    tokens = {token for token in requested.split(" ") if token}
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise InvalidScope("The scope is malformed (RFC 6749 §3.3).")
    return tokens


def grant_scope(requested: str | None, allowed: frozenset[str]) -> str:
    """The scope of a new family: the requested scopes, or all the client may have."""
    if requested is None:
        return " ".join(sorted(allowed))
    wanted = _scope_tokens(requested)
    if not wanted <= allowed:
        raise InvalidScope("The requested scope exceeds what this client may request.")
    return " ".join(sorted(wanted))


def narrow_scope(requested: str | None, original: str) -> str:
    """RFC 6749 §6: a refresh may narrow the scope, never widen it."""
    if requested is None:
        return original
    wanted = _scope_tokens(requested)
    if not wanted <= set(original.split(" ")):
        raise InvalidScope("A refresh cannot request scopes beyond the original grant.")
    return " ".join(sorted(wanted))


# -- Finding a pair from a token (revocation, introspection) -------------------

ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"


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
    if token.startswith(credentials.REFRESH_TOKEN_PREFIX):
        pair = (
            TokenPair.objects.select_related("client", "user")
            .filter(refresh_token_digest=credentials.digest(token))
            .first()
        )
        return (pair, REFRESH_TOKEN) if pair else (None, None)
    try:
        claims = decode_access_token(
            token, issuer=issuer, now=clock(), accept_expired=accept_expired
        )
        pair_id = uuid.UUID(claims["jti"])
    except (InvalidAccessToken, ValueError):
        return None, None
    pair = TokenPair.objects.select_related("client", "user").filter(pk=pair_id).first()
    return (pair, ACCESS_TOKEN) if pair else (None, None)


# -- Revocation ---------------------------------------------------------------


def _revoke_ids(pair_ids: Iterable, reason: str, now: datetime) -> list:
    """Revoke the given pairs that are not revoked yet; signal each after commit."""
    return _after_revocation(pair_sql.mark_revoked(_db_alias(), pair_ids, reason, now), reason)


def _after_revocation(rows: list[tuple], reason: str) -> list:
    """Tombstones and signals for the pairs a statement revoked, as ``(id, client, user)``."""
    if not rows:
        return []
    revoked_ids = [row[0] for row in rows]
    # Before the commit, not after: a request that reads the pair from the
    # database meanwhile cannot cache it as valid over this tombstone. Should
    # the transaction roll back, the pairs are refused for at most
    # VALIDATION_CACHE_SECONDS: failing closed.
    validation.forget_pairs(revoked_ids)

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


def revoke_pair_by_id(pair_id, reason: str) -> list:
    """Revoke the pair with this id, if it is not revoked yet; returns what was revoked."""
    with transaction.atomic(using=_db_alias()):
        return _revoke_ids([pair_id], reason, clock())


def revoke_user_pairs(user, reason: str) -> list:
    """Revoke every live pair of a user, across all clients (logout-all, password change).

    Holds the user's lock (:func:`lock_user`), so no pair issued concurrently
    escapes the revocation.
    """
    with transaction.atomic(using=_db_alias()):
        lock_user(user.pk)
        now = clock()
        live_ids = TokenPair.objects.live(now).filter(user=user).values_list("pk", flat=True)
        return _revoke_ids(list(live_ids), reason, now)


def revoke_client_pairs(client: Client, reason: str) -> list:
    """Revoke every live pair of a client (admin action, client deactivation).

    Not under per-principal locks (a client may have any number of users): a
    refresh already past client authentication when this commits may still
    add a pair. Deactivating the client closes that gap, since its tokens are
    refused on the next request and its refresh requests fail to authenticate.
    """
    with transaction.atomic(using=_db_alias()):
        now = clock()
        live_ids = TokenPair.objects.live(now).filter(client=client).values_list("pk", flat=True)
        return _revoke_ids(list(live_ids), reason, now)


def principal_pairs(client: Client, user) -> list[TokenPair]:
    """The live pairs of (client, user), newest first: ``GET /pairs/``."""
    now = clock()
    pairs = TokenPair.objects.live(now).filter(client_id=client.pk, user_id=user.pk)
    return list(pairs.order_by("-issued_at", "-id"))


def rotate_client_secret(client: Client) -> str:
    """Give a confidential client a new secret and return it (shown once, stored hashed)."""
    secret = client.set_new_secret()
    client.save(update_fields=["client_secret_digest"])
    return secret
