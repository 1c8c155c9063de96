"""Import every public sample export and check the counts against the files.

Expected numbers are computed here by reading the files with the json module,
independently of the importer.
"""

import datetime
import json
from collections import Counter

import pytest

from audit.models import AuditEvent
from imports.models import ImportRun
from patients.models import Appointment, Patient, Practitioner
from tests.import_files import run_import
from tests.sample_data import SAMPLE_FHIR as DATA
from tests.sample_data import require_sample_data

NPI = "http://hl7.org/fhir/sid/us-npi"
CHECKUP_CODES = {"185349003", "162673000", "410620009", "86013001"}

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module", autouse=True)
def _sample_data():
    require_sample_data()


def _resources():
    """Yield (resource, fullUrl) for every resource in the sample files."""
    for path in sorted(DATA.rglob("*")):
        if path.suffix == ".json":
            document = json.loads(path.read_text(encoding="utf-8"))
            if document["resourceType"] == "Bundle":
                for entry in document.get("entry", []):
                    if "resource" in entry:
                        yield entry["resource"], entry.get("fullUrl", "")
            else:
                yield document, ""
        elif path.suffix == ".ndjson":
            for line in path.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                if "resourceType" in item:
                    yield item, ""


def _records_in_files():
    """Count every bundle entry and NDJSON line, with a resource or without."""
    count = 0
    for path in DATA.rglob("*"):
        if path.suffix == ".json":
            document = json.loads(path.read_text(encoding="utf-8"))
            bundle = document["resourceType"] == "Bundle"
            count += len(document.get("entry", [])) if bundle else 1
        elif path.suffix == ".ndjson":
            lines = path.read_text(encoding="utf-8").splitlines()
            count += sum(1 for line in lines if line.strip())
    return count


def _patient_key(resource, full_url):
    return resource.get("id") or full_url.removeprefix("urn:uuid:")


def _expected():
    patients = set()
    practitioner_keys = set()
    types = Counter()
    deceased = set()
    with_email = set()
    for resource, full_url in _resources():
        kind = resource["resourceType"]
        types[kind] += 1
        if kind == "Patient":
            key = _patient_key(resource, full_url)
            patients.add(key)
            if resource.get("deceasedDateTime") or resource.get("deceasedBoolean"):
                deceased.add(key)
            if any(t.get("system") == "email" for t in resource.get("telecom", [])):
                with_email.add(key)
        elif kind == "Practitioner":
            npis = [
                i["value"] for i in resource.get("identifier", []) if i["system"] == NPI
            ]
            practitioner_keys.add(npis[0] if npis else resource["id"])
    return {
        "patients": patients,
        "practitioners": practitioner_keys,
        "types": types,
        "deceased": deceased,
        "with_email": with_email,
    }


@pytest.fixture(scope="module")
def expected():
    return _expected()


def test_sample_import_counts_match_files(expected):
    summary = run_import(DATA)

    files = [p for p in DATA.rglob("*") if p.suffix in (".json", ".ndjson")]
    assert summary.files_read == len(files)
    assert summary.patients.created == len(expected["patients"])
    assert Patient.objects.count() == len(expected["patients"])
    assert summary.practitioners.created == len(expected["practitioners"])
    assert summary.practitioners.updated == 0
    assert summary.practitioners.unchanged == 0
    assert Practitioner.objects.count() == len(expected["practitioners"])
    assert summary.appointments.created == expected["types"]["Appointment"]
    assert Appointment.objects.count() == expected["types"]["Appointment"]
    assert summary.records_read == _records_in_files()
    assert summary.records_read > sum(expected["types"].values())
    assert summary.dangling_count == 0


def test_sample_import_reports_unused_types(expected):
    summary = run_import(DATA)

    used = {"Patient", "Practitioner", "PractitionerRole", "Encounter", "Appointment"}
    unused = {k: v for k, v in expected["types"].items() if k not in used}
    assert dict(summary.other_resources) == unused


def test_sample_import_derives_deceased_and_email(expected):
    run_import(DATA)

    assert set(
        Patient.objects.filter(deceased=True).values_list("source_id", flat=True)
    ) == set(expected["deceased"])
    assert set(
        Patient.objects.exclude(email="").values_list("source_id", flat=True)
    ) == set(expected["with_email"])
    assert not Patient.objects.exclude(email="").filter(email_valid=False).exists()


def test_sample_import_skips_bulk_log_lines():
    summary = run_import(DATA)

    log_lines = [
        item for item in summary.skipped if item["file"].endswith("log.ndjson")
    ]
    assert [item["line"] for item in log_lines] == [1, 2, 3, 4]
    assert all("no resourceType" in item["reason"] for item in log_lines)


def _latest_checkup_npis():
    """Map each bulk patient id to the NPI of their latest check-up's performer."""
    latest = {}
    lines = (DATA / "synthea_bulk_ndjson_10" / "Encounter.000.ndjson").read_text()
    for line in lines.splitlines():
        encounter = json.loads(line)
        codes = {c["code"] for t in encounter["type"] for c in t["coding"]}
        if not codes & CHECKUP_CODES:
            continue
        patient_id = encounter["subject"]["reference"].split("/")[1]
        performer = encounter["participant"][0]["individual"]["reference"]
        start = datetime.datetime.fromisoformat(encounter["period"]["start"])
        if patient_id not in latest or start > latest[patient_id][0]:
            latest[patient_id] = (start, performer.rsplit("|", 1)[1])
    return {patient_id: npi for patient_id, (_, npi) in latest.items()}


def test_bulk_patients_get_latest_checkup_performer():
    run_import(DATA)

    expected = _latest_checkup_npis()
    assert expected
    for patient_id, npi in expected.items():
        patient = Patient.objects.get(source="fhir", source_id=patient_id)
        assert patient.primary_provider is not None, patient_id
        assert patient.primary_provider.npi == npi, patient_id


def test_smart_patients_get_general_practitioner():
    run_import(DATA)

    patient = Patient.objects.get(source_id="smart-1098667")
    assert patient.primary_provider.fhir_id == "smart-Practitioner-71081332"


def test_sample_reimport_changes_nothing():
    run_import(DATA)
    updated = dict(Patient.objects.values_list("pk", "updated_at"))
    audit_rows = AuditEvent.objects.count()

    summary = run_import(DATA)

    assert summary.patients.created == 0
    assert summary.patients.updated == 0
    assert summary.patients.unchanged == len(updated)
    assert summary.practitioners.created == 0
    assert summary.practitioners.updated == 0
    assert summary.appointments.unchanged == Appointment.objects.count()
    assert summary.providers_set == 0
    assert summary.tags_added == 0
    assert dict(Patient.objects.values_list("pk", "updated_at")) == updated
    assert AuditEvent.objects.count() == audit_rows + 1
    assert AuditEvent.objects.first().action == AuditEvent.Action.IMPORT
    assert ImportRun.objects.count() == 2
