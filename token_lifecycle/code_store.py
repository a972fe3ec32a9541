"""How a code exchange claims its code: one statement, built once per database.

The claim is the whole rule of a usable code (RFC 6749 §4.1.3, RFC 7636
§4.6), spelled once, as the condition of one ``UPDATE``: the code of this
client, not used yet, before its expiry (exclusive), for exactly this redirect
URI, whose challenge the verifier answers, approved by a user still active.
The row it changes is marked used by the family about to be issued, and
``RETURNING`` hands back who approved it and what. A code that fails any
part is left as it was, so a failed attempt does not spend it.

Two exchanges of one code at once: the second ``UPDATE`` waits for the first
one's row lock (PostgreSQL) or write lock (SQLite), then finds the code used
and changes nothing.

The challenge is compared by the database, not in constant time: it is
public (it travelled in the authorization request), and only a preimage, the
verifier, redeems it. Why prebuilt SQL: :mod:`.statements`.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections

from .models import AuthorizationCode
from .statements import Table, execute, returns_rows_from_update, user_active


class Claimed(NamedTuple):
    """What a claimed code was approved for."""

    user: Any  # the user model's instance, with its primary key only (the rest deferred)
    scope: str


class _Statements:
    def __init__(self, alias: str) -> None:
        self.table = table = Table(AuthorizationCode, alias)
        column = table.column
        self.user_model = AuthorizationCode._meta.get_field("user").related_model
        user = user_active(self.user_model, alias)
        active = (
            f" AND {column['user_id']} IN (SELECT {user.pk} FROM {user.table}"
            f" WHERE {user.is_active} = %s)"
            if user is not None
            else ""
        )
        self.checks_active = user is not None
        self.claim = (
            f"UPDATE {table.name} SET {column['used_at']} = %s, {column['family_id']} = %s"
            f" WHERE {column['code_digest']} = %s AND {column['client_id']} = %s"
            f" AND {column['used_at']} IS NULL AND {column['expires_at']} > %s"
            f" AND {column['redirect_uri']} = %s AND {column['code_challenge']} = %s{active}"
        )
        self.returning = returns_rows_from_update(alias)
        if self.returning:
            self.claim += f" RETURNING {column['user_id']}, {column['scope']}"


@functools.cache
def _statements_for(alias: str, vendor: str) -> _Statements:
    return _Statements(alias)


def claim(
    alias: str,
    *,
    digest: str,
    client_pk: int,
    redirect_uri: str,
    challenge: str,
    now: datetime,
    family_id: uuid.UUID,
) -> Claimed | None:
    """Mark the code used by ``family_id`` if it is usable at ``now``; None if it is not.

    Call it inside the transaction that issues the family's first pair, so
    that neither commits without the other.
    """
    sql = _statements_for(alias, connections[alias].vendor)
    table = sql.table
    params = [
        table.to_db("used_at", now),
        table.to_db("family_id", family_id),
        table.to_db("code_digest", digest),
        table.to_db("client_id", client_pk),
        table.to_db("expires_at", now),
        table.to_db("redirect_uri", redirect_uri),
        table.to_db("code_challenge", challenge),
    ]
    if sql.checks_active:
        params.append(True)
    rows, count = execute(alias, sql.claim, params)
    if sql.returning:
        if not rows:
            return None
        user_pk, scope = rows[0]
        user_pk = table.from_db("user_id", user_pk)
    elif count != 1:
        return None
    else:  # MySQL, MariaDB, Oracle: the row is ours now; read it back
        user_pk, scope = (
            AuthorizationCode.objects.using(alias)
            .filter(code_digest=digest)
            .values_list("user_id", "scope")
            .get()
        )
    pk_name = sql.user_model._meta.pk.attname
    return Claimed(sql.user_model.from_db(alias, [pk_name], [user_pk]), scope)
