"""Reading many rows at once for an import, and SQLite's settings during one.

The importer writes its new rows with portal.bulk_writes. Here are the
lookups of rows by many keys at once and the SQLite settings of a run.
"""

import contextlib
import datetime

from django.db import connection, models


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
    ``__in`` prepares every value through its field, and that took a large part
    of an import's lookups. Here PostgreSQL gets the values as one array and
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
