"""The demo practice export: valid FHIR R4 NDJSON with the variety a demo needs."""

import datetime
import io
import json
from collections import Counter

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from demo.generator import DEMO_DOMAINS, build_export, npi_with_check_digit
from patients.models import Appointment, Patient, Practitioner

TODAY = datetime.date(2026, 12, 4)
FILES = [
    "Patient.ndjson",
    "Practitioner.ndjson",
    "PractitionerRole.ndjson",
    "Group.ndjson",
    "Appointment.ndjson",
    "Encounter.ndjson",
]


def read_ndjson(path):
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo-export")
    call_command("generate_demo", str(folder), "--seed", "7")
    return folder


@pytest.fixture(scope="module")
def patients(export_dir):
    return read_ndjson(export_dir / "Patient.ndjson")


def emails_of(patient):
    return [t["value"] for t in patient.get("telecom", []) if t["system"] == "email"]


def age_of(patient, today):
    born = datetime.date.fromisoformat(patient["birthDate"])
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def test_export_has_file_per_type(export_dir):
    for name in FILES:
        resources = read_ndjson(export_dir / name)
        kind = name.removesuffix(".ndjson")
        assert resources, f"{name} is empty"
        assert {r["resourceType"] for r in resources} == {kind}
        assert all(r.get("id") for r in resources)


def test_export_has_400_patients(patients):
    assert len(patients) == 400
    assert len({p["id"] for p in patients}) == 400


def test_patients_include_non_ascii_names(patients):
    names = {
        (p["name"][0]["family"], " ".join(p["name"][0]["given"])) for p in patients
    }
    assert ("Núñez", "José") in names
    assert ("Brontë", "Zoë") in names
    assert ("Đặng", "Thị Mai") in names
    assert ("Åberg", "Søren") in names
    assert ("王", "芳") in names


def test_emails_missing_shared_invalid(patients):
    without = [p for p in patients if not emails_of(p)]
    counts = Counter(e for p in patients for e in emails_of(p))
    shared = [address for address, count in counts.items() if count in (2, 3)]
    assert len(without) >= 10
    assert any("@" in address and address.endswith(".net") for address in shared)
    assert "maria.lopez@" in counts or any(a.endswith("@") for a in counts)


def test_emails_use_reserved_domains(export_dir):
    for name in FILES:
        for resource in read_ndjson(export_dir / name):
            for address in emails_of(resource):
                domain = address.rpartition("@")[2]
                if not domain or "." not in domain:
                    continue  # a deliberately invalid address has no domain
                assert domain in DEMO_DOMAINS or domain.endswith(
                    tuple("." + d for d in DEMO_DOMAINS)
                ), address


def test_patients_include_minors_elderly_deceased(patients):
    today = datetime.date.today()
    ages = [age_of(p, today) for p in patients]
    assert sum(age < 18 for age in ages) >= 20
    assert sum(age >= 75 for age in ages) >= 20
    assert any("deceasedDateTime" in p for p in patients)
    assert any(p.get("deceasedBoolean") is True for p in patients)


def test_providers_direct_and_via_roles(patients, export_dir):
    practitioners = read_ndjson(export_dir / "Practitioner.ndjson")
    references = [
        p["generalPractitioner"][0]["reference"]
        for p in patients
        if "generalPractitioner" in p
    ]
    assert any(r.startswith("Practitioner/") for r in references)
    assert any(r.startswith("PractitionerRole/") for r in references)
    assert len(references) < len(patients)
    for practitioner in practitioners:
        npi = practitioner["identifier"][0]
        assert npi["system"] == "http://hl7.org/fhir/sid/us-npi"
        assert npi_with_check_digit(npi["value"][:9]) == npi["value"]


def test_tags_come_from_meta_and_groups(patients, export_dir):
    meta_tags = {
        tag["display"] for p in patients for tag in p.get("meta", {}).get("tag", [])
    }
    groups = read_ndjson(export_dir / "Group.ndjson")
    assert meta_tags == {"Diabetes program", "Hypertension clinic"}
    assert "Medicare wellness" in {g["name"] for g in groups}
    assert all(g["member"] for g in groups)


def test_appointments_past_future_all_statuses(export_dir):
    appointments = read_ndjson(export_dir / "Appointment.ndjson")
    now = datetime.datetime.now(datetime.UTC)
    starts = [datetime.datetime.fromisoformat(a["start"]) for a in appointments]
    statuses = {a["status"] for a in appointments}
    assert any(start > now for start in starts)
    assert any(start < now for start in starts)
    assert statuses == {"booked", "fulfilled", "cancelled", "noshow"}


def test_same_seed_gives_same_resources():
    first = build_export(patients=60, seed=3, today=TODAY)
    second = build_export(patients=60, seed=3, today=TODAY)
    assert first.resources == second.resources


def test_other_seed_gives_other_ids():
    first = build_export(patients=60, seed=3, today=TODAY)
    second = build_export(patients=60, seed=4, today=TODAY)
    first_ids = {p["id"] for p in first.resources["Patient"]}
    second_ids = {p["id"] for p in second.resources["Patient"]}
    assert first_ids.isdisjoint(second_ids)


def test_later_day_keeps_ids_and_ages():
    now = build_export(patients=60, seed=3, today=TODAY)
    later = build_export(patients=60, seed=3, today=TODAY + datetime.timedelta(days=40))
    assert [p["id"] for p in now.resources["Patient"]] == [
        p["id"] for p in later.resources["Patient"]
    ]
    assert [age_of(p, TODAY) for p in now.resources["Patient"]] == [
        age_of(p, TODAY + datetime.timedelta(days=40))
        for p in later.resources["Patient"]
    ]


def test_generate_demo_rejects_few_patients(tmp_path):
    with pytest.raises(CommandError, match="at least 8 patients, not 3"):
        call_command("generate_demo", str(tmp_path), "--patients", "3")


@pytest.mark.django_db
def test_export_imports_with_counts(export_dir, patients):
    appointments = read_ndjson(export_dir / "Appointment.ndjson")
    output = io.StringIO()

    call_command(
        "import_patients", str(export_dir), "--source", "demo", "--json", stdout=output
    )
    summary = json.loads(output.getvalue())

    assert summary["patients"]["created"] == len(patients)
    assert summary["skipped"] == 0
    assert summary["dangling_references"] == 0
    assert Patient.objects.filter(source="demo").count() == len(patients)
    assert Practitioner.objects.count() == 8
    assert Appointment.objects.count() == len(appointments)
    assert Patient.objects.filter(deceased=True).count() == sum(
        "deceasedDateTime" in p or p.get("deceasedBoolean") is True for p in patients
    )
    assert Patient.objects.filter(tags__name="Medicare wellness").exists()
    assert Patient.objects.filter(tags__name="Diabetes program").exists()
    assert Patient.objects.exclude(primary_provider=None).count() > 0.9 * len(patients)
