"""On PostgreSQL one import runs at a time, so two runs of one export never collide."""

import threading
import time

import psycopg
import pytest
from django.db import connection

from imports import services
from imports.models import ImportRun
from imports.services import IMPORT_LOCK
from patients.models import Patient
from tests.import_files import patient, run_import, write_ndjson

pytestmark = pytest.mark.django_db(transaction=True)


def test_import_waits_for_the_running_one(tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    monkeypatch.setattr(services, "LOCK_POLL_SECONDS", 0.05)
    export = write_ndjson(
        tmp_path / "export.ndjson", [patient(id=f"p{n}") for n in range(3)]
    )
    settings = connection.get_connection_params()
    results = {}

    # Another run, in its own session, holds the lock.
    with psycopg.connect(**settings, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [IMPORT_LOCK])

        def second():
            try:
                results["summary"] = run_import(export)
            finally:
                connection.close()

        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        waiting = ImportRun.objects.filter(progress_at__isnull=False)
        while not waiting.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

        # The waiting run keeps showing progress, and has imported nothing.
        assert waiting.filter(finished_at__isnull=True).exists()
        assert not Patient.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK])

    thread.join(30)
    assert results["summary"].patients.created == 3
    assert results["summary"].skipped_count == 0
