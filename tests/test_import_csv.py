"""The CSV import: patient and appointment spreadsheets."""

import datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

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
    assert summary.providers_set == 4
    assert summary.records_read == 8
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
    assert summary.providers_set == 0
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


def test_row_with_missing_fields_skipped(tmp_path):
    path = _csv(tmp_path / "p.csv", HEADER, "A1,Okafor,Chidi,1984-02-29")
    summary = run_import(path)

    assert not Patient.objects.exists()
    assert reasons(summary) == ["row has 4 fields but the header has 6"]


def test_provider_changed_by_spreadsheet_counted(tmp_path):
    header = "identifier,family_name,given_names,birth_date,primary_provider_npi"
    run_import(_csv(tmp_path / "p.csv", header, "A1,Okafor,Chidi,1984-02-29,111"))
    run_import(_csv(tmp_path / "p.csv", header, "A1,Okafor,Chidi,1984-02-29,222"))

    assert Patient.objects.get().primary_provider.npi == "222"
    summary = run_import(
        _csv(tmp_path / "p.csv", header, "A1,Okafor,Chidi,1984-02-29,222")
    )
    assert summary.providers_set == 0
    summary = run_import(
        _csv(tmp_path / "p.csv", header, "A1,Okafor,Chidi,1984-02-29,111")
    )
    assert summary.providers_set == 1


# --- Rows that are reported and skipped ---


def test_repeated_identifier_skipped_naming_first_line(tmp_path):
    rows = [f"B{n},Family{n},Given,1980-01-{n:02},," for n in range(1, 9)]
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        "A1,Okafor,Chidi,1984-02-29,,",
        *rows,
        "A1,Other,Person,1990-01-01,,",
    )
    summary = run_import(path)

    assert Patient.objects.get(source_id="A1").family_name == "Okafor"
    assert summary.patients.created == 9
    assert summary.patients.updated == 0
    assert summary.skipped == [
        {
            "file": str(path),
            "line": 11,
            "reason": "identifier 'A1' is already used on line 2 of this file; "
            "this row is skipped. Give each row its own identifier",
        }
    ]


def test_repeat_of_skipped_row_imported(tmp_path):
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        "A1,Okafor,Chidi,never,,",
        "A1,Okafor,Chidi,1984-02-29,,",
    )
    summary = run_import(path)

    assert Patient.objects.get().birth_date == datetime.date(1984, 2, 29)
    assert [item["line"] for item in summary.skipped] == [2]


def test_repeated_appointment_identifier_skipped(tmp_path):
    patients = _csv(tmp_path / "p.csv", HEADER, "A1,Okafor,Chidi,1984-02-29,,")
    visits = _csv(
        tmp_path / "v.csv",
        "identifier,patient_identifier,status,start",
        "V1,A1,booked,2027-03-01T09:00:00Z",
        "V1,A1,cancelled,2027-03-02T09:00:00Z",
    )
    summary = run_import(patients, visits)

    assert Appointment.objects.get().status == "booked"
    assert summary.skipped[0]["line"] == 3
    assert "already used on line 2" in summary.skipped[0]["reason"]


def test_missing_names_skip_or_warn(tmp_path):
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        "A1,,Chidi,1984-02-29,,",
        "A2,, ,1984-02-29,,",
    )
    summary = run_import(path)

    saved = Patient.objects.get()
    assert (saved.source_id, saved.family_name, saved.given_names) == (
        "A1",
        "",
        "Chidi",
    )
    assert summary.warnings == [
        {
            "file": str(path),
            "line": 2,
            "reason": "family_name is empty; the patient is imported with given "
            "names only",
        }
    ]
    assert summary.skipped == [
        {
            "file": str(path),
            "line": 3,
            "reason": "family_name and given_names are both empty; a patient needs "
            "at least one name",
        }
    ]


def test_name_longer_than_200_characters_skipped(tmp_path):
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        f"A1,{'x' * 201},Chidi,1984-02-29,,",
        f"A2,{'y' * 200},Chidi,1984-02-29,,",
    )
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["A2"]
    assert reasons(summary) == [
        "family_name is 201 characters long; names of up to 200 characters are accepted"
    ]


def test_unterminated_quote_on_last_row_skipped(tmp_path):
    rows = [f"B{n},Family{n},Given,1980-01-{n:02},," for n in range(1, 10)]
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        "A1,Okafor,Chidi,1984-02-29,,",
        *rows,
        'A12,Quote,"Quote ""unterminated,1995-01-01,,',
    )
    summary = run_import(path)

    assert not Patient.objects.filter(source_id="A12").exists()
    assert Patient.objects.count() == 10
    assert summary.skipped == [
        {
            "file": str(path),
            "line": 12,
            "reason": "not valid CSV (unexpected end of data)",
        }
    ]
    assert summary.records_read == 11


def test_unclosed_quote_loses_only_its_row(tmp_path):
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        "A1,Okafor,Chidi,1984-02-29,,",
        'A2,"Nguyen,Lan,1990-01-01,,',
        "A3,Tran,Minh,1991-01-01,,",
        "A4,Osei,Ama,1975-10-01,,",
    )
    summary = run_import(path)

    assert sorted(Patient.objects.values_list("source_id", flat=True)) == [
        "A1",
        "A3",
        "A4",
    ]
    [skipped] = summary.skipped
    assert skipped["line"] == 3
    assert "quote that is not closed" in skipped["reason"]
    assert summary.records_read == 4


def test_row_running_over_many_lines_skipped(tmp_path):
    endless = ['A2,"Nguyen', *(f"note {n}" for n in range(150))]
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        "A1,Okafor,Chidi,1984-02-29,,",
        *endless,
        'A3,Tran,Minh,1991-01-01,,"tagged"',
    )
    summary = run_import(path)

    assert sorted(Patient.objects.values_list("source_id", flat=True)) == ["A1", "A3"]
    assert summary.skipped[0]["line"] == 3
    assert "not closed within 100 lines" in summary.skipped[0]["reason"]
    # Each line of the endless field is then a row of one field.
    assert {item["reason"] for item in summary.skipped[1:]} == {
        "row has 1 fields but the header has 6"
    }


@pytest.mark.parametrize("birth_date", ["", " ", "2999-01-01", "2999"])
def test_empty_or_future_birth_date_skipped(tmp_path, birth_date):
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        "A1,Okafor,Chidi,1984-02-29,,",
        f"A2,Nguyen,Lan,{birth_date},,",
    )
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["A1"]
    assert summary.skipped[0]["line"] == 3
    if birth_date.strip():
        assert reasons(summary) == [f"birth_date '{birth_date}' is in the future"]
    else:
        assert reasons(summary) == [
            "birth_date is missing or empty; invitations ask for the date of "
            "birth, so a patient needs one"
        ]


def test_birth_date_of_today_accepted(tmp_path):
    today = timezone.localdate().isoformat()
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    path = _csv(
        tmp_path / "p.csv",
        HEADER,
        f"A1,Okafor,Chidi,{today},,",
        f"A2,Nguyen,Lan,{tomorrow},,",
    )
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["A1"]
    assert reasons(summary) == [f"birth_date '{tomorrow}' is in the future"]


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
    assert summary.records_read == 2


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
    fhir = patient(
        id="f-77",
        birthDate="1984-02-29",
        identifier=[{"system": "urn:mrn", "value": "MRN-7"}],
    )

    summary = run_import(write_json(tmp_path / "p.json", fhir))

    assert Patient.objects.count() == 1
    assert summary.patients.updated == 1
    assert Patient.objects.get().family_name == "Nguyen"
