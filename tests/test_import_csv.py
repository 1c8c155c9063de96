"""The CSV import: patient and appointment spreadsheets."""

import datetime
from pathlib import Path

import pytest
from django.conf import settings

from patients.models import Appointment, Patient, Practitioner
from tests.import_files import patient, reasons, run_import, write_json

pytestmark = pytest.mark.django_db

EXAMPLES = Path(settings.BASE_DIR) / "docs" / "examples"
HEADER = "identifier,family_name,given_names,birth_date,email,tags"


def _csv(path: Path, *lines: str, bom=False) -> Path:
    text = "\r\n".join(lines) + "\r\n"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def test_example_files_import_cleanly():
    summary = run_import(EXAMPLES / "patients.csv", EXAMPLES / "appointments.csv")

    assert summary.files_read == 2
    assert summary.patients.created == 4
    assert summary.appointments.created == 4
    assert summary.practitioners.created == 2
    assert summary.skipped_count == 0
    assert summary.warning_count == 0
    assert summary.dangling_count == 0
    assert summary.source == "csv"

    okafor = Patient.objects.get(source_id="MRN-1001")
    assert okafor.birth_date == datetime.date(1984, 2, 29)
    assert okafor.email_valid
    assert okafor.primary_provider.npi == "1234567893"
    assert sorted(okafor.tags.values_list("name", flat=True)) == [
        "Diabetes program",
        "Spanish speaking",
    ]
    assert Patient.objects.get(source_id="MRN-1002").given_names == "Sofía Isabel"
    assert Patient.objects.get(source_id="MRN-1004").deceased

    visit = Appointment.objects.get(source_id="APT-5001")
    assert visit.patient == okafor
    assert visit.start == datetime.datetime(2027, 3, 1, 14, tzinfo=datetime.UTC)
    assert visit.practitioner == okafor.primary_provider


def test_example_files_reimport_unchanged():
    paths = (EXAMPLES / "patients.csv", EXAMPLES / "appointments.csv")
    run_import(*paths)

    summary = run_import(*paths)

    assert summary.patients.unchanged == 4
    assert summary.patients.updated == 0
    assert summary.appointments.unchanged == 4
    assert summary.practitioners.created == 0
    assert Practitioner.objects.count() == 2


def test_header_with_bom_and_loose_names(tmp_path):
    path = _csv(
        tmp_path / "export.csv",
        "Identifier, Family Name ,Given-Names,BIRTH_DATE",
        "A1,Okafor,Chidi,1984-02-29",
        bom=True,
    )
    summary = run_import(path)

    assert summary.patients.created == 1
    assert Patient.objects.get().source_id == "A1"


def test_bad_date_row_skipped_with_line(tmp_path):
    path = _csv(
        tmp_path / "patients.csv",
        HEADER,
        "A1,Okafor,Chidi,1984-02-29,,",
        "A2,Nguyen,Lan,02/03/1990,,",
        "A3,Tran,Minh,1990-02-30,,",
        "A4,Osei,Ama,1975-10-01,,",
    )
    summary = run_import(path)

    assert sorted(Patient.objects.values_list("source_id", flat=True)) == ["A1", "A4"]
    assert [item["line"] for item in summary.skipped] == [3, 4]
    assert reasons(summary)[0] == (
        "birth_date '02/03/1990' is not a date (YYYY, YYYY-MM or YYYY-MM-DD)"
    )


def test_partial_birth_date_warns(tmp_path):
    path = _csv(tmp_path / "p.csv", HEADER, "A1,Okafor,Chidi,1984,,")
    summary = run_import(path)

    assert Patient.objects.get().birth_date is None
    assert summary.warnings[0]["line"] == 2
    assert "only a year or month" in summary.warnings[0]["reason"]


def test_invalid_email_kept(tmp_path):
    path = _csv(tmp_path / "p.csv", HEADER, "A1,Okafor,Chidi,1984-02-29,chidi@,")
    summary = run_import(path)

    saved = Patient.objects.get()
    assert saved.email == "chidi@"
    assert not saved.email_valid
    assert summary.warning_count == 1


def test_row_with_extra_fields_skipped(tmp_path):
    path = _csv(tmp_path / "p.csv", HEADER, "A1,Okafor,Chidi,1984-02-29,,,surplus")
    summary = run_import(path)

    assert not Patient.objects.exists()
    assert reasons(summary) == ["row has 7 fields but the header has 6"]


def test_quoted_field_with_newline(tmp_path):
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        'A1,"Okafor\nJr",Chidi,1984-02-29,,',
        "A2,Bad,Date,never,,",
    )
    summary = run_import(path)

    assert Patient.objects.get().family_name == "Okafor\nJr"
    assert summary.skipped[0]["line"] == 4


def test_unknown_header_rejected(tmp_path):
    path = _csv(tmp_path / "p.csv", "mrn,surname,dob", "A1,Okafor,1984-02-29")
    summary = run_import(path)

    assert summary.files_read == 0
    assert summary.nothing_read
    reason = summary.files_not_imported[0]["reason"]
    assert "matches neither CSV format" in reason
    assert "identifier, family_name, given_names, birth_date" in reason


def test_missing_column_rejected(tmp_path):
    path = _csv(tmp_path / "p.csv", "identifier,family_name,given_names", "A1,O,C")
    summary = run_import(path)

    assert "lacks the column(s) birth_date" in summary.files_not_imported[0]["reason"]


def test_unused_column_warned(tmp_path):
    path = _csv(
        tmp_path / "p.csv",
        "identifier,family_name,given_names,birth_date,shoe_size",
        "A1,Okafor,Chidi,1984-02-29,44",
    )
    summary = run_import(path)

    assert Patient.objects.count() == 1
    assert "shoe_size" in summary.warnings[0]["reason"]


def test_not_utf8_rows_reported(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(
        (HEADER + "\r\nA1,Okafor,Chidi,1984-02-29,,\r\n").encode()
        + "A2,Müller,Jörg,1970-01-01,,\r\n".encode("latin-1")
    )
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["A1"]
    assert "not valid UTF-8" in reasons(summary)[0]


def test_appointment_for_unknown_patient(tmp_path):
    path = _csv(
        tmp_path / "appointments.csv",
        "identifier,patient_identifier,status,start",
        "V1,NOBODY,booked,2027-03-01T09:00:00Z",
        "V2,NOBODY,maybe,2027-03-01T09:00:00Z",
    )
    summary = run_import(path)

    assert not Appointment.objects.exists()
    assert summary.dangling[0]["reference"] == "NOBODY"
    assert summary.skipped[0]["line"] == 3
    assert "status 'maybe' is not one of" in reasons(summary)[0]


def test_naive_start_uses_practice_time_zone(tmp_path, settings):
    settings.TIME_ZONE = "America/New_York"
    patients = _csv(tmp_path / "p.csv", HEADER, "A1,Okafor,Chidi,1984-02-29,,")
    visits = _csv(
        tmp_path / "v.csv",
        "identifier,patient_identifier,status,start",
        "V1,A1,,2027-03-01 09:00",
    )
    run_import(patients, visits)

    visit = Appointment.objects.get()
    assert visit.status == "booked"
    assert visit.start == datetime.datetime(2027, 3, 1, 14, tzinfo=datetime.UTC)


def test_csv_patient_matched_by_fhir_identifier(tmp_path):
    path = _csv(
        tmp_path / "p.csv",
        "identifier,identifier_system,family_name,given_names,birth_date",
        "MRN-7,urn:mrn,Okafor,Chidi,1984-02-29",
    )
    run_import(path)
    fhir = patient(id="f-77", identifier=[{"system": "urn:mrn", "value": "MRN-7"}])

    summary = run_import(write_json(tmp_path / "p.json", fhir))

    assert Patient.objects.count() == 1
    assert summary.patients.updated == 1
    assert Patient.objects.get().family_name == "Nguyen"
