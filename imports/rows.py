"""Insert many new rows at once without building model instances.

``bulk_create()`` passes every value of every row through its model field
in Python and assembles one long statement, which took about two fifths of
an import. The importer already has plain values, so ``insert_rows()``
hands them to the driver: COPY on PostgreSQL, one prepared
``executemany()`` on SQLite.

Values must be what the model field would store: str, int, bool, None,
date, or an aware datetime. No default, ``auto_now`` or signal of the model
runs, so the caller gives every column that has no database default.
"""

import datetime

from django.db import connection, models
from django.utils import timezone


def insert_rows(model: type[models.Model], fields: list[str], rows: list[tuple]):
    """Insert ROWS, each a tuple of values for FIELDS (attribute names).

    A database error is raised as Django's DatabaseError, as from a query.
    """
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(model._meta.get_field(name).column) for name in fields
    )
    if connection.vendor == "postgresql":
        _copy_rows(table, columns, rows)
    else:
        _execute_many(table, columns, len(fields), rows)


def _copy_rows(table: str, columns: str, rows: list[tuple]) -> None:
    # The table and column names come from the model, quoted; no value is
    # ever part of the statement.
    statement = f"COPY {table} ({columns}) FROM STDIN"
    # copy() is psycopg's own, so its errors are translated here, as Django
    # translates those of execute().
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _execute_many(table: str, columns: str, width: int, rows: list[tuple]) -> None:
    placeholders = ", ".join(["%s"] * width)
    statement = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(statement, [sqlite_values(row) for row in rows])


def sqlite_values(row: tuple) -> tuple:
    """Return ROW with dates and datetimes as the text Django stores in SQLite.

    Dates are in ISO format, datetimes naive in the connection's time zone
    (UTC) with a space between date and time.
    """
    return tuple(
        _sqlite_moment(value) if isinstance(value, datetime.date) else value
        for value in row
    )


def _sqlite_moment(value: datetime.date) -> str:
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.make_naive(value, connection.timezone)
        return value.isoformat(" ")
    return value.isoformat()
