"""On PostgreSQL, a trigger refuses to change or delete audit events.

It holds for every database role, the table's owner included, until someone
with the right to drop triggers removes it. The one update let through is
the clearing of the link to a deleted patient or user, which Django issues
for on_delete=SET_NULL. SQLite gets nothing here: the application's own
guard in audit/models.py is all there is.
"""

from django.db import migrations

CREATE = [
    """
CREATE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND NEW.id = OLD.id
        AND NEW.created_at = OLD.created_at
        AND NEW.actor_label = OLD.actor_label
        AND NEW.action = OLD.action
        AND NEW.outcome = OLD.outcome
        AND NEW.detail = OLD.detail
        AND (NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id OR NEW.actor_id IS NULL)
        AND (NEW.patient_id IS NOT DISTINCT FROM OLD.patient_id OR NEW.patient_id IS NULL)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'Audit events are append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
""",
    """
CREATE TRIGGER audit_event_no_change
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
""",
    """
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()
""",
]

DROP = [
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent",
    "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_auditevent",
    "DROP FUNCTION IF EXISTS audit_event_append_only()",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_email_change_request")]

    operations = [migrations.RunPython(create, drop)]
