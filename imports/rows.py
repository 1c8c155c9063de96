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

import contextlib
import datetime

from django.db import connection, models


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
        moments = [
            index
            for index, name in enumerate(fields)
            if isinstance(model._meta.get_field(name), models.DateField)
        ]
        _execute_many(table, columns, len(fields), rows, moments)


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


def _execute_many(
    table: str, columns: str, width: int, rows: list[tuple], moments: list[int]
) -> None:
    placeholders = ", ".join(["%s"] * width)
    statement = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
    if moments:
        # Rows share many values, such as the chunk's creation time and
        # appointment slots, so each is converted once.
        texts = {}
        rows = [list(row) for row in rows]
        for row in rows:
            for index in moments:
                value = row[index]
                if value is not None:
                    text = texts.get(value)
                    if text is None:
                        text = texts[value] = sqlite_text(value)
                    row[index] = text
    with connection.cursor() as cursor:
        cursor.executemany(statement, rows)


def sqlite_text(value: datetime.date) -> str:
    """Return a date or datetime as the text Django stores in SQLite.

    Dates are in ISO format, datetimes naive in the connection's time zone
    (UTC unless DATABASES sets another) with a space between date and time.
    """
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(connection.timezone).replace(tzinfo=None)
        return value.isoformat(" ")
    return value.isoformat()


def select_in(
    model: type[models.Model],
    fields: list[str],
    field: str,
    values,
    **equal,
) -> list[tuple]:
    """Return FIELDS of the rows whose FIELD is one of VALUES.

    EQUAL names other fields and the value each must have. The ORM's
    ``__in`` prepares every value through its field, which took a large part
    of an import's lookups; here PostgreSQL gets the values as one array and
    SQLite as plain parameters.
    """
    values = list(values)
    if not values:
        return []
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(model._meta.get_field(name).column)

    selected = ", ".join(column(name) for name in fields)
    conditions = [f"{column(name)} = %s" for name in equal]
    fixed = list(equal.values())
    prefix = f"SELECT {selected} FROM {quote(model._meta.db_table)} WHERE "  # noqa: S608
    found = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            where = " AND ".join([*conditions, f"{column(field)} = ANY(%s)"])
            cursor.execute(prefix + where, [*fixed, values])
            return cursor.fetchall()
        # The maximum number of variables SQLite allows in one statement.
        batch = connection.features.max_query_params - len(fixed)
        for start in range(0, len(values), batch):
            part = values[start : start + batch]
            marks = ", ".join(["%s"] * len(part))
            where = " AND ".join([*conditions, f"{column(field)} IN ({marks})"])
            cursor.execute(prefix + where, [*fixed, *part])
            found += cursor.fetchall()
    return found


@contextlib.contextmanager
def sqlite_pragmas(**pragmas: int):
    """Set SQLite PRAGMAS (names and integers) for a while, then restore them.

    Does nothing on other databases.
    """
    if connection.vendor != "sqlite":
        yield
        return
    before = {}
    with connection.cursor() as cursor:
        for name, value in pragmas.items():
            cursor.execute(f"PRAGMA {name}")
            (before[name],) = cursor.fetchone()
            cursor.execute(f"PRAGMA {name} = {int(value)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for name, value in before.items():
                cursor.execute(f"PRAGMA {name} = {int(value)}")


def reserve_ids(model: type[models.Model], count: int) -> list[int] | None:
    """Take COUNT primary keys from MODEL's sequence on PostgreSQL.

    Rows inserted with them need not be read back for their keys. Returns
    None on SQLite, which has no sequence to take keys from in advance.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) "
            "FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [pk for (pk,) in cursor.fetchall()]
