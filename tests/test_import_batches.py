"""New patients and appointments are inserted a chunk at a time."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports.importer import CHUNK_SIZE
from patients.models import Appointment, Patient, PatientIdentifier
from tests.import_files import patient, run_import, write_ndjson

pytestmark = pytest.mark.django_db


def _export(folder, count):
    resources = []
    for number in range(count):
        resources.append(
            patient(
                id=f"p{number}",
                given=(f"Ada{number}",),
                birthDate=(
                    datetime.date(1950, 1, 1) + datetime.timedelta(days=number)
                ).isoformat(),
                identifier=[{"system": "urn:mrn", "value": f"mrn-{number}"}],
            )
        )
        resources.append(
            {
                "resourceType": "Appointment",
                "id": f"a{number}",
                "status": "booked",
                "start": "2027-03-01T09:00:00Z",
                "participant": [{"actor": {"reference": f"Patient/p{number}"}}],
            }
        )
    folder.mkdir(exist_ok=True)
    return write_ndjson(folder / "export.ndjson", resources)


def _queries_to_import(path) -> int:
    with CaptureQueriesContext(connection) as queries:
        summary = run_import(path)
    assert summary.failed == ""
    return len(queries)


def test_queries_do_not_grow_within_a_chunk(tmp_path):
    few = _queries_to_import(_export(tmp_path / "few", 5))
    Patient.objects.all().delete()

    many = _queries_to_import(_export(tmp_path / "many", CHUNK_SIZE - 10))

    assert many == few
    assert Patient.objects.count() == CHUNK_SIZE - 10
    assert Appointment.objects.count() == CHUNK_SIZE - 10
    assert PatientIdentifier.objects.count() == CHUNK_SIZE - 10


def test_known_patient_chunk_saved_singly(tmp_path):
    run_import(write_ndjson(tmp_path / "first.ndjson", [patient(id="p3")]))
    path = _export(tmp_path, 6)

    summary = run_import(path)

    assert summary.patients.created == 5
    assert summary.patients.updated + summary.patients.unchanged == 1
    assert Patient.objects.count() == 6
    assert Appointment.objects.count() == 6


def test_repeated_id_in_a_chunk_updates_the_first(tmp_path):
    path = write_ndjson(
        tmp_path / "twice.ndjson",
        [patient(id="p1", family="Old"), patient(id="p1", family="New")],
    )

    summary = run_import(path)

    assert Patient.objects.get().family_name == "New"
    assert summary.patients.created == 1
    assert summary.patients.updated == 1
