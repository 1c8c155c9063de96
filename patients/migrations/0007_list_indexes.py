"""PostgreSQL indexes for the onboarding list's descending sorts and name search.

The list sorts blanks last. A plain index gives PostgreSQL a descending
order with blanks first, so each sortable column that may be blank gets an
index in the list's own order (DESC NULLS LAST, then id). The name search
matches any part of search_name (LIKE '%...%'), which only a trigram index
can serve; it needs the pg_trgm extension, which ships with PostgreSQL's
contrib modules and which the database owner may create. Without it the
search still works, by reading the whole table.

SQLite keeps blanks last in a descending order by itself and rejects NULLS
LAST in an index, so nothing is created there. The indexes are not in the
model's Meta.indexes for that reason.
"""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger(__name__)

DESCENDING_INDEXES = {
    "patient_dob_desc_idx": "birth_date DESC NULLS LAST, id DESC",
    "patient_invite_desc_idx": "last_invite_sent_at DESC NULLS LAST, id DESC",
    "patient_login_desc_idx": "last_login_at DESC NULLS LAST, id DESC",
}
TRIGRAM_INDEX = "patient_search_trgm_idx"


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, columns in DESCENDING_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON patients_patient ({columns})"
        )
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as error:
        logger.warning(
            "The pg_trgm extension could not be created (%s), so the name search "
            "reads the whole patient table. To speed it up, have a superuser run "
            "CREATE EXTENSION pg_trgm, then CREATE INDEX %s ON patients_patient "
            "USING gin (search_name gin_trgm_ops).",
            error,
            TRIGRAM_INDEX,
        )
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON patients_patient "
        "USING gin (search_name gin_trgm_ops)"
    )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in [*DESCENDING_INDEXES, TRIGRAM_INDEX]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0006_bulk_job"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
