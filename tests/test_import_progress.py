"""Progress of an import: the importer's hook, the command's bar, the stored fields."""

import io
import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from imports.importer import Importer
from imports.models import ImportRun
from imports.services import import_patients
from tests.import_files import patient, practitioner, write_ndjson

pytestmark = pytest.mark.django_db

PATIENTS = 300
# What the bar draws: "  42%|████      | 1.20k/2.85k [...]".
PERCENT = re.compile(r"(\d+)%\|")


def _patients(count=PATIENTS):
    """Return Patients whose names, emails and birth dates are easy to look for."""
    return [
        patient(
            id=f"pt{number}",
            family=f"Familyname{number}",
            given=(f"Givenname{number}",),
            birthDate=f"19{50 + number % 40}-0{1 + number % 9}-1{number % 10}",
            telecom=[
                {"system": "email", "value": f"person{number}@example.org"},
            ],
        )
        for number in range(count)
    ]


def _appointment(id, patient_id):
    return {
        "resourceType": "Appointment",
        "id": id,
        "status": "booked",
        "start": "2030-01-02T09:00:00Z",
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}}],
    }


@pytest.fixture
def export(tmp_path):
    return write_ndjson(tmp_path / "Patient.ndjson", _patients())


@pytest.fixture
def every_record(monkeypatch):
    """Redraw the bar at every record, so that a small file shows many steps."""
    monkeypatch.setattr(
        "imports.management.commands.import_patients.BAR_REFRESH_SECONDS", 0
    )


def _run_command(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_patients", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


# --- The importer's hook ---


def test_importer_reports_bytes_of_files(tmp_path):
    path = write_ndjson(tmp_path / "Patient.ndjson", _patients(50))
    reports = []

    summary = Importer(progress=reports.append, progress_interval=0).run([str(path)])

    size = path.stat().st_size
    done = [report.bytes_done for report in reports]
    assert done == sorted(done)
    assert 0 < done[len(done) // 2] < size
    assert reports[-1].final
    assert reports[-1].bytes_done == reports[-1].bytes_total == size
    assert reports[-1].records_done == summary.records_read == 50
    assert reports[-1].patients_done == 50


def test_second_pass_adds_to_total(tmp_path):
    patients = write_ndjson(tmp_path / "Patient.ndjson", _patients(5))
    appointments = write_ndjson(
        tmp_path / "Appointment.ndjson",
        [_appointment(f"a{n}", f"pt{n}") for n in range(5)],
    )
    reports = []

    Importer(progress=reports.append, progress_interval=0).run([str(tmp_path)])

    first_pass = patients.stat().st_size + appointments.stat().st_size
    both_passes = first_pass + appointments.stat().st_size
    assert reports[0].bytes_total == first_pass
    assert reports[-1].bytes_total == both_passes
    assert reports[-1].bytes_done == both_passes


def test_csv_bytes_are_counted(tmp_path):
    path = tmp_path / "patients.csv"
    rows = [f"id{n},Family{n},Given{n},1980-01-0{1 + n % 9}" for n in range(40)]
    path.write_text(
        "identifier,family_name,given_names,birth_date\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    reports = []

    Importer(progress=reports.append, progress_interval=0).run([str(path)])

    assert any(0 < r.bytes_done < path.stat().st_size for r in reports)
    assert reports[-1].bytes_done == path.stat().st_size
    assert reports[-1].patients_done == 40


def test_interval_limits_reports(tmp_path):
    path = write_ndjson(tmp_path / "Patient.ndjson", _patients(50))
    reports = []

    Importer(progress=reports.append, progress_interval=3600).run([str(path)])

    # The first report, when the file starts, and the final one.
    assert len(reports) == 2
    assert reports[0].bytes_done == 0
    assert reports[1].final


# --- The command's progress bar ---


def test_progress_bar_advances_to_100(export, every_record):
    _, err = _run_command(str(export), "--progress")

    percents = [int(value) for value in PERCENT.findall(err)]
    assert len(set(percents)) > 3
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert f"{PATIENTS} records" in err
    assert "patients/s" in err


def test_progress_bar_shows_no_patient_data(export, every_record):
    _, err = _run_command(str(export), "--progress")

    assert PERCENT.search(err)
    for number in range(PATIENTS):
        assert f"Familyname{number}" not in err
        assert f"Givenname{number}" not in err
        assert f"person{number}@" not in err
    assert not re.search(r"19\d\d-\d\d-\d\d", err)
    assert "Patient.ndjson" not in err


def test_json_output_stays_json(export, every_record):
    out, err = _run_command(str(export), "--progress", "--json")

    summary = json.loads(out)
    assert summary["patients"]["created"] == PATIENTS
    assert PERCENT.search(err)


def test_no_bar_when_stderr_is_not_terminal(export):
    _, err = _run_command(str(export))

    assert not PERCENT.search(err)


def test_bar_by_default_on_terminal(export):
    err = _Terminal()
    call_command("import_patients", str(export), stdout=io.StringIO(), stderr=err)

    assert PERCENT.findall(err.getvalue())[-1] == "100"


def test_no_progress_option_on_terminal(export):
    err = _Terminal()
    call_command(
        "import_patients",
        str(export),
        "--no-progress",
        stdout=io.StringIO(),
        stderr=err,
    )

    assert not PERCENT.search(err.getvalue())


# --- Progress stored on the ImportRun ---


def test_run_records_final_progress(export):
    run, summary = import_patients([str(export)])

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FINISHED
    assert run.bytes_total == export.stat().st_size
    assert run.bytes_done == run.bytes_total
    assert run.records_done == summary.records_read == PATIENTS
    assert run.patients_done == PATIENTS
    assert run.finished_at is not None
    assert run.error == ""


def test_progress_fields_advance_during_run(export, settings):
    settings.IMPORT_PROGRESS_SECONDS = 0
    seen = []

    def look_at_database(progress):
        # Called just before each write, so the row contains the write before it.
        run = ImportRun.objects.order_by("-pk").first()
        seen.append((run.bytes_done, run.records_done, run.status))

    import_patients([str(export)], progress=look_at_database, progress_interval=0)

    size = export.stat().st_size
    in_between = [(b, r) for b, r, _ in seen if 0 < b < size]
    assert in_between, "no progress was stored while the file was read"
    assert [b for b, _, _ in seen] == sorted(b for b, _, _ in seen)
    assert {status for _, _, status in seen} == {ImportRun.Status.RUNNING}
    assert max(r for _, r in in_between) > 0


@pytest.mark.django_db(transaction=True)
def test_progress_written_outside_chunk_transactions(tmp_path, settings):
    settings.IMPORT_PROGRESS_SECONDS = 0
    path = write_ndjson(tmp_path / "export.ndjson", [practitioner(), *_patients(1200)])
    inside_transaction = []

    def check(progress):
        inside_transaction.append(connection.in_atomic_block)

    import_patients([str(path)], progress=check, progress_interval=0)

    # Chunks of 500 patients were saved while the file was read, and no
    # report came from inside one, so each progress write commits at once.
    assert len(inside_transaction) > 1000
    assert not any(inside_transaction)


def test_nothing_read_fails_in_words(tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text("{not json", encoding="utf-8")

    run, _ = import_patients([str(path)])

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert run.error.startswith("Nothing was imported.")
    assert "invalid JSON at line 1" in run.error
    assert "import it again" in run.error


def test_command_on_unmigrated_database_says_to_migrate(tmp_path):
    export = write_ndjson(tmp_path / "export.ndjson", [patient(id="p1")])
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}",
    }

    finished = subprocess.run(
        [sys.executable, "manage.py", "import_patients", str(export)],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 1
    assert "is not migrated. Run `manage.py migrate` first" in finished.stderr
    assert "Traceback" not in finished.stderr
