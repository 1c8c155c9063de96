"""On PostgreSQL, the application's role cannot change or delete audit events.

The test makes its own database and role on the PostgreSQL server named by
TEST_DATABASE_URL (default: postgres://postgres@127.0.0.1:5432/postgres),
migrates it as the owner, grants the application role with grant_app_role,
and then tries each change as that role and as the owner. It is skipped
when no server accepts a connection, unless the CI environment variable is set.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

psycopg = pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parent.parent
# The server of TEST_DATABASE_URL, reached through its "postgres" database,
# since the database that URL names need not exist.
SERVER = urlunsplit(
    urlsplit(
        os.environ.get(
            "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        )
    )._replace(path="/postgres")
)

SETUP = """
from django.db import transaction
from audit.services import record
from audit.models import AuditEvent
from django.contrib.auth import get_user_model
from patients.models import Patient
patient = Patient(source="pg", source_id="1")
patient.set_name("Lind", "Ada")
patient.save()
user = get_user_model().objects.create_user("clerk", password="x" * 20)
with transaction.atomic():
    record(AuditEvent.Action.LOGIN, actor=user, patient=patient)
print("ready")
"""

DELETE_PATIENT_AND_USER = """
from django.contrib.auth import get_user_model
from audit.models import AuditEvent
from patients.models import Patient
Patient.objects.all().delete()
get_user_model().objects.all().delete()
event = AuditEvent.objects.get()
print(event.patient_id, event.actor_id, event.actor_label)
"""

BULK_ACTIONS = """
import datetime
from audit.models import AuditEvent
from django.contrib.auth import get_user_model
from invitations.models import Invitation
from invitations.services import send_invitations
from patients.models import Patient
from patients.services import enable_access
for number in range(3):
    patient = Patient(
        source="pg", source_id=str(number), birth_date=datetime.date(1980, 1, 1)
    )
    patient.set_name("Lind", f"Ada{number}")
    patient.set_email(f"ada{number}@example.org")
    patient.save()
user = get_user_model().objects.create_user("clerk", password="x" * 20)
enabled = enable_access(Patient.objects.all(), actor=user)
invited = send_invitations(Patient.objects.all(), actor=user)
print(enabled.eligible, invited.eligible, Invitation.objects.count(),
      AuditEvent.objects.count())
"""


def _url(base: str, *, database: str, user: str = "", password: str = "") -> str:
    parts = urlsplit(base)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    if user:
        netloc = f"{user}:{password}@{netloc}" if password else f"{user}@{netloc}"
    elif parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", "", ""))


@pytest.fixture
def server():
    try:
        connection = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        reason = f"No PostgreSQL server at {SERVER}: {error}. Set TEST_DATABASE_URL."
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    suffix = secrets.token_hex(4)
    database, role, password = (
        f"portal_audit_{suffix}",
        f"portal_app_{suffix}",
        (secrets.token_urlsafe(16)),
    )
    connection.execute(f'CREATE DATABASE "{database}"')
    connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    yield database, role, password
    connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    connection.execute(f"DROP ROLE IF EXISTS {role}")
    connection.close()


def _manage(database_url: str, *arguments: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": database_url,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _migrate_and_grant(server) -> tuple[str, str]:
    """Migrate the database and grant the role; return the owner's and role's URLs."""
    database, role, password = server
    owner_url = _url(SERVER, database=database)
    app_url = _url(SERVER, database=database, user=role, password=password)
    assert _manage(owner_url, "migrate", "--no-input").returncode == 0
    granted = _manage(owner_url, "grant_app_role", role)
    assert granted.returncode == 0, granted.stderr
    return owner_url, app_url


def test_app_role_cannot_change_audit_events(server):
    owner_url, app_url = _migrate_and_grant(server)
    setup = _manage(app_url, "shell", "--no-imports", "-c", SETUP)
    assert setup.stdout.strip() == "ready", setup.stderr

    with psycopg.connect(app_url.replace("postgres://", "postgresql://")) as app:
        for statement in (
            "UPDATE audit_auditevent SET action = 'logout'",
            "UPDATE audit_auditevent SET patient_id = NULL",
            "UPDATE audit_auditevent SET actor_id = NULL",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
            app.rollback()

    with psycopg.connect(owner_url.replace("postgres://", "postgresql://")) as owner:
        for statement in (
            "UPDATE audit_auditevent SET action = 'logout'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                owner.execute(statement)
            owner.rollback()

    # Deleting a patient clears their events' link, so only the owner can.
    refused = _manage(app_url, "shell", "--no-imports", "-c", DELETE_PATIENT_AND_USER)
    assert refused.returncode != 0
    assert "permission denied for table audit_auditevent" in refused.stderr
    deleted = _manage(owner_url, "shell", "--no-imports", "-c", DELETE_PATIENT_AND_USER)
    assert deleted.stdout.split() == ["None", "None", "clerk"], deleted.stderr


def test_app_role_can_run_bulk_actions(server):
    _, app_url = _migrate_and_grant(server)

    # Bulk actions write with COPY and take invitation ids from the sequence.
    done = _manage(app_url, "shell", "--no-imports", "-c", BULK_ACTIONS)

    assert done.stdout.split() == ["3", "3", "3", "6"], done.stderr
