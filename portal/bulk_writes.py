"""Writing thousands of rows at once, for bulk actions.

Django's bulk_create() turns every value of every row into SQL in Python,
and at tens of thousands of rows that costs more than the database's own
work. These helpers hand the rows to the database in bulk instead: COPY on
PostgreSQL, one prepared statement run for every row (executemany) on
SQLite. The caller gives the values of the columns it sets, in Python's
types; every other column takes its field's default.

They write the table directly, so no save() or signal runs. Call them only
for models whose rows need neither, inside the transaction of the change.
"""

import functools
import json
from collections.abc import Iterable, Sequence

from django.db import connection, models, transaction


def _to_database(field: models.Field):
    """Return what turns FIELD's Python values into what the writer takes, or None."""
    if isinstance(field, models.JSONField):
        return json.dumps
    if connection.vendor == "postgresql":
        # COPY's own adapters take ints, strings, booleans and aware datetimes.
        return None
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, models.DateField):
        return connection.ops.adapt_datefield_value
    return None


def _column_value(field: models.Field, value):
    convert = _to_database(field)
    if convert is None or value is None:
        return value
    return convert(value)


def _cached(convert):
    """Convert each distinct date only once: rows of one change share their times."""
    if convert in (None, json.dumps):
        return convert
    # Unbounded, but for one call of insert_rows() only.
    return functools.cache(convert)


def insert_rows(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence]
) -> int:
    """Insert ROWS, each a sequence of values for FIELDS, into MODEL's table.

    A field left out of FIELDS takes its default, the same for every row; a
    primary key left out is numbered by the database. Returns the number of
    rows written.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("insert_rows() must run inside the transaction of a change.")
    opts = model._meta
    # A field is named by its name or, for a foreign key, its column's ("patient_id").
    named = [opts.get_field(name) for name in fields]
    rest = [
        field
        for field in opts.concrete_fields
        if field not in named and not field.primary_key
    ]
    defaults = tuple(_column_value(field, field.get_default()) for field in rest)
    # Only the columns whose values need converting are touched in each row.
    converted = [
        (index, _cached(convert))
        for index, convert in enumerate(_to_database(field) for field in named)
        if convert is not None
    ]
    columns = [field.column for field in named + rest]

    def database_rows():
        for row in rows:
            if len(row) != len(named):
                raise ValueError(
                    f"insert_rows() got a row of {len(row)} values "
                    f"for {len(named)} fields."
                )
            if converted:
                row = list(row)
                for index, convert in converted:
                    if row[index] is not None:
                        row[index] = convert(row[index])
            yield (*row, *defaults)

    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    table = connection.ops.quote_name(opts.db_table)
    written = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY goes to psycopg's own cursor, so its errors are turned
            # into Django's here, as for every other statement.
            copy_sql = f"COPY {table} ({quoted}) FROM STDIN"
            with connection.wrap_database_errors, cursor.cursor.copy(copy_sql) as copy:
                for values in database_rows():
                    copy.write_row(values)
                    written += 1
        else:
            batch = list(database_rows())
            placeholders = ", ".join(["%s"] * len(columns))
            insert = f"INSERT INTO {table} ({quoted}) VALUES ({placeholders})"  # noqa: S608
            cursor.executemany(insert, batch)
            written = len(batch)
    return written


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """Return COUNT new primary keys for MODEL, for rows written by insert_rows().

    On PostgreSQL they come from the table's sequence, so other sessions
    never get them. SQLite has one writer at a time: the transaction keeps
    the write lock (the project opens transactions with BEGIN IMMEDIATE),
    so the numbers after the highest ever used stay free until it commits.
    """
    if count == 0:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("reserve_ids() must run inside the transaction of a change.")
    table = model._meta.db_table
    column = model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) "
                "FROM generate_series(1, %s)",
                [connection.ops.quote_name(table), column, count],
            )
            return [row[0] for row in cursor.fetchall()]
        # AUTOINCREMENT never reuses a number, even of a deleted row, and
        # sqlite_sequence contains the highest it handed out.
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        used = cursor.fetchone()
        quoted_column = connection.ops.quote_name(column)
        quoted_table = connection.ops.quote_name(table)
        cursor.execute(f"SELECT MAX({quoted_column}) FROM {quoted_table}")  # noqa: S608
        highest = max(used[0] if used else 0, cursor.fetchone()[0] or 0)
    return list(range(highest + 1, highest + 1 + count))


def id_in(column: str, ids: Sequence[int]) -> tuple[str, list]:
    """Return SQL that tests COLUMN against IDS, and its one parameter.

    One parameter for the whole list, rather than one per id, keeps the
    statement short to build and parse whatever the number of ids.
    """
    quoted = connection.ops.quote_name(column)
    if connection.vendor == "postgresql":
        return f"{quoted} = ANY(%s)", [list(ids)]
    in_list = f"{quoted} IN (SELECT value FROM json_each(%s))"  # noqa: S608
    return in_list, [json.dumps(list(ids))]


def commit_without_waiting_for_disk() -> None:
    """Let PostgreSQL confirm this transaction's commit before writing it to disk.

    Waiting for the disk costs a few milliseconds per commit. If the database
    server itself crashes, the last fraction of a second of such commits may
    be lost, so the caller must be able to redo them. A later ordinary commit
    writes them all to disk. Other sessions see the commit at once either way.
    Does nothing on SQLite.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
