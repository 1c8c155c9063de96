"""New patients and appointments are inserted a chunk at a time."""

import datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from imports import importer, services
from imports.importer import CHUNK_SIZE
from imports.store import Store
from patients.models import Appointment, Patient, PatientIdentifier, Practitioner, Tag
from tests.import_files import (
    numbered_patient,
    patient,
    practitioner,
    run_import,
    write_ndjson,
)

pytestmark = pytest.mark.django_db


def _export(folder, count):
    resources = []
    for number in range(count):
        resources.append(
            numbered_patient(
                number, identifier=[{"system": "urn:mrn", "value": f"mrn-{number}"}]
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


def _varied_export(folder):
    tag = {"tag": [{"system": "urn:tags", "code": "dm", "display": "Diabetes"}]}
    resources = [
        patient(
            id="tagged",
            family="Sørensen",
            given=("Åse",),
            meta=tag,
            identifier=[
                {"system": "urn:mrn", "value": "m1"},
                {"system": "urn:other", "value": "m1"},
            ],
            telecom=[{"system": "email", "value": " Ase@Example.org "}],
            generalPractitioner=[{"reference": "Practitioner/dr1"}],
        ),
        patient(id="bad-email", telecom=[{"system": "email", "value": "not mail"}]),
        patient(id="given-only", family="", given=("Prince",)),
        patient(id="partial-birth", birthDate="1980-05"),
        patient(id="died", deceasedDateTime="2021-03-04T05:06:07+02:00"),
        patient(id="died-year", deceasedDateTime="2021", active=False),
        patient(id="died-flag", deceasedBoolean=True),
        practitioner(),
        {
            "resourceType": "Appointment",
            "id": "a1",
            "status": "booked",
            "start": "2027-03-01T09:00:00+02:00",
            "end": "2027-03-01T09:20:00.250000Z",
            "participant": [
                {"actor": {"reference": "Patient/tagged"}},
                {"actor": {"reference": "Practitioner/dr1"}},
            ],
        },
        {
            "resourceType": "Appointment",
            "id": "a2",
            "status": "cancelled",
            "start": "2027-03-02",
            "participant": [{"actor": {"reference": "Patient/died"}}],
        },
        {
            "resourceType": "Appointment",
            "id": "a3",
            "status": "booked",
            "participant": [
                {"actor": {"reference": "Patient/died-flag"}},
                {"actor": {"reference": "Practitioner/nobody"}},
            ],
        },
    ]
    folder.mkdir(exist_ok=True)
    return write_ndjson(folder / "export.ndjson", resources)


# Keys and timestamps differ between two imports of the same file; the
# primary provider is compared by its FHIR id instead.
SET_BY_THE_DATABASE = ("id", "created_at", "updated_at", "primary_provider_id")


def _saved_rows() -> dict:
    """Return every imported row by source id, without keys or timestamps."""
    patient_fields = [
        field.attname
        for field in Patient._meta.concrete_fields
        if field.attname
        not in ("id", "created_at", "updated_at", "primary_provider_id")
    ]
    return {
        "patients": list(
            Patient.objects.order_by("source_id").values_list(
                *patient_fields, "primary_provider__fhir_id"
            )
        ),
        "identifiers": sorted(
            PatientIdentifier.objects.values_list(
                "patient__source_id", "system", "value"
            )
        ),
        "tags": sorted(
            Patient.tags.through.objects.values_list("patient__source_id", "tag__name")
        ),
        "appointments": list(
            Appointment.objects.order_by("source_id").values_list(
                "source",
                "source_id",
                "patient__source_id",
                "status",
                "start",
                "end",
                "practitioner__fhir_id",
            )
        ),
    }


def test_fast_path_rows_match_one_by_one(tmp_path, monkeypatch):
    path = _varied_export(tmp_path)
    together = []
    save_new_patients = Store.save_new_patients
    save_appointments = Store.save_appointments_together

    def spy_patients(self, items, context):
        together.append(save_new_patients(self, items, context))
        return together[-1]

    def spy_appointments(self, items, context):
        together.append(save_appointments(self, items, context))
        return together[-1]

    monkeypatch.setattr(Store, "save_new_patients", spy_patients)
    monkeypatch.setattr(Store, "save_appointments_together", spy_appointments)
    fast_summary = run_import(path)
    fast = _saved_rows()
    Patient.objects.all().delete()
    Practitioner.objects.all().delete()
    Tag.objects.all().delete()

    monkeypatch.setattr(Store, "save_new_patients", lambda *_: None)
    monkeypatch.setattr(Store, "save_appointments_together", lambda *_: None)
    slow_summary = run_import(path)
    slow = _saved_rows()

    assert len(together) == 2
    assert None not in together
    assert len(fast["patients"]) == 7
    assert len(fast["appointments"]) == 3
    assert fast["patients"] == slow["patients"]
    assert fast["identifiers"] == slow["identifiers"]
    assert fast["tags"] == slow["tags"]
    assert fast["appointments"] == slow["appointments"]
    assert fast_summary.as_dict() == slow_summary.as_dict()


def test_practitioner_file_read_first(tmp_path):
    reference = {"reference": "Practitioner/dr1"}
    write_ndjson(
        tmp_path / "Patient.ndjson",
        [
            patient(id="p1", generalPractitioner=[reference]),
            patient(id="p2", generalPractitioner=[reference]),
        ],
    )
    write_ndjson(tmp_path / "Practitioner.ndjson", [practitioner()])
    table = Patient._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        summary = run_import(tmp_path)

    updates = [query["sql"] for query in queries if f'UPDATE "{table}"' in query["sql"]]
    assert summary.providers_set == 2
    assert Patient.objects.filter(primary_provider__fhir_id="dr1").count() == 2
    # The providers were inserted with the patients.
    assert updates == []


def _appointment(id, patient_id, start):
    return {
        "resourceType": "Appointment",
        "id": id,
        "status": "booked",
        "start": start,
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}}],
    }


def test_first_import_repeats_across_chunks(tmp_path, monkeypatch):
    # Chunks of two, so that each repeat comes in a later chunk than the
    # record it repeats, when the database was empty at the start.
    monkeypatch.setattr(importer, "CHUNK_SIZE", 2)
    shared = [{"system": "urn:mrn", "value": "shared"}]
    path = write_ndjson(
        tmp_path / "export.ndjson",
        [
            patient(id="p1", family="Old"),
            patient(id="p2", identifier=shared),
            patient(id="p3"),
            patient(id="p1", family="New"),
            patient(id="p4", identifier=shared),
            _appointment("a1", "p1", "2027-03-01T09:00:00Z"),
            _appointment("a2", "p2", "2027-03-01T10:00:00Z"),
            _appointment("a3", "p3", "2027-03-01T11:00:00Z"),
            _appointment("a1", "p1", "2027-03-02T09:00:00Z"),
        ],
    )

    summary = run_import(path)

    # p4 has p2's identifier, so it is taken as the same patient.
    assert summary.patients.as_dict() == {"created": 3, "updated": 1, "unchanged": 1}
    assert summary.appointments.as_dict() == {
        "created": 3,
        "updated": 1,
        "unchanged": 0,
    }
    assert Patient.objects.count() == 3
    assert Patient.objects.get(source_id="p1").family_name == "New"
    assert PatientIdentifier.objects.get(value="shared").patient.source_id == "p2"
    moved = Appointment.objects.get(source_id="a1")
    assert moved.start == datetime.datetime(2027, 3, 2, 9, tzinfo=datetime.UTC)


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_new_chunks_commit_without_waiting(tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is a PostgreSQL setting")
    seen = {"chunks": [], "finish": None}
    commit_without_waiting = importer.commit_without_waiting_for_disk
    finish_run = services._finish_run

    def watch_chunk():
        commit_without_waiting()
        seen["chunks"].append(_synchronous_commit())

    def watch_finish(run, *args, **kwargs):
        with transaction.atomic():
            seen["finish"] = _synchronous_commit()
            return finish_run(run, *args, **kwargs)

    monkeypatch.setattr(importer, "commit_without_waiting_for_disk", watch_chunk)
    monkeypatch.setattr(services, "_finish_run", watch_finish)
    # Whatever the server's default, as a throwaway test cluster may differ.
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO on")
    try:
        first = run_import(_export(tmp_path / "first", 3))
        new_chunks = len(seen["chunks"])
        # The same patients again, one with a new address: saved one by one,
        # and the change queues a notice to the old address.
        export = _export(tmp_path / "second", 3)
        export.write_text(
            export.read_text().replace(
                '"p0"',
                '"p0", "telecom": [{"system": "email", "value": "moved@example.org"}]',
                1,
            )
        )
        second = run_import(export)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")

    assert first.patients.created == 3
    # Chunks of new rows may be lost to a server crash and are imported
    # again. The run's last commit waits for the disk, and with it theirs.
    assert new_chunks >= 1
    assert set(seen["chunks"]) == {"off"}
    assert seen["finish"] == "on"
    # One chunk of patients and one of appointments each time. The patients
    # that changed an email address now commit as usual; the appointments,
    # which send nothing, still do not wait.
    assert new_chunks == 2
    assert second.patients.updated == 1
    assert len(seen["chunks"]) == new_chunks + 1
    assert Patient.objects.get(source_id="p0").email == "moved@example.org"
