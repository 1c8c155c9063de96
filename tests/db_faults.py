"""Make the database itself refuse a write, to test how the product copes.

The trigger lives inside the test's transaction, so it disappears with the
rollback at the end of the test on both SQLite and PostgreSQL.
"""

from django.db import connection

MESSAGE = "rejected by test trigger"


def reject_writes(name: str, *, event: str, table: str, when: str = "") -> None:
    """Refuse EVENT (such as "INSERT" or "UPDATE OF column") on TABLE.

    WHEN is an optional condition on NEW, written the same on both databases.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            condition = f"WHEN {when} " if when else ""
            cursor.execute(
                f"CREATE TEMP TRIGGER {name} BEFORE {event} ON {table} "
                f"{condition}BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
            return
        cursor.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
            # A check violation, so that Django raises IntegrityError as it
            # does for SQLite's RAISE(ABORT).
            f"AS $$ BEGIN RAISE EXCEPTION '{MESSAGE}' "
            "USING ERRCODE = 'check_violation'; END $$"
        )
        condition = f"WHEN ({when}) " if when else ""
        cursor.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
            f"{condition}EXECUTE FUNCTION {name}()"
        )


def allow_writes(name: str, *, table: str) -> None:
    """Remove a trigger that reject_writes added."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER {name}")
        else:
            cursor.execute(f"DROP TRIGGER {name} ON {table}")
