"""Is the pair behind an access token still good? The app's one cache, and its invariant.

**Invariant.** A revocation that has returned is refused on the next request
by every process that shares the cache (Redis, memcached), and by this process
when the cache is its own (local memory). Another process with its own cache
sees it when its entry expires, after ``VALIDATION_CACHE_SECONDS`` at most:
``manage.py check --deploy`` warns about that set-up. A change made behind the
app's back (``QuerySet.update()``) is seen within the same bound.

**Entries**, in the cache alias ``CACHE_ALIAS``, each for at most
``VALIDATION_CACHE_SECONDS``, read together in one ``get_many``:

- ``pair:<jti>``: the pair's client, user and access expiry, or ``REVOKED``;
- ``user:<pk>``: the row of the user that becomes ``request.user``, without
  its password hash (a deferred field, loaded only if read);
- ``client:<client_id>``: the client's row (also read by client authentication);
- ``key-state``: on a cache other processes share (not local memory), the
  signing keys' state version (:mod:`.keys.store`), written by each rotation
  with no expiry, so that a key withdrawn by ``rotate_signing_key
  --compromised`` is refused on the next request everywhere. A local-memory
  cache reads only the first three.

Rows are stored as the pickled bytes of their field values, not as model
instances: unpickling an instance cost about as much as the rest of a warm
request. A process unpickles each distinct row once (remembered by content,
so nothing to invalidate); each read still builds new instances. The pair's
access expiry is stored as a timestamp, for the same reason.

**One invalidation mechanism: writing.** Everything that can make a cached
answer wrong writes through this module. A revocation (:mod:`.services`)
writes a ``REVOKED`` tombstone for each pair before its transaction commits.
Saving or deleting a user or a client deletes its entry (:mod:`.receivers`),
at once and again after commit. A miss reads the database and fills the entries with
``cache.add``, which never overwrites: a fill that read the pair just before
a revocation committed cannot replace the tombstone written just before it.

If the cache fails, the database answers and a warning is logged.
"""

from __future__ import annotations

import copy
import logging
import pickle
import re
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cache as memoize
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed
from django.db import models
from django.db.models.base import ModelState
from django.dispatch import receiver

from .conf import lifecycle_settings
from .keys import InvalidAccessToken
from .keys.access_tokens import check_key_state
from .keys.store import present_key_state
from .models import Client, TokenPair

logger = logging.getLogger(__name__)

#: Every key starts with this. v3: rows as field values, read by Model.from_db.
KEY_PREFIX = "token_lifecycle:v3:"
REVOKED = "revoked"
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _pair_key(pair_id: Any) -> str:
    return f"{KEY_PREFIX}pair:{pair_id}"


def _user_key(user_pk: Any) -> str:
    return f"{KEY_PREFIX}user:{user_pk}"


def _client_key(client_id: str) -> str:
    return f"{KEY_PREFIX}client:{client_id}"


def _cache() -> BaseCache | None:
    """The cache alias in use, or None when caching is off."""
    settings = lifecycle_settings()
    return caches[settings.cache_alias] if settings.validation_cache_seconds else None


#: The signing keys' state version (:mod:`.keys.store`); never expires.
KEY_STATE = f"{KEY_PREFIX}key-state"


def shared_cache() -> BaseCache | None:
    """The cache alias in use if other processes may share it; None for local memory or off."""
    cache = _cache()
    return None if cache is None or isinstance(cache, LocMemCache) else cache


# -- Rows as cache values -----------------------------------------------------

#: Values of these types may be shared by the instances built from one row.
_IMMUTABLE = (type(None), bool, int, float, str, bytes, date, time, timedelta, Decimal, UUID)


@memoize
def _attnames(model: type[models.Model]) -> tuple[str, ...]:
    """The fields a row is stored with: all concrete ones, never a password hash."""
    return tuple(f.attname for f in model._meta.concrete_fields if f.name != "password")


def _row(instance: models.Model) -> bytes:
    names = _attnames(type(instance))
    values = tuple(getattr(instance, name) for name in names)
    return pickle.dumps((instance._state.db, names, values), pickle.HIGHEST_PROTOCOL)


@lru_cache(maxsize=4096)
def _decoded(row: bytes) -> tuple | None:
    """A stored row unpickled, with the positions of its mutable values.

    Remembered by content: a changed row is other bytes, so this needs no
    invalidation, and a warm request unpickles no row.
    """
    try:
        db, names, values = pickle.loads(row)
    except Exception:
        return None
    mutable = tuple(i for i, value in enumerate(values) if not isinstance(value, _IMMUTABLE))
    return db, names, values, mutable


def _instance(model: type[models.Model], row: Any) -> models.Model | None:
    """A new instance from a stored row; None if it was stored with other fields (a deploy).

    Built as unpickling builds one: the fields' values in ``__dict__`` and a
    fresh ``_state``; mutable values (a ``JSONField``'s dict) are copied, never
    shared. A field left out (the password) is deferred, loaded if read.
    """
    decoded = _decoded(row) if type(row) is bytes else None
    if decoded is None or decoded[1] != _attnames(model):
        return None
    db, names, values, mutable = decoded
    instance = model.__new__(model)
    instance.__dict__.update(zip(names, values, strict=True))
    for index in mutable:
        instance.__dict__[names[index]] = copy.deepcopy(values[index])
    instance._state = ModelState()
    instance._state.adding = False
    instance._state.db = db
    return instance


# -- The bearer path ----------------------------------------------------------


def validate_pair(claims: dict[str, Any], now: datetime) -> tuple[Any, Client]:
    """The ``(user, client)`` of a verified access token, or :class:`InvalidAccessToken`.

    ``claims`` are verified already (signature, issuer, expiry); this decides
    whether the pair may still be used and, on a shared cache, whether their
    key was withdrawn by another process since this one loaded it.
    """
    cache = _cache()
    keys = (_pair_key(claims["jti"]), _user_key(claims["sub"]), _client_key(claims["client_id"]))
    if cache is not None:
        # Local memory is this process's own: no other process's rotation is in it.
        shared = not isinstance(cache, LocMemCache)
        try:
            found = cache.get_many((*keys, KEY_STATE) if shared else keys)
        except Exception:
            logger.warning("Validation cache unavailable; using the database.", exc_info=True)
            found, cache, shared = {}, None, False
        if shared:
            check_key_state(present_key_state(cache, found.get(KEY_STATE)), claims, now)
        state = found.get(keys[0])
        if state == REVOKED:
            raise InvalidAccessToken("The access token has been revoked or has expired.")
        if state is not None and keys[1] in found and keys[2] in found:
            user = _instance(_user_model(), found[keys[1]])
            client = _instance(Client, found[keys[2]])
            if user is not None and client is not None:
                return _check(state, user, client, claims, now)
            _delete(list(keys))  # written by another version of the app or its models
    return _from_database(claims, now, cache)


def _pair_state(pair: TokenPair) -> tuple | str:
    if pair.revoked_at is not None:
        return REVOKED
    return (pair.client_id, pair.user_id, pair.access_expires_at.timestamp())


def _check(state: tuple | str, user: Any, client: Client, claims: dict, now: datetime):
    if state == REVOKED or now.timestamp() >= state[2]:
        raise InvalidAccessToken("The access token has been revoked or has expired.")
    client_pk, user_pk, _ = state
    if (client.pk, user.pk) != (client_pk, user_pk) or str(user_pk) != claims["sub"]:
        raise InvalidAccessToken("The access token does not match its pair.")
    if client.client_id != claims["client_id"]:
        raise InvalidAccessToken("The access token does not match its pair.")
    if not client.is_active:
        raise InvalidAccessToken("The client has been deactivated.")
    if not getattr(user, "is_active", True):
        raise InvalidAccessToken("The user account is inactive.")
    return user, client


def _from_database(claims: dict[str, Any], now: datetime, cache: BaseCache | None):
    pairs = TokenPair.objects.select_related("client", "user").defer("user__password")
    try:
        pair = pairs.get(pk=uuid.UUID(claims["jti"]))
    except (ValueError, TokenPair.DoesNotExist):
        raise InvalidAccessToken("The access token has been revoked or has expired.") from None
    state = _pair_state(pair)
    if cache is not None:
        _add(
            cache,
            {
                _pair_key(claims["jti"]): state,
                _user_key(pair.user_id): _row(pair.user),
                _client_key(pair.client.client_id): _row(pair.client),
            },
        )
    return _check(state, pair.user, pair.client, claims, now)


def _add(cache: BaseCache, entries: dict[str, Any]) -> None:
    timeout = lifecycle_settings().validation_cache_seconds
    try:
        for key, value in entries.items():
            cache.add(key, value, timeout)
    except Exception:
        logger.warning("Validation cache unavailable; not filled.", exc_info=True)


# -- Client authentication ----------------------------------------------------


def client_by_id(client_id: str) -> Client | None:
    """The client with this public id (client authentication), from its entry when cached.

    The entry is the bearer path's, dropped when the client is saved or
    deleted, so a rotated secret or a deactivation applies at once.
    """
    if not _CLIENT_ID.fullmatch(client_id):
        return None  # not one we issue: no query, no odd cache key
    cache = _cache()
    key = _client_key(client_id)
    if cache is not None:
        try:
            row = cache.get(key)
        except Exception:
            logger.warning("Validation cache unavailable; using the database.", exc_info=True)
            row, cache = None, None
        client = _instance(Client, row) if row is not None else None
        if client is not None:
            return client
        if row is not None:
            _delete([key])  # another version's: replaced below
    client = Client.objects.filter(client_id=client_id).first()
    if client is not None and cache is not None:
        _add(cache, {key: _row(client)})
    return client


# -- Writes -------------------------------------------------------------------


def forget_pairs(pair_ids: list) -> None:
    """Tombstones for revoked pairs, so that no process trusts a cached answer."""
    cache = _cache()
    if cache is None or not pair_ids:
        return
    tombstones = {_pair_key(pair_id): REVOKED for pair_id in pair_ids}
    try:
        cache.set_many(tombstones, lifecycle_settings().validation_cache_seconds)
    except Exception:
        logger.warning("Validation cache unavailable; revocation not cached.", exc_info=True)


def forget_user(user_pk: Any) -> None:
    _delete([_user_key(user_pk)])


def forget_client(client_id: str) -> None:
    _delete([_client_key(client_id)])


def _delete(keys: list[str]) -> None:
    cache = _cache()
    if cache is None:
        return
    try:
        cache.delete_many(keys)
    except Exception:
        logger.warning("Validation cache unavailable; %s not dropped.", keys, exc_info=True)


@memoize
def _user_model() -> type[models.Model]:
    return get_user_model()  # which looks it up in the app registry at every call


@receiver(setting_changed)
def _forget_fields(*, setting: str, **kwargs: Any) -> None:
    if setting == "AUTH_USER_MODEL":
        _attnames.cache_clear()
        _user_model.cache_clear()
