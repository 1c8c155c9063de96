"""Create the table of Django's database cache (CACHE_URL=db://).

The table is created whatever CACHES says when migrate runs, so that a site
can switch to CACHE_URL=db:// later without another step. Django's own
createcachetable builds it, so the columns are the ones DatabaseCache expects.
"""

from django.core.management.commands.createcachetable import Command
from django.db import migrations

from config.caches import CACHE_TABLE


def create_cache_table(apps, schema_editor):
    command = Command()
    command.verbosity = 0
    # Does nothing when the table exists, for example after createcachetable.
    command.create_table(schema_editor.connection.alias, CACHE_TABLE, dry_run=False)


def drop_cache_table(apps, schema_editor):
    table = schema_editor.quote_name(CACHE_TABLE)
    schema_editor.execute(f"DROP TABLE IF EXISTS {table}")


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_email_change_request"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, drop_cache_table, elidable=False),
    ]
