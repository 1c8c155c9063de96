"""Reading files: FHIR versions, bad lines, laziness, the command and its output."""

import io
import json
import logging
import tracemalloc

import pytest
from django.core.management import CommandError, call_command

from imports.fhir import Problems, read_fhir_file
from patients.models import Patient
from tests.import_files import (
    patient,
    practitioner,
    reasons,
    run_import,
    write_bundle,
    write_json,
    write_ndjson,
)

pytestmark = pytest.mark.django_db


class _Collect(Problems):
    def __init__(self):
        self.skipped = []
        self.versions = []

    def skip(self, location, reason):
        self.skipped.append((location, reason))

    def warn(self, location, reason):
        pass

    def file_version(self, label):
        self.versions.append(label)


# --- FHIR versions ---


def test_stu3_profile_accepted(tmp_path):
    resource = patient(
        meta={"profile": ["http://hl7.org/fhir/STU3/StructureDefinition/Patient"]}
    )
    summary = run_import(write_json(tmp_path / "p.json", resource))

    assert Patient.objects.count() == 1
    assert dict(summary.fhir_versions) == {"STU3": 1}


def test_stu3_fhir_version_accepted(tmp_path):
    bundle = write_bundle(tmp_path / "b.json", [patient()])
    document = json.loads(bundle.read_text())
    document["fhirVersion"] = "3.0.2"
    bundle.write_text(json.dumps(document))
    summary = run_import(bundle)

    assert Patient.objects.count() == 1
    assert dict(summary.fhir_versions) == {"STU3": 1}


@pytest.mark.parametrize(
    ("resource", "version"),
    [
        (patient(fhirVersion="5.0.0"), "R5"),
        (
            patient(
                meta={"profile": ["http://hl7.org/fhir/R5/StructureDefinition/Patient"]}
            ),
            "R5",
        ),
        (
            patient(
                meta={
                    "profile": [
                        "http://fhir.org/guides/argonaut/StructureDefinition/argo-patient"
                    ]
                }
            ),
            "DSTU2",
        ),
        (patient(careProvider=[{"reference": "Practitioner/1"}]), "DSTU2"),
        (patient(fhirVersion="1.0.2"), "DSTU2"),
    ],
)
def test_other_versions_rejected(tmp_path, resource, version):
    path = write_bundle(tmp_path / "b.json", [patient(id="p0"), resource])
    summary = run_import(path)

    assert not Patient.objects.exists()
    assert summary.files_read == 0
    [rejected] = summary.files_not_imported
    assert rejected["file"] == str(path)
    assert f"FHIR {version} is not supported" in rejected["reason"]
    assert f"{path}: FHIR {version} is not supported" in summary.as_text()


def test_r5_ndjson_rejected_at_first_line(tmp_path):
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "class": [{"coding": [{"code": "AMB"}]}],
        "subject": {"reference": "Patient/p1"},
    }
    path = write_ndjson(tmp_path / "Encounter.ndjson", [encounter])
    summary = run_import(path)

    assert "FHIR R5 is not supported" in summary.files_not_imported[0]["reason"]


def test_unstated_version_read_as_r4(tmp_path):
    summary = run_import(write_json(tmp_path / "p.json", patient()))

    assert dict(summary.fhir_versions) == {"not stated (read as R4)": 1}


# --- Bad input ---


def test_bad_ndjson_lines_skipped_with_line(tmp_path):
    path = write_ndjson(
        tmp_path / "Patient.ndjson",
        [
            patient(id="p1"),
            '{"resourceType": "Patient", "id": ',
            "",
            '["not", "an", "object"]',
            '{"resourceType": "patient", "id": "lowercase"}',
            patient(id="p2"),
        ],
    )
    summary = run_import(path)

    assert sorted(Patient.objects.values_list("source_id", flat=True)) == ["p1", "p2"]
    assert [item["line"] for item in summary.skipped] == [2, 4, 5]
    assert summary.skipped[0]["reason"].startswith("invalid JSON at column")
    assert summary.skipped[1]["reason"] == "not a JSON object"
    assert "is not a FHIR resource type" in summary.skipped[2]["reason"]


def test_invalid_utf8_line_skipped(tmp_path):
    path = tmp_path / "Patient.ndjson"
    good = json.dumps(patient(id="p2")).encode()
    path.write_bytes(b'{"resourceType": "Patient", "id": "\xff"}\n' + good + b"\n")
    summary = run_import(path)

    assert list(Patient.objects.values_list("source_id", flat=True)) == ["p2"]
    assert reasons(summary) == ["line is not valid UTF-8"]


def test_operation_outcome_reported(tmp_path):
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "timed out"}
        ],
    }
    path = write_ndjson(tmp_path / "errors.ndjson", [outcome])
    summary = run_import(path)

    assert reasons(summary) == [
        "OperationOutcome from the exporter: error processing timed out"
    ]


def test_invalid_json_document_rejected(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"resourceType": "Bundle", "entry": [')
    summary = run_import(path, write_json(tmp_path / "ok.json", patient()))

    assert Patient.objects.count() == 1
    assert summary.files_not_imported[0]["file"] == str(path)
    assert "invalid JSON at line 1" in summary.files_not_imported[0]["reason"]


def test_ndjson_named_json_is_read(tmp_path):
    path = write_ndjson(tmp_path / "export.json", [patient(id="a"), patient(id="b")])
    run_import(path)

    assert Patient.objects.count() == 2


def test_missing_path_named(tmp_path):
    missing = tmp_path / "nope.ndjson"
    summary = run_import(missing, write_json(tmp_path / "ok.json", patient()))

    assert summary.files_not_imported == [
        {"file": str(missing), "reason": "no such file or folder; check the path"}
    ]
    assert Patient.objects.count() == 1


# --- Streaming ---


def test_ndjson_reader_is_lazy(tmp_path):
    line = json.dumps(patient()) + "\n"
    path = tmp_path / "Patient.ndjson"
    with path.open("w") as handle:
        handle.write(line)
        handle.write("this line is not JSON\n")
        handle.write(line * 20_000)
    size = path.stat().st_size
    problems = _Collect()

    tracemalloc.start()
    entries = read_fhir_file(path, problems)
    first = next(entries)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert first.resource["id"] == "p1"
    assert first.location.line == 1
    # Line 2 is bad, but reading stopped after line 1.
    assert problems.skipped == []
    assert peak < size / 10
    entries.close()


# --- The command ---


def test_command_json_output_parses(tmp_path):
    write_ndjson(tmp_path / "Patient.ndjson", [patient(), "{bad"])
    out = io.StringIO()
    call_command("import_patients", str(tmp_path), "--json", stdout=out)

    summary = json.loads(out.getvalue())
    assert summary["patients"] == {"created": 1, "updated": 0, "unchanged": 0}
    assert summary["skipped_records"][0]["line"] == 2
    assert summary["source"] == "fhir"
    assert isinstance(summary["import_run"], int)


def test_command_text_summary(tmp_path):
    write_ndjson(tmp_path / "Patient.ndjson", [patient()])
    write_ndjson(tmp_path / "Practitioner.ndjson", [practitioner()])
    out = io.StringIO()
    call_command("import_patients", str(tmp_path), stdout=out)

    text = out.getvalue()
    assert "Patients: 1 created, 0 updated, 0 unchanged" in text
    assert "Practitioners: 1 created, 0 updated, 0 unchanged" in text


def test_command_fails_when_nothing_read(tmp_path):
    log = tmp_path / "log.ndjson"
    log.write_text('{"eventId": "kickoff"}\n')
    out = io.StringIO()

    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_patients", str(log), str(tmp_path / "gone"), stdout=out)
    assert "no such file or folder" in out.getvalue()


def test_command_succeeds_when_some_path_missing(tmp_path):
    write_ndjson(tmp_path / "Patient.ndjson", [patient()])
    out = io.StringIO()
    call_command(
        "import_patients", str(tmp_path), str(tmp_path / "gone.csv"), stdout=out
    )

    assert Patient.objects.count() == 1


def test_source_option_keys_reimport(tmp_path):
    path = write_json(tmp_path / "p.json", patient())
    call_command(
        "import_patients", str(path), "--source", "ehr-a", stdout=io.StringIO()
    )
    call_command(
        "import_patients", str(path), "--source", "ehr-b", stdout=io.StringIO()
    )
    call_command(
        "import_patients", str(path), "--source", "ehr-a", stdout=io.StringIO()
    )

    assert sorted(Patient.objects.values_list("source", flat=True)) == [
        "ehr-a",
        "ehr-b",
    ]


def test_no_patient_data_in_logs(tmp_path, caplog):
    resource = patient(
        family="Zyxwvut",
        birthDate="19x0-01-01",
        telecom=[{"system": "email", "value": "zyx@example.org"}],
    )
    other = patient(
        id="p2", family="Qwertyui", telecom=[{"system": "email", "value": "bad"}]
    )
    with caplog.at_level(logging.DEBUG):
        summary = run_import(write_ndjson(tmp_path / "p.ndjson", [resource, other]))

    assert summary.skipped_count == 1
    for secret in ("Zyxwvut", "Qwertyui", "zyx@example.org", "19x0"):
        assert secret not in caplog.text
    for secret in ("Zyxwvut", "Qwertyui", "zyx@example.org"):
        assert secret not in summary.as_text()
