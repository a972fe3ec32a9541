"""Is the pair behind an access token still good? Answered from a cache, or one query.

The bearer path must honour revocation, eviction and client or user
deactivation on every request, yet cost no query in the steady state. It
keeps three kinds of entries in the cache alias ``CACHE_ALIAS``, each for at
most ``VALIDATION_CACHE_SECONDS``, all three fetched in one ``get_many`` (one
round trip to Redis at most; none on a warm near cache, see redis_cache.py):

- ``pair:<jti>``: the pair's client, user and access expiry, or ``REVOKED``;
- ``user:<pk>``: the user that becomes ``request.user``;
- ``client:<client_id>``: the client behind ``request.auth.client``.

Users and clients are stored as their field values, not as pickled model
instances (:mod:`.cached_rows`: decoding those was a third of a warm request).
Each entry carries the instant it expires, ``cached_until``. When the cache is
this process's own (local memory), answers are also kept decoded in the
process and reused without reading the three entries (:mod:`.local_answers`).

Staying right is a matter of writing, not of expiring:

- A revocation (any source that goes through :mod:`.services`) writes a
  ``REVOKED`` tombstone for each pair before its transaction commits.
- Saving or deleting a user or a client drops its entry (``receivers.py``).
- A cache miss loads the pair with its client and user in one query and
  fills the entries with ``cache.add``, which never overwrites: a fill that
  read the database just before a revocation committed cannot replace the
  tombstone written just before the commit.

With a shared cache (Redis) every process sees a revocation on its next
request. With a per-process cache (local memory), another process sees it
when its own entry expires: after ``VALIDATION_CACHE_SECONDS`` at most. A
change made behind the app's back (``QuerySet.update()``) is seen within the
same bound. If the cache fails, the database answers (and a warning is logged).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import local_answers
from .cached_rows import RowCodec, codec_for
from .conf import lifecycle_settings
from .models import Client, TokenPair
from .tokens import InvalidAccessToken

logger = logging.getLogger(__name__)

REVOKED = "revoked"
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Every key the app keeps in its cache starts with this (see redis_cache.py).
#: v2: rows as field values (cached_rows.py), each entry with its cached_until.
KEY_PREFIX = "token_lifecycle:v2:"
_EPOCH_KEY = f"{KEY_PREFIX}epoch"


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


def _local() -> local_answers.LocalAnswers | None:
    return local_answers.answers_for(lifecycle_settings().cache_alias, _EPOCH_KEY)


def _cached_until() -> float:
    """When an entry written now leaves the cache; taken before the write, so never later."""
    return time.time() + lifecycle_settings().validation_cache_seconds


@lru_cache(maxsize=1)
def _user_codec() -> RowCodec:
    # get_user_model() looks the model up in the app registry on every call.
    return codec_for(get_user_model())


def validate_pair(claims: dict[str, Any], now: datetime):
    """The ``(user, client)`` of a verified access token, or :class:`InvalidAccessToken`.

    ``claims`` come from :func:`tokens.decode_access_token` (signature and
    claims already checked); this decides whether the pair may still be used.
    """
    settings = lifecycle_settings()
    if settings.validation_cache_seconds == 0:
        return _validate_from_database(claims["jti"], claims, now, None)
    local = _local()
    if local is not None:
        try:
            answer = local.get(claims["jti"])
        except Exception:
            answer = None  # the cache read below fails alike, and says so
        rows = _rows(answer) if answer is not None else None
        if rows is not None:
            return _check(answer.pair_state, *rows, claims, now)
    return _validate_from_cache(claims, now, _cache(), local)


def _validate_from_cache(claims: dict[str, Any], now: datetime, cache, local):
    pair_id = claims["jti"]
    keys = (_pair_key(pair_id), _user_key(claims["sub"]), _client_key(claims["client_id"]))
    try:
        ticket = local.ticket() if local is not None else 0
        found = cache.get_many(keys)
    except Exception:
        logger.warning("Validation cache unavailable; using the database.", exc_info=True)
        return _validate_from_database(pair_id, claims, now, None)
    if found.get(keys[0]) == REVOKED:
        raise InvalidAccessToken("The access token has been revoked or has expired.")
    answer = _answer(*(found[key] for key in keys)) if len(found) == 3 else None
    rows = _rows(answer) if answer is not None else None
    if rows is None:
        if len(found) == 3:
            _delete(list(keys))  # written by another version of the app or its models
        return _validate_from_database(pair_id, claims, now, cache)
    if local is not None:
        local.keep(ticket, pair_id, answer)
    return _check(answer.pair_state, *rows, claims, now)


def _answer(pair_state, user_entry, client_entry) -> local_answers.Answer | None:
    """Three entries of a pair in use as one answer, or None if one is not of this version."""
    try:
        _client_pk, _user_pk, _access_expires_at, pair_until = pair_state
        user_until, user_row = user_entry
        client_until, client_row = client_entry
        until = min(pair_until, user_until, client_until)
    except (TypeError, ValueError):
        return None
    return local_answers.Answer(until, pair_state, user_row, client_row)


def _rows(answer: local_answers.Answer):
    """``(user, client)``, new instances from the answer's rows; None if not of this version."""
    user = _user_codec().decode(answer.user_row)
    client = codec_for(Client).decode(answer.client_row)
    return None if user is None or client is None else (user, client)


def _pair_state(pair: TokenPair, cached_until: float):
    """A pair's entry: ``REVOKED``, or its client, user, access expiry (a timestamp), expiry."""
    if pair.revoked_at:
        return REVOKED
    return (pair.client_id, pair.user_id, pair.access_expires_at.timestamp(), cached_until)


def _check(pair_state, user, client: Client, claims: dict[str, Any], now: datetime):
    if pair_state == REVOKED:
        raise InvalidAccessToken("The access token has been revoked or has expired.")
    client_pk, user_pk, access_expires_at, _ = pair_state
    if now.timestamp() >= access_expires_at:
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
    cached_until = _cached_until()
    try:
        pair = pairs.get(pk=uuid.UUID(pair_id))
    except (ValueError, TokenPair.DoesNotExist):
        raise InvalidAccessToken("The access token has been revoked or has expired.") from None
    state = _pair_state(pair, cached_until)
    if cache is not None:
        _fill(cache, pair_id, state, pair.user, pair.client)
    return _check(state, pair.user, pair.client, claims, now)


def _row_entry(instance) -> tuple[float, bytes]:
    """A user's or client's entry: when it expires from the cache, and its row."""
    return _cached_until(), codec_for(type(instance)).encode(instance)


def _fill(cache, pair_id: str, state, user, client: Client) -> None:
    timeout = lifecycle_settings().validation_cache_seconds
    try:
        cache.add(_pair_key(pair_id), state, timeout)
        cache.add(_user_key(user.pk), _row_entry(user), timeout)
        cache.add(_client_key(client.client_id), _row_entry(client), timeout)
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
            cached = cache.get(key)
        except Exception:
            logger.warning("Validation cache unavailable; using the database.", exc_info=True)
            cached, cache = None, None
        if cached is not None:
            client = _client_from_entry(cached)
            if client is not None:
                return client
            _delete([key])  # another version's: replaced below
    client = Client.objects.filter(client_id=client_id).first()
    if client is not None and cache is not None:
        try:
            cache.add(key, _row_entry(client), lifecycle_settings().validation_cache_seconds)
        except Exception:
            logger.warning("Validation cache unavailable; not filled.", exc_info=True)
    return client


def _client_from_entry(entry) -> Client | None:
    try:
        _, row = entry
    except (TypeError, ValueError):
        return None
    return codec_for(Client).decode(row)


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
    # After the write, so a read that overlapped it is not kept (local_answers.py).
    local = _local()
    if local is not None:
        local.forget_pairs([str(pair_id) for pair_id in pair_ids])


def forget_user(user_pk) -> None:
    _delete([_user_key(user_pk)])


def forget_client(client_id: str) -> None:
    _delete([_client_key(client_id)])


def _delete(keys: list[str]) -> None:
    cache = _cache()
    if cache is None or not keys:
        return
    try:
        cache.delete_many(keys)
    except Exception:
        logger.warning("Validation cache unavailable; %s not dropped.", keys, exc_info=True)
    local = _local()
    if local is not None:
        local.forget_all()  # a user or client row: any answer may hold it


@receiver(setting_changed)
def _forget_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TOKEN_LIFECYCLE", "CACHES", "AUTH_USER_MODEL"):
        _user_codec.cache_clear()
        local_answers.forget_everything()
