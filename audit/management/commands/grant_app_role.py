"""Give the web and worker processes' PostgreSQL role what it needs, and no more."""

import re

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Command(BaseCommand):
    help = (
        "On PostgreSQL, grant ROLE the rights the application needs on this "
        "database's tables, except changing or deleting audit events. Run it as "
        "the role that owns the tables (the one that runs migrate), after each "
        "migrate."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", help="The role the application connects as.")

    def handle(self, *args, role, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                f"grant_app_role works on PostgreSQL; this database is "
                f"{connection.vendor}. SQLite has no roles."
            )
        if not ROLE_NAME.match(role):
            raise CommandError(
                f"{role!r} is not a plain role name. Use lower-case letters, "
                "digits and underscores."
            )
        name = connection.ops.quote_name(role)
        database = connection.ops.quote_name(connection.settings_dict["NAME"])
        statements = [
            f"GRANT CONNECT ON DATABASE {database} TO {name}",
            f"GRANT USAGE ON SCHEMA public TO {name}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
            f"TO {name}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}",
            # Audit events are only read and added. Deleting a patient or a
            # user clears their audit events' link to them, so that is left to
            # the owner role too. The application never deletes either.
            f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent FROM {name}",
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(
            f"Granted {role} the application's rights; it cannot change or delete "
            "audit events."
        )
