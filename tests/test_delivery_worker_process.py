"""The real worker process: ``manage.py run_worker`` sends queued invitations.

This runs the product as a practice would, in separate processes against a
file SQLite database, with mail going to the test's SMTP server on 127.0.0.1.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CREATE_INVITATIONS = """
import datetime
from patients.models import Patient
from invitations.services import send_invitations
for number, address in enumerate(["ada@example.org", "bo@example.org"]):
    patient = Patient(
        source="test",
        source_id=str(number),
        portal_access=True,
        birth_date=datetime.date(1970 + number, 1, 2),
    )
    patient.set_name("Okonkwo", "Adaeze")
    patient.set_email(address)
    patient.save()
send_invitations(Patient.objects.all(), actor=None)
"""


@pytest.fixture
def manage(tmp_path, smtp_server):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}?timeout=5",
        "PORTAL_BASE_URL": "http://portal.test",
        "PRACTICE_NAME": "Riverside Family Practice",
    }

    def run(*arguments: str) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        return completed

    return run


def test_worker_process_sends_queued_invitations(manage, smtp_server):
    manage("migrate", "--no-input")
    manage("shell", "--no-imports", "-c", CREATE_INVITATIONS)
    assert smtp_server.messages == []

    worker = manage("run_worker", "--batch", "--no-startup-delay", "--no-reload")

    assert len(smtp_server.messages_to("ada@example.org")) == 1
    assert len(smtp_server.messages_to("bo@example.org")) == 1
    assert smtp_server.connections == 1
    output = worker.stdout + worker.stderr
    assert "Delivery finished: 2 sent" in output
    assert "@" not in output
    assert "Adaeze" not in output
