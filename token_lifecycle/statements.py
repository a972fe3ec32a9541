"""What the token endpoint's prebuilt statements share (:mod:`.pair_store`, :mod:`.code_store`).

A few statements run on every issue, refresh and code exchange. The ORM
compiles each afresh on every request, which ``make bench`` measured as the
larger part of their cost; these modules build each statement once per
database instead. :class:`Table` gives them a model's table as the ORM sees
it: names quoted by the backend (so ``db_table`` and ``db_column`` are
honoured), parameters prepared by each field's ``get_db_prep_value``, values
read converted by the backend's and the field's converters. Everything else
uses the ORM.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from django.core.exceptions import FieldDoesNotExist
from django.db import connections
from django.db.models import Model
from django.db.models.expressions import Col


class Table:
    """``model``'s table on the database ``alias``."""

    def __init__(self, model: type[Model], alias: str) -> None:
        connection = connections[alias]
        quote = connection.ops.quote_name
        meta = model._meta
        self.alias = alias
        self.vendor = connection.vendor
        self.name = quote(meta.db_table)
        self.fields = meta.concrete_fields
        self.attnames = [field.attname for field in self.fields]
        #: Each concrete field's column, quoted, by attname.
        self.column = {field.attname: quote(field.column) for field in self.fields}
        self._field = {field.attname: field for field in self.fields}
        self._converters = {
            field.attname: _converters(connection, meta.db_table, field) for field in self.fields
        }

    def qualified(self, attname: str) -> str:
        """``table.column``, for statements that join."""
        return f"{self.name}.{self.column[attname]}"

    def to_db(self, attname: str, value: Any) -> Any:
        """``value`` as a parameter for the field's column."""
        return self._field[attname].get_db_prep_value(
            value, connections[self.alias], prepared=False
        )

    def from_db(self, attname: str, value: Any) -> Any:
        """A value read from the field's column, as the ORM would give it."""
        for convert in self._converters[attname]:
            value = convert(value)
        return value


class UserActive(NamedTuple):
    """Where the user table keeps ``is_active``: ``table``, and ``table.column`` of pk and flag."""

    table: str
    pk: str
    is_active: str


def user_active(user_model: type[Model], alias: str) -> UserActive | None:
    """The user model's ``is_active`` column, or None if it has none.

    A user model without a concrete ``is_active`` is always active, as in
    Django's authentication backends.
    """
    try:
        field = user_model._meta.get_field("is_active")
    except FieldDoesNotExist:
        return None
    if not field.concrete:
        return None
    quote = connections[alias].ops.quote_name
    table = quote(user_model._meta.db_table)
    pk = f"{table}.{quote(user_model._meta.pk.column)}"
    return UserActive(table, pk, f"{table}.{quote(field.column)}")


def returns_rows_from_update(alias: str) -> bool:
    """Whether ``UPDATE ... RETURNING`` works here: PostgreSQL, and SQLite from 3.35."""
    connection = connections[alias]
    return connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and connection.features.can_return_columns_from_insert
    )


def execute(alias: str, sql: str, params: list) -> tuple[list[tuple], int]:
    """Run one statement; its rows (if it returns any) and its row count."""
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return (cursor.fetchall() if cursor.description else []), cursor.rowcount


def _converters(connection, table: str, field) -> list:
    """The ORM's conversions of a value read for ``field`` (SQLCompiler.apply_converters)."""
    expression = Col(table, field)
    functions = connection.ops.get_db_converters(expression) + expression.get_db_converters(
        connection
    )
    return [functools.partial(_apply, function, expression, connection) for function in functions]


def _apply(function, expression, connection, value):
    return function(value, expression, connection)
