"""The three rows every page request reads: its session, its person and its release.

Through the ORM, building each query cost about 0.35 ms of Python, more than the round
trip to PostgreSQL, and three of them were most of what serving a cached board costs.
Here the SQL for each is built once per process and the row becomes the same model
instance the ORM would have made (every column, every field's conversion).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.utils import timezone

Row = TypeVar("Row", bound=Model)


@functools.cache
def _select(model: type[Model], where: str) -> tuple[str, tuple[str, ...], tuple[Any, ...]]:
    """`where` names columns as `{column}` placeholders, quoted here."""
    meta = model._meta
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    condition = where.format_map({field.column: quote(field.column) for field in fields})
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {condition}"
    converters = tuple(getattr(field, "from_db_value", None) for field in fields)
    return sql, tuple(field.attname for field in fields), converters


def fetch_one(model: type[Row], where: str, params: Sequence[Any]) -> Row | None:
    """The one row of `model` that `where` selects, as a model instance, or None."""
    sql, attnames, converters = _select(model, where)
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = [
        value if convert is None else convert(value, None, connection)
        for value, convert in zip(row, converters, strict=True)
    ]
    return model.from_db(DEFAULT_DB_ALIAS, attnames, values)


class SessionStore(DatabaseSessionStore):
    """Django's database sessions, read with one prepared lookup."""

    def _get_session_from_db(self) -> AbstractBaseSession | None:
        if not self.session_key:
            return None
        session = fetch_one(
            self.model,
            "{session_key} = %s AND {expire_date} > %s",
            [self.session_key, timezone.now()],
        )
        if session is None:
            self._session_key = None
        return session


class UserBackend(ModelBackend):
    """Django's ModelBackend, reading the logged-in person with one prepared lookup."""

    def get_user(self, user_id: Any) -> Any:
        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        user = fetch_one(model, f"{{{model._meta.pk.column}}} = %s", [pk])
        return user if user is not None and self.user_can_authenticate(user) else None
