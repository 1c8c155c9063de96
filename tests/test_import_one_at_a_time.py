"""On PostgreSQL one import runs at a time, so two runs of one export never collide."""

import threading
import time

import psycopg
import pytest
from django.db import connection

from imports.services import IMPORT_LOCK
from patients.models import Patient
from tests.import_files import patient, run_import, write_ndjson

pytestmark = pytest.mark.django_db(transaction=True)


def _sessions_waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def test_import_waits_for_the_running_one(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
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
        while not _sessions_waiting_for_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)

        assert _sessions_waiting_for_a_lock() == 1
        assert not Patient.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK])

    thread.join(30)
    assert results["summary"].patients.created == 3
    assert results["summary"].skipped_count == 0
