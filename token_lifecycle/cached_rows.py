"""Model instances as validation-cache values: their field values, decoded once per process.

The bearer path reads a user and a client from the cache on every request.
Stored as pickled model instances, unpickling them was a third of a warm
request (~7 µs each: ``ModelState``, version checks, datetimes rebuilt
through ``copyreg``). So a row is stored as ``bytes``: the pickled tuple of
its concrete field values, tagged with the model's field layout. A process
decodes each distinct value once and remembers it (bounded, oldest first out);
every read still goes through the cache, so what is current is whatever the
cache holds, and the memory here is only a function of the bytes.

Each read builds a fresh instance, as an unpickled one would be: views may
change ``request.user``; values of mutable types (a ``JSONField``'s dict) are
copied, never shared. As with unpickling, ``post_init`` is not sent. Fields
left out (the user's password hash) are deferred: reading one loads it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import decimal
import hashlib
import pickle
import uuid
from functools import cache
from typing import Any

from django.db import models
from django.db.models.base import ModelState

#: Values of these types are shared between the instances built from one entry.
_IMMUTABLE = (
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    datetime.date,  # datetime.datetime too
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
)


class RowCodec:
    """One model's rows to and from cache values."""

    MAX_DECODED = 4096

    def __init__(self, model: type[models.Model], exclude: frozenset[str] = frozenset()) -> None:
        self.model = model
        self.attnames = tuple(
            field.attname for field in model._meta.concrete_fields if field.name not in exclude
        )
        # A deploy that changes the model's fields must not read older entries.
        layout = f"{model._meta.label}:{','.join(self.attnames)}".encode()
        self.layout = hashlib.blake2b(layout, digest_size=8).digest()
        self._decoded: dict[bytes, tuple[str, tuple[Any, ...], tuple[int, ...]]] = {}

    def encode(self, instance: models.Model) -> bytes:
        values = tuple(getattr(instance, attname) for attname in self.attnames)
        return pickle.dumps((self.layout, instance._state.db, values), pickle.HIGHEST_PROTOCOL)

    def decode(self, value: Any) -> models.Model | None:
        """A new instance from a cache value, or None if it is not one of this layout."""
        if type(value) is not bytes:
            return None
        decoded = self._decoded.get(value)
        if decoded is None:
            decoded = self._decode(value)
            if decoded is None:
                return None
        db, values, mutable = decoded
        fields = dict(zip(self.attnames, values, strict=True))
        for index in mutable:
            fields[self.attnames[index]] = copy.deepcopy(values[index])
        state = ModelState()
        state.adding = False
        state.db = db
        fields["_state"] = state
        instance = self.model.__new__(self.model)
        instance.__dict__.update(fields)
        return instance

    def _decode(self, value: bytes):
        try:
            layout, db, values = pickle.loads(value)
        except Exception:
            return None
        if layout != self.layout or len(values) != len(self.attnames):
            return None
        mutable = tuple(i for i, item in enumerate(values) if not isinstance(item, _IMMUTABLE))
        if len(self._decoded) >= self.MAX_DECODED:
            # Another thread may evict at the same moment: losing that race is harmless.
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                del self._decoded[next(iter(self._decoded))]
        decoded = (db, values, mutable)
        self._decoded[value] = decoded
        return decoded


@cache
def codec_for(model: type[models.Model]) -> RowCodec:
    """The codec of ``model``; a user model's password hash is never stored."""
    names = {field.name for field in model._meta.concrete_fields}
    return RowCodec(model, exclude=frozenset({"password"} & names))
