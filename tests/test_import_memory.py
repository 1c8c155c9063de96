"""An import keeps no state per patient in memory, however many patients it reads."""

import pytest

from imports import importer as importer_module
from imports import scratch
from imports.importer import Importer
from patients.models import Patient
from tests.import_files import (
    encounter,
    numbered_patient,
    practitioner,
    write_ndjson,
)

pytestmark = pytest.mark.django_db

CHUNK = 10
PATIENTS = 60


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(importer_module, "CHUNK_SIZE", CHUNK)
    monkeypatch.setattr(scratch, "ENCOUNTER_BUFFER", CHUNK)


def _largest_container(importer: Importer) -> int:
    """Return the length of the longest dict, list or set the importer keeps."""
    owners = [
        importer,
        importer.store,
        importer.store.practitioners,
        importer.scratch,
        importer.summary,
    ]
    return max(
        len(value)
        for owner in owners
        for value in vars(owner).values()
        if isinstance(value, dict | list | set)
    )


def _import_watching_memory(*paths) -> tuple[Importer, int]:
    """Import PATHS; return the importer and its largest container at any moment."""
    largest = 0

    def watch(_progress):
        nonlocal largest
        largest = max(largest, _largest_container(importer))

    importer = Importer(progress=watch, progress_interval=0)
    importer.run([str(path) for path in paths])
    return importer, max(largest, _largest_container(importer))


def _patients(count: int, **fields) -> list[dict]:
    return [numbered_patient(number, **fields) for number in range(count)]


def test_general_practitioners_not_kept_per_patient(tmp_path):
    # The practitioner comes after the patients, so every reference waits
    # until the last file is read.
    gp = [{"reference": "Practitioner/dr1"}]
    path = write_ndjson(
        tmp_path / "export.ndjson",
        [*_patients(PATIENTS, generalPractitioner=gp), practitioner()],
    )

    importer, largest = _import_watching_memory(path)

    assert importer.summary.patients.created == PATIENTS
    assert Patient.objects.filter(primary_provider__fhir_id="dr1").count() == PATIENTS
    assert largest <= CHUNK


def test_encounters_not_kept_per_patient(tmp_path):
    encounters = [
        encounter(f"e{number}", f"Patient/p{number}", "Practitioner/dr1", "2024-01-01")
        for number in range(PATIENTS)
    ]
    path = write_ndjson(
        tmp_path / "export.ndjson", [*_patients(PATIENTS), *encounters, practitioner()]
    )

    importer, largest = _import_watching_memory(path)

    assert importer.summary.patients.created == PATIENTS
    assert Patient.objects.filter(primary_provider__fhir_id="dr1").count() == PATIENTS
    assert largest <= CHUNK


def test_encounter_merges_keep_the_best(tmp_path, monkeypatch):
    # With a buffer of one, every Encounter is merged into the scratch
    # database on its own, so each choice below goes through a merge.
    monkeypatch.setattr(scratch, "ENCOUNTER_BUFFER", 1)
    resources = [
        *_patients(4),
        # p0: the latest check-up wins over a later problem visit.
        encounter("a1", "Patient/p0", "Practitioner/old", "2020-01-05", checkup=True),
        encounter("a2", "Patient/p0", "Practitioner/er", "2024-03-01"),
        encounter("a3", "Patient/p0", "Practitioner/new", "2023-01-05", checkup=True),
        # p1: no check-up, so the latest participant.
        encounter("b1", "Patient/p1", "Practitioner/new", "2021-01-05"),
        encounter("b2", "Patient/p1", "Practitioner/old", "2019-01-05"),
        # p2: a tie goes to the Encounter read later.
        encounter("c1", "Patient/p2", "Practitioner/old", "2022-02-02", checkup=True),
        encounter("c2", "Patient/p2", "Practitioner/new", "2022-02-02", checkup=True),
        # p3: a check-up without a date still beats no check-up.
        encounter("d1", "Patient/p3", "Practitioner/old", "2022-02-02"),
        encounter("d2", "Patient/p3", "Practitioner/new", "not a date", checkup=True),
        practitioner(id="old", npi="1111111111", family="Old"),
        practitioner(id="new", npi="2222222222", family="New"),
        practitioner(id="er", npi="3333333333", family="Er"),
    ]
    path = write_ndjson(tmp_path / "export.ndjson", resources)

    Importer().run([str(path)])

    providers = dict(
        Patient.objects.values_list("source_id", "primary_provider__fhir_id")
    )
    assert providers["p0"] == "new"
    assert providers["p1"] == "new"
    assert providers["p2"] == "new"
    assert providers["p3"] == "new"


def test_dangling_references_listed_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch, "ENCOUNTER_BUFFER", 1)
    resources = [
        *_patients(3, generalPractitioner=[{"reference": "Practitioner/gone"}]),
        encounter("e1", "Patient/nobody", "Practitioner/gone", "2020-01-05"),
        encounter("e2", "Patient/p1", "Practitioner/gone", "2020-01-05"),
        encounter("e3", "Patient/ghost", "Practitioner/gone", "2020-01-05"),
    ]
    path = write_ndjson(tmp_path / "export.ndjson", resources)

    summary = Importer().run([str(path)])

    listed = [(item["line"], item["reference"]) for item in summary.dangling]
    assert listed == [
        (1, "Practitioner/gone"),
        (2, "Practitioner/gone"),
        (3, "Practitioner/gone"),
        (4, "Patient/nobody"),
        (5, "Practitioner/gone"),
        (6, "Patient/ghost"),
    ]
