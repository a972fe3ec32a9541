"""Is the pair behind an access token still good? Answered from a cache, or one query.

The bearer path must honour revocation, eviction and client or user
deactivation on every request, yet cost no query in the steady state. It
keeps three kinds of entries in the cache alias ``CACHE_ALIAS``, each for at
most ``VALIDATION_CACHE_SECONDS``, all three fetched in one ``get_many`` (one
round trip to Redis at most; none on a warm near cache, see redis_cache.py):

- ``pair:<jti>``: the pair's client, user and access expiry, or ``REVOKED``;
- ``user:<pk>``: the user instance that becomes ``request.user``;
- ``client:<client_id>``: the client instance behind ``request.auth.client``.

Staying right is a matter of writing, not of expiring:

- A revocation (any source that goes through :mod:`.services`) writes a
  ``REVOKED`` tombstone for each pair after its transaction commits.
- Saving or deleting a user or a client drops its entry (``receivers.py``).
- A cache miss loads the pair with its client and user in one query and
  fills the entries with ``cache.add``, which never overwrites: a fill that
  read the database just before a revocation committed cannot replace the
  tombstone written just after.

With a shared cache (Redis) every process sees a revocation on its next
request. With a per-process cache (local memory), another process sees it
when its own entry expires: after ``VALIDATION_CACHE_SECONDS`` at most. A
change made behind the app's back (``QuerySet.update()``) is seen within the
same bound. If the cache fails, the database answers (and a warning is logged).
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Any

from django.core.cache import caches

from .conf import lifecycle_settings
from .models import Client, TokenPair
from .tokens import InvalidAccessToken

logger = logging.getLogger(__name__)

REVOKED = "revoked"
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Every key the app keeps in its cache starts with this (see redis_cache.py).
KEY_PREFIX = "token_lifecycle:v1:"


def _pair_key(pair_id: str) -> str:
    return f"{KEY_PREFIX}pair:{pair_id}"


def _user_key(user_pk: Any) -> str:
    return f"{KEY_PREFIX}user:{user_pk}"


def _client_key(client_id: str) -> str:
    return f"{KEY_PREFIX}client:{client_id}"


def _cache():
    """The cache alias in use, or None when caching is off."""
    settings = lifecycle_settings()
    if settings.validation_cache_seconds == 0:
        return None
    return caches[settings.cache_alias]


def validate_pair(claims: dict[str, Any], now: datetime):
    """The ``(user, client)`` of a verified access token, or :class:`InvalidAccessToken`.

    ``claims`` come from :func:`tokens.decode_access_token` (signature and
    claims already checked); this decides whether the pair may still be used.
    """
    pair_id, user_pk, client_id = claims["jti"], claims["sub"], claims["client_id"]
    cache = _cache()
    if cache is not None:
        keys = (_pair_key(pair_id), _user_key(user_pk), _client_key(client_id))
        try:
            found = cache.get_many(keys)
        except Exception:
            logger.warning("Validation cache unavailable; using the database.", exc_info=True)
            found, cache = {}, None
        if len(found) == 3:
            return _check(found[keys[0]], found[keys[1]], found[keys[2]], claims, now)
    return _validate_from_database(pair_id, claims, now, cache)


def _check(pair_state, user, client: Client, claims: dict[str, Any], now: datetime):
    if pair_state == REVOKED:
        raise InvalidAccessToken("The access token has been revoked or has expired.")
    client_pk, user_pk, access_expires_at = pair_state
    if now >= access_expires_at:
        raise InvalidAccessToken("The access token has been revoked or has expired.")
    if client.pk != client_pk or user.pk != user_pk or str(user_pk) != claims["sub"]:
        raise InvalidAccessToken("The access token does not match its pair.")
    if client.client_id != claims["client_id"]:
        raise InvalidAccessToken("The access token does not match its pair.")
    if not client.is_active:
        raise InvalidAccessToken("The client has been deactivated.")
    if not user.is_active:
        raise InvalidAccessToken("The user account is inactive.")
    return user, client


def _validate_from_database(pair_id: str, claims: dict[str, Any], now: datetime, cache):
    # The cached user must not carry its password hash into Redis; a deferred
    # field is loaded only if read. (The client's secret digest may: it is the
    # SHA-256 of 256 random bits, which can be neither reversed nor presented.)
    pairs = TokenPair.objects.select_related("client", "user").defer("user__password")
    try:
        pair = pairs.get(pk=uuid.UUID(pair_id))
    except (ValueError, TokenPair.DoesNotExist):
        raise InvalidAccessToken("The access token has been revoked or has expired.") from None
    state = REVOKED if pair.revoked_at else (pair.client_id, pair.user_id, pair.access_expires_at)
    if cache is not None:
        _fill(cache, pair_id, state, pair.user, pair.client)
    return _check(state, pair.user, pair.client, claims, now)


def _fill(cache, pair_id: str, state, user, client: Client) -> None:
    timeout = lifecycle_settings().validation_cache_seconds
    try:
        cache.add(_pair_key(pair_id), state, timeout)
        cache.add(_user_key(user.pk), user, timeout)
        cache.add(_client_key(client.client_id), client, timeout)
    except Exception:
        logger.warning("Validation cache unavailable; not filled.", exc_info=True)


def client_by_id(client_id: str) -> Client | None:
    """The client with this public id, from the cache when it holds it (client authentication).

    The same entry serves the bearer path, and is dropped when the client is
    saved or deleted, so a rotated secret or a deactivation applies at once.
    """
    if not _CLIENT_ID.fullmatch(client_id):
        return None  # not one we issue (credentials.new_client_id): no query, no odd cache key
    cache = _cache()
    key = _client_key(client_id)
    if cache is not None:
        try:
            client = cache.get(key)
        except Exception:
            logger.warning("Validation cache unavailable; using the database.", exc_info=True)
            client, cache = None, None
        if client is not None:
            return client
    client = Client.objects.filter(client_id=client_id).first()
    if client is not None and cache is not None:
        try:
            cache.add(key, client, lifecycle_settings().validation_cache_seconds)
        except Exception:
            logger.warning("Validation cache unavailable; not filled.", exc_info=True)
    return client


def forget_pairs(pair_ids) -> None:
    """Mark revoked pairs as such, so no process trusts a cached copy (after commit)."""
    cache = _cache()
    if cache is None or not pair_ids:
        return
    tombstones = {_pair_key(str(pair_id)): REVOKED for pair_id in pair_ids}
    try:
        cache.set_many(tombstones, lifecycle_settings().validation_cache_seconds)
    except Exception:
        logger.warning("Validation cache unavailable; revocation not cached.", exc_info=True)


def forget_user(user_pk) -> None:
    _forget(_user_key(user_pk))


def forget_client(client_id: str) -> None:
    _forget(_client_key(client_id))


def _forget(key: str) -> None:
    cache = _cache()
    if cache is None:
        return
    try:
        cache.delete(key)
    except Exception:
        logger.warning("Validation cache unavailable; %s not dropped.", key, exc_info=True)
