"""How the FHIR import derives each field, with small hand-made resources."""

import datetime

import pytest

from imports.fhir import parse_reference
from patients.models import Appointment, Patient, Practitioner
from tests.import_files import (
    NPI,
    encounter,
    patient,
    practitioner,
    reasons,
    run_import,
    write_bundle,
    write_json,
    write_ndjson,
)

pytestmark = pytest.mark.django_db


def _import_patient(tmp_path, resource):
    summary = run_import(write_json(tmp_path / "patient.json", resource))
    return summary, Patient.objects.get(source_id=resource["id"])


# --- Email ---


def test_email_lowest_rank_wins(tmp_path):
    telecom = [
        {"system": "email", "value": "second@example.org", "rank": 2},
        {"system": "email", "value": "first@example.org", "rank": 1},
    ]
    _, saved = _import_patient(tmp_path, patient(telecom=telecom))

    assert saved.email == "first@example.org"
    assert saved.email_valid


def test_email_home_beats_work_at_equal_rank(tmp_path):
    telecom = [
        {"system": "phone", "value": "555-0100", "use": "home"},
        {"system": "email", "value": "work@example.org", "use": "work"},
        {"system": "email", "value": "home@example.org", "use": "home"},
    ]
    _, saved = _import_patient(tmp_path, patient(telecom=telecom))

    assert saved.email == "home@example.org"


def test_email_with_ended_period_is_skipped(tmp_path):
    telecom = [
        {
            "system": "email",
            "value": "old@example.org",
            "rank": 1,
            "period": {"end": "2019-03-01"},
        },
        {"system": "email", "value": "mobile@example.org", "use": "mobile"},
        {"system": "email", "value": "gone@example.org", "use": "old"},
    ]
    _, saved = _import_patient(tmp_path, patient(telecom=telecom))

    assert saved.email == "mobile@example.org"


def test_email_with_future_period_end_is_kept(tmp_path):
    end = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    telecom = [{"system": "email", "value": "x@example.org", "period": {"end": end}}]
    _, saved = _import_patient(tmp_path, patient(telecom=telecom))

    assert saved.email == "x@example.org"


def test_invalid_email_kept_and_not_invitable(tmp_path):
    telecom = [{"system": "email", "value": "lan at example"}]
    summary, saved = _import_patient(tmp_path, patient(telecom=telecom))

    assert saved.email == "lan at example"
    assert not saved.email_valid
    assert any("email address is not valid" in w["reason"] for w in summary.warnings)
    assert "lan at example" not in summary.as_text()


# --- Names, status, dates ---


def test_official_name_preferred(tmp_path):
    names = [
        {"use": "usual", "given": ["Jim"]},
        {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
    ]
    _, saved = _import_patient(tmp_path, patient(name=names))

    assert saved.family_name == "Chalmers"
    assert saved.given_names == "Peter James"


def test_usual_name_then_first(tmp_path):
    names = [
        {"use": "maiden", "family": "Windsor", "given": ["Ann"]},
        {"use": "usual", "family": "Brontë", "given": ["Zoë"]},
    ]
    _, saved = _import_patient(tmp_path, patient(name=names))
    assert (saved.family_name, saved.given_names) == ("Brontë", "Zoë")

    first_only = patient(id="p2", name=[{"family": "Łukasz", "given": ["Ó"]}])
    _, other = _import_patient(tmp_path, first_only)
    assert (other.family_name, other.given_names) == ("Łukasz", "Ó")


def test_dstu2_family_list_skipped(tmp_path):
    dstu2 = patient(id="p2", name=[{"use": "official", "family": ["Peters", "Smith"]}])
    path = write_bundle(tmp_path / "b.json", [patient(id="p1"), dstu2])
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["p1"]
    assert summary.skipped == [
        {
            "file": str(path),
            "entry": 2,
            "reason": "name.family is a list, as in FHIR DSTU2, which is not "
            "supported. Export the data as FHIR R4 (STU3 is also accepted)",
        }
    ]


def test_family_name_not_text_skipped(tmp_path):
    path = write_ndjson(
        tmp_path / "p.ndjson", [patient(name=[{"family": {"value": "Smith"}}])]
    )
    summary = run_import(path)

    assert not Patient.objects.exists()
    assert reasons(summary) == ["name.family is not a string"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            {"family": "x" * 5_000_000, "given": ["Lan"]},
            "name.family is 5,000,000 characters long; names of up to 200 "
            "characters are accepted",
        ),
        (
            {"family": "Nguyen", "given": ["Thi", "y" * 197]},
            "name.given is 201 characters long; names of up to 200 characters "
            "are accepted",
        ),
    ],
)
def test_name_longer_than_200_characters_skipped(tmp_path, name, reason):
    path = write_ndjson(
        tmp_path / "p.ndjson", [patient(id="long", name=[name]), patient(id="ok")]
    )
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["ok"]
    assert reasons(summary) == [reason]


def test_missing_names_skip_or_warn(tmp_path):
    path = write_ndjson(
        tmp_path / "p.ndjson",
        [
            patient(id="none", name=[{"use": "official", "family": " "}]),
            patient(id="absent", name=None),
            patient(id="single", name=[{"given": ["Lan"]}]),
        ],
    )
    summary = run_import(path)

    saved = Patient.objects.get()
    assert (saved.source_id, saved.family_name, saved.given_names) == (
        "single",
        "",
        "Lan",
    )
    assert [item["line"] for item in summary.skipped] == [1, 2]
    assert set(reasons(summary)) == {
        "name.family and name.given are both empty; a patient needs at least one name"
    }
    assert summary.warnings == [
        {
            "file": str(path),
            "line": 3,
            "reason": "name.family is empty; the patient is imported with given "
            "names only",
        }
    ]


def test_inactive_patient_imported_inactive(tmp_path):
    _, saved = _import_patient(tmp_path, patient(active=False))

    assert saved.active is False


@pytest.mark.parametrize(
    ("fields", "deceased", "deceased_at"),
    [
        ({"deceasedBoolean": True}, True, None),
        ({"deceasedBoolean": False}, False, None),
        (
            {"deceasedDateTime": "2020-02-03T04:05:06+01:00"},
            True,
            datetime.datetime(2020, 2, 3, 3, 5, 6, tzinfo=datetime.UTC),
        ),
        (
            {"deceasedDateTime": "2020-02-03"},
            True,
            datetime.datetime(2020, 2, 3, tzinfo=datetime.UTC),
        ),
        ({"deceasedDateTime": "2020"}, True, None),
        ({}, False, None),
    ],
)
def test_deceased_forms(tmp_path, fields, deceased, deceased_at):
    _, saved = _import_patient(tmp_path, patient(**fields))

    assert saved.deceased is deceased
    assert saved.deceased_at == deceased_at


def test_partial_birth_date_kept_without_date(tmp_path):
    summary, saved = _import_patient(tmp_path, patient(birthDate="1980-05"))

    assert saved.birth_date is None
    assert summary.patients.created == 1
    assert "only a year or month" in summary.warnings[0]["reason"]


def test_bad_birth_date_skips_patient(tmp_path):
    path = write_ndjson(
        tmp_path / "Patient.ndjson",
        [patient(id="good"), patient(id="bad", birthDate="19x0-01-01")],
    )
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["good"]
    assert summary.skipped == [
        {
            "file": str(path),
            "line": 2,
            "reason": "birthDate '19x0-01-01' is not a date "
            "(YYYY, YYYY-MM or YYYY-MM-DD)",
        }
    ]


@pytest.mark.parametrize("birth_date", [None, "", "2999-01-01", "2999"])
def test_missing_or_future_birth_date_skipped(tmp_path, birth_date):
    resource = patient(id="bad")
    if birth_date is None:
        del resource["birthDate"]
    else:
        resource["birthDate"] = birth_date
    path = write_ndjson(tmp_path / "Patient.ndjson", [patient(id="good"), resource])
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["good"]
    assert summary.skipped[0]["line"] == 2
    if birth_date:
        assert reasons(summary) == [f"birthDate '{birth_date}' is in the future"]
    else:
        assert reasons(summary) == [
            "birthDate is missing or empty; invitations ask for the date of "
            "birth, so a patient needs one"
        ]


def test_patient_without_id_skipped_with_entry(tmp_path):
    resource = patient()
    del resource["id"]
    path = write_bundle(tmp_path / "bundle.json", [patient(id="ok"), resource])
    summary = run_import(path)

    assert Patient.objects.count() == 1
    assert summary.skipped[0]["entry"] == 2
    assert "no id" in summary.skipped[0]["reason"]


def test_transaction_entry_named_by_fullurl(tmp_path):
    resource = patient()
    del resource["id"]
    uuid = "61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    path = write_bundle(
        tmp_path / "tx.json",
        [resource],
        full_urls=[f"urn:uuid:{uuid}"],
        kind="transaction",
    )
    run_import(path)
    run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == [uuid]


# --- Tags ---


def test_meta_tags_use_display_then_code(tmp_path):
    meta = {
        "tag": [{"code": "dm", "display": "Diabetes program"}, {"code": "cohort-7"}]
    }
    _, saved = _import_patient(tmp_path, patient(meta=meta))

    assert sorted(saved.tags.values_list("name", flat=True)) == [
        "Diabetes program",
        "cohort-7",
    ]


def test_group_members_tagged_with_group_name(tmp_path):
    group = {
        "resourceType": "Group",
        "id": "g1",
        "name": "Hypertension cohort",
        "type": "person",
        "actual": True,
        "member": [
            {"entity": {"reference": "Patient/p1"}},
            {"entity": {"reference": "Patient/p2"}, "inactive": True},
            {"entity": {"reference": "Patient/missing"}},
        ],
    }
    # The Group comes first; its members are read from a later file.
    groups = write_ndjson(tmp_path / "a_Group.ndjson", [group])
    patients = write_ndjson(
        tmp_path / "b_Patient.ndjson", [patient(id="p1"), patient(id="p2")]
    )
    summary = run_import(groups, patients)

    tagged = Patient.objects.filter(tags__name="Hypertension cohort")
    assert list(tagged.values_list("source_id", flat=True)) == ["p1"]
    assert summary.dangling_count == 1
    assert summary.dangling[0]["reference"] == "Patient/missing"


# --- Primary provider ---


def test_general_practitioner_direct(tmp_path):
    path = write_bundle(
        tmp_path / "b.json",
        [
            patient(generalPractitioner=[{"reference": "Practitioner/dr1"}]),
            practitioner(),
        ],
    )
    run_import(path)

    assert Patient.objects.get().primary_provider.npi == "1234567890"


def test_general_practitioner_through_role(tmp_path):
    role = {
        "resourceType": "PractitionerRole",
        "id": "role9",
        "practitioner": {"identifier": {"system": NPI, "value": "1234567890"}},
    }
    first = write_json(
        tmp_path / "a.json",
        patient(generalPractitioner=[{"reference": "PractitionerRole/role9"}]),
    )
    roles = write_ndjson(tmp_path / "b_PractitionerRole.ndjson", [role])
    practitioners = write_ndjson(tmp_path / "c_Practitioner.ndjson", [practitioner()])
    summary = run_import(first, roles, practitioners)

    assert Patient.objects.get().primary_provider.fhir_id == "dr1"
    assert summary.dangling_count == 0


def test_checkup_performer_beats_later_visit(tmp_path):
    resources = [
        patient(),
        practitioner(id="family-doc", npi="1111111111"),
        practitioner(id="er-doc", npi="2222222222"),
        encounter(
            "e1", "Patient/p1", "Practitioner/family-doc", "2021-01-05", checkup=True
        ),
        encounter("e2", "Patient/p1", "Practitioner/er-doc", "2023-07-01T10:00:00Z"),
    ]
    run_import(write_ndjson(tmp_path / "all.ndjson", resources))

    assert Patient.objects.get().primary_provider.fhir_id == "family-doc"


def test_latest_checkup_wins(tmp_path):
    resources = [
        patient(),
        practitioner(id="old", npi="1111111111"),
        practitioner(id="new", npi="2222222222"),
        encounter("e2", "Patient/p1", "Practitioner/new", "2022-01-05", checkup=True),
        encounter("e1", "Patient/p1", "Practitioner/old", "2020-01-05", checkup=True),
    ]
    run_import(write_ndjson(tmp_path / "all.ndjson", resources))

    assert Patient.objects.get().primary_provider.fhir_id == "new"


def test_latest_encounter_without_checkup(tmp_path):
    resources = [
        patient(),
        practitioner(id="a", npi="1111111111"),
        practitioner(id="b", npi="2222222222"),
        encounter("e1", "Patient/p1", "Practitioner/a", "2020-01-05"),
        encounter("e2", "Patient/p1", "Practitioner/b", "2021-03-05", typed=False),
    ]
    run_import(write_ndjson(tmp_path / "all.ndjson", resources))

    assert Patient.objects.get().primary_provider.fhir_id == "b"


def test_general_practitioner_beats_encounters(tmp_path):
    resources = [
        patient(generalPractitioner=[{"reference": "Practitioner/gp"}]),
        practitioner(id="gp", npi="1111111111"),
        practitioner(id="other", npi="2222222222"),
        encounter("e1", "Patient/p1", "Practitioner/other", "2022-01-05", checkup=True),
    ]
    run_import(write_ndjson(tmp_path / "all.ndjson", resources))

    assert Patient.objects.get().primary_provider.fhir_id == "gp"


# --- References ---


def test_urn_uuid_references_in_bundle(tmp_path):
    patient_url = "urn:uuid:7b194e1d-66ca-4df6-8e5d-fc0dba2816af"
    doctor_url = "urn:uuid:bb212276-3d2b-4a3c-8304-272f79d1a25e"
    resources = [
        patient(id="not-the-uuid"),
        practitioner(id="also-not-the-uuid"),
        encounter("e1", patient_url, doctor_url, "2020-01-01", checkup=True),
    ]
    path = write_bundle(
        tmp_path / "b.json",
        resources,
        full_urls=[patient_url, doctor_url, "urn:uuid:e1"],
    )
    run_import(path)

    assert Patient.objects.get().primary_provider.fhir_id == "also-not-the-uuid"


def test_urn_uuid_reference_to_other_file(tmp_path):
    uuid = "bb212276-3d2b-4a3c-8304-272f79d1a25e"
    patients = write_bundle(
        tmp_path / "a_patient.json",
        [
            patient(id="pp"),
            encounter(
                "e1", "urn:uuid:pp", f"urn:uuid:{uuid}", "2020-01-01", checkup=True
            ),
        ],
        full_urls=["urn:uuid:pp", "urn:uuid:e1"],
    )
    doctors = write_bundle(
        tmp_path / "practitionerInformation.json",
        [practitioner(id=uuid)],
        full_urls=[f"urn:uuid:{uuid}"],
    )
    run_import(patients, doctors)

    assert Patient.objects.get().primary_provider.fhir_id == uuid


@pytest.mark.parametrize(
    "reference",
    [
        {"reference": "Practitioner/dr1"},
        {"reference": "https://ehr.example.org/fhir/Practitioner/dr1"},
        {"reference": "https://ehr.example.org/fhir/Practitioner/dr1/_history/3"},
        {"reference": f"Practitioner?identifier={NPI}|1234567890"},
        {"identifier": {"system": NPI, "value": "1234567890"}},
        {"type": "Practitioner", "identifier": {"system": NPI, "value": "1234567890"}},
    ],
)
def test_reference_forms_resolve(tmp_path, reference):
    first = write_json(tmp_path / "a.json", patient(generalPractitioner=[reference]))
    second = write_ndjson(tmp_path / "b.ndjson", [practitioner()])
    summary = run_import(first, second)

    assert Patient.objects.get().primary_provider.fhir_id == "dr1"
    assert summary.dangling_count == 0


def test_conditional_reference_across_files(tmp_path):
    encounters = write_ndjson(
        tmp_path / "Encounter.000.ndjson",
        [
            encounter(
                "e1",
                "Patient/p1",
                f"Practitioner?identifier={NPI}|9999974493",
                "2020-01-01T10:00:00-04:00",
                checkup=True,
            )
        ],
    )
    patients = write_ndjson(tmp_path / "Patient.000.ndjson", [patient()])
    doctors = write_ndjson(
        tmp_path / "Practitioner.000.ndjson", [practitioner(npi="9999974493")]
    )
    run_import(tmp_path)

    assert [encounters.name, patients.name, doctors.name] == sorted(
        p.name for p in tmp_path.iterdir()
    )
    assert Patient.objects.get().primary_provider.npi == "9999974493"


def test_dangling_reference_reported(tmp_path):
    path = write_json(
        tmp_path / "p.json",
        patient(generalPractitioner=[{"reference": "Practitioner/nobody"}]),
    )
    summary = run_import(path)

    assert Patient.objects.get().primary_provider is None
    assert summary.dangling_count == 1
    assert summary.dangling[0]["reference"] == "Practitioner/nobody"
    assert summary.dangling[0]["file"] == str(path)
    assert "Dangling references: 1" in summary.as_text()


# --- Practitioners and appointments ---


def test_practitioners_deduplicated_by_npi_and_id(tmp_path):
    first = write_ndjson(
        tmp_path / "a.ndjson",
        [practitioner(id="x1", npi="1111111111"), practitioner(id="y1", npi="")],
    )
    second = write_bundle(
        tmp_path / "b.json",
        [
            practitioner(id="x2", npi="1111111111", family="Ruiz-Diaz"),
            practitioner(id="y1", npi=""),
        ],
    )
    summary = run_import(first, second)

    assert Practitioner.objects.count() == 2
    assert summary.practitioners.created == 2
    assert summary.practitioners.updated == 0
    assert summary.practitioners.unchanged == 0
    # The first occurrence in a run wins; a later one cannot overwrite it.
    assert Practitioner.objects.get(npi="1111111111").family_name == "Ruiz"


def test_appointment_fields(tmp_path):
    appointment = {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "start": "2027-03-01T09:00:00Z",
        "end": "2027-03-01T09:20:00Z",
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr1"}, "status": "accepted"},
        ],
    }
    bad = {**appointment, "id": "a2", "status": "confirmed"}
    path = write_ndjson(
        tmp_path / "all.ndjson", [appointment, bad, patient(), practitioner()]
    )
    summary = run_import(path)

    saved = Appointment.objects.get()
    assert saved.status == "booked"
    assert saved.start == datetime.datetime(2027, 3, 1, 9, tzinfo=datetime.UTC)
    assert saved.end == datetime.datetime(2027, 3, 1, 9, 20, tzinfo=datetime.UTC)
    assert saved.patient.source_id == "p1"
    assert saved.practitioner.fhir_id == "dr1"
    assert reasons(summary) == ["Appointment.status 'confirmed' is not a FHIR status"]


def test_appointment_for_unknown_patient_reported(tmp_path):
    appointment = {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "participant": [{"actor": {"reference": "Patient/ghost"}}],
    }
    summary = run_import(write_json(tmp_path / "a.json", appointment))

    assert not Appointment.objects.exists()
    assert summary.dangling[0]["reference"] == "Patient/ghost"


def test_reference_to_earlier_import_resolves(tmp_path):
    run_import(write_ndjson(tmp_path / "Practitioner.ndjson", [practitioner()]))
    reference = {"reference": f"Practitioner?identifier={NPI}|1234567890"}
    later = tmp_path / "later"
    later.mkdir()
    path = write_json(later / "p.json", patient(generalPractitioner=[reference]))

    summary = run_import(path)

    assert Patient.objects.get().primary_provider.fhir_id == "dr1"
    assert summary.dangling_count == 0


def test_same_patient_twice_in_one_file(tmp_path):
    path = write_ndjson(
        tmp_path / "Patient.ndjson",
        [patient(family="Nguyen"), patient(family="Tran")],
    )
    summary = run_import(path)

    assert Patient.objects.get().family_name == "Tran"
    assert summary.patients.created == 1
    assert summary.patients.updated == 1
    assert summary.skipped_count == 0


def test_conditional_reference_keeps_plus_sign(tmp_path):
    doctor = practitioner(
        npi="", identifier=[{"system": "urn:staff", "value": "A+B%1"}]
    )
    reference = {"reference": "Practitioner?identifier=urn:staff|A+B%251"}
    first = write_json(tmp_path / "a.json", patient(generalPractitioner=[reference]))
    second = write_ndjson(tmp_path / "b.ndjson", [doctor])
    summary = run_import(first, second)

    assert Patient.objects.get().primary_provider.fhir_id == "dr1"
    assert summary.dangling_count == 0


# --- Resources of an unexpected shape ---


def test_resource_of_unexpected_shape_skipped(tmp_path, caplog):
    path = write_ndjson(
        tmp_path / "export.ndjson",
        [
            patient(id="p1", identifier=5),
            patient(id="p3"),
            {
                "resourceType": "Appointment",
                "id": "a1",
                "status": ["booked"],
                "participant": [{"actor": {"reference": "Patient/p3"}}],
            },
            {"resourceType": "Group", "id": "g1", "name": "Cohort", "member": 7},
        ],
    )
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["p3"]
    assert [item["line"] for item in summary.skipped] == [1, 3, 4]
    assert reasons(summary)[0] == (
        "Patient has an element of an unexpected type or shape (TypeError); "
        "check it against the FHIR R4 Patient"
    )
    assert summary.records_read == 4
    assert "Nguyen" not in caplog.text


def test_identifier_only_reference_reads_plainly():
    typed = parse_reference({"reference": "Practitioner?identifier=urn:npi|123"})
    untyped = parse_reference({"identifier": {"system": "urn:npi", "value": "123"}})

    assert str(typed) == "Practitioner?identifier=urn:npi|123"
    assert str(untyped) == "identifier urn:npi|123"
