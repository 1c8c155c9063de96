"""Reading files: FHIR versions, bad lines, laziness, the command and its output."""

import io
import json
import logging
import tracemalloc

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from imports import importer
from imports.fhir import Problems, read_fhir_file
from imports.models import ImportRun
from imports.services import import_patients
from patients.models import Patient
from tests.db_faults import reject_writes
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
    # Every non-empty line counts, read or skipped.
    assert summary.records_read == 5


def test_deeply_nested_ndjson_line_skipped(tmp_path):
    path = write_ndjson(
        tmp_path / "Patient.ndjson",
        [
            patient(id="p1"),
            "[" * 100_000 + "]" * 100_000,
            '{"resourceType": ' + "[" * 100_000 + "]" * 100_000 + "}",
            '{"resourceType": "Patient", "id": 1' + "0" * 5000 + "}",
            patient(id="p2"),
        ],
    )
    summary = run_import(path)

    assert sorted(Patient.objects.values_list("source_id", flat=True)) == ["p1", "p2"]
    assert [item["line"] for item in summary.skipped] == [2, 3, 4]
    assert reasons(summary)[0] == (
        "arrays or objects are nested too deeply to read; no FHIR resource is "
        "nested like this, so the data is damaged or is not FHIR"
    )
    assert reasons(summary)[1] == reasons(summary)[0]
    assert reasons(summary)[2] == (
        "a number has more than 4300 digits, which cannot be read"
    )


def test_resource_type_nested_deeply_skipped(tmp_path):
    path = write_ndjson(
        tmp_path / "Patient.ndjson",
        ['{"resourceType": ' + "[" * 500 + "]" * 500 + "}", patient()],
    )
    summary = run_import(path)

    assert Patient.objects.count() == 1
    assert reasons(summary) == ["resourceType is an array, not a FHIR resource type"]


def test_bundle_entries_counted_when_skipped(tmp_path):
    entries = [{}, {"request": {"method": "DELETE", "url": "Patient/9"}}]
    entries += [{"resource": patient(id=f"p{n}", birthDate="bad")} for n in range(3)]
    entries += [{"resource": patient(id="good")}]
    path = write_json(
        tmp_path / "b.json",
        {"resourceType": "Bundle", "type": "collection", "entry": entries},
    )
    summary = run_import(path)

    assert summary.records_read == 6
    assert summary.skipped_count == 5
    assert summary.patients.created == 1
    assert "Records read: 6\n" in summary.as_text()


def test_rejected_file_entries_not_counted(tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{}, {"resource": patient(fhirVersion="1.0.2")}],
    }
    summary = run_import(write_json(tmp_path / "b.json", bundle))

    assert summary.records_read == 0
    assert summary.skipped_count == 0
    assert "FHIR DSTU2 is not supported" in summary.files_not_imported[0]["reason"]


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


def test_deeply_nested_json_file_not_imported(tmp_path):
    write_json(tmp_path / "a_good.json", patient(id="a"))
    deep = tmp_path / "b_deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    write_json(tmp_path / "c_good.json", patient(id="c"))
    out = io.StringIO()
    call_command("import_patients", str(tmp_path), stdout=out)

    assert sorted(Patient.objects.values_list("source_id", flat=True)) == ["a", "c"]
    run = ImportRun.objects.get()
    assert run.finished_at is not None
    assert run.summary["files_not_imported_list"] == [
        {
            "file": str(deep),
            "reason": "arrays or objects are nested too deeply to read; no FHIR "
            "resource is nested like this, so the data is damaged or is not FHIR.",
        }
    ]
    assert f"{deep}: arrays or objects are nested too deeply" in out.getvalue()


def test_overlong_number_rejects_json_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"resourceType": "Patient", "id": 1' + "0" * 5000 + "}")
    summary = run_import(path)

    assert summary.files_not_imported == [
        {
            "file": str(path),
            "reason": "a number has more than 4300 digits, which cannot be read.",
        }
    ]


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


# --- Links ---


def test_broken_links_and_loops_reported(tmp_path):
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    write_json(folder / "sub" / "p.json", patient())
    (folder / "dangling.json").symlink_to("nowhere.json")
    (folder / "x.json").symlink_to("y.json")
    (folder / "y.json").symlink_to("x.json")
    (folder / "sub" / "up").symlink_to("..")
    (folder / "again").symlink_to("sub")
    summary = run_import(folder, folder / "dangling.json")

    assert Patient.objects.count() == 1
    assert summary.patients.created == 1
    assert summary.files_not_imported == [
        {
            "file": str(folder / "dangling.json"),
            "reason": "is a broken link: its target nowhere.json does not exist",
        },
        {
            "file": str(folder / "x.json"),
            "reason": "is a link loop: it points to y.json, which leads back to "
            "it; fix or remove the link",
        },
        {
            "file": str(folder / "y.json"),
            "reason": "is a link loop: it points to x.json, which leads back to "
            "it; fix or remove the link",
        },
        {
            "file": str(folder / "sub" / "up"),
            "reason": f"is a link loop: it leads back to {folder}, a folder above "
            "it, which is read already; not read again",
        },
        {
            "file": str(folder / "again"),
            "reason": f"is a link to the same folder as {folder / 'sub'}, which "
            "is read already",
        },
        {
            "file": str(folder / "dangling.json"),
            "reason": "is a broken link: its target nowhere.json does not exist",
        },
    ]


def test_link_to_folder_outside_is_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_json(outside / "p.json", patient())
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "linked").symlink_to(outside)
    summary = run_import(folder)

    assert Patient.objects.count() == 1
    assert summary.files_not_imported == []


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


def _reject_provider_updates():
    # The database rejects setting primary providers, the last step of a run,
    # which the importer does not expect to fail.
    reject_writes(
        "reject_provider",
        event="UPDATE OF primary_provider_id",
        table="patients_patient",
    )


def _patients_with_provider(tmp_path, monkeypatch):
    reference = {"reference": "Practitioner/dr1"}
    # Chunks of two patients are inserted before the practitioner is read,
    # so their providers are set by an update once every file is read.
    monkeypatch.setattr(importer, "CHUNK_SIZE", 2)
    return write_ndjson(
        tmp_path / "export.ndjson",
        [
            patient(id="p1", generalPractitioner=[reference]),
            patient(id="p2", generalPractitioner=[reference]),
            practitioner(),
        ],
    )


def test_unexpected_error_finishes_run(tmp_path, caplog, monkeypatch):
    _reject_provider_updates()
    path = _patients_with_provider(tmp_path, monkeypatch)

    run, summary = import_patients([str(path)])

    assert Patient.objects.count() == 2
    assert Patient.objects.filter(primary_provider__isnull=False).count() == 0
    run.refresh_from_db()
    assert run.finished_at is not None
    assert run.source == "fhir"
    assert run.summary["failed"] == (
        "an unexpected error (IntegrityError) while setting primary providers. "
        "What was saved before it is kept"
    )
    assert run.summary["patients"] == {"created": 2, "updated": 0, "unchanged": 0}
    event = AuditEvent.objects.get(action=AuditEvent.Action.IMPORT)
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.detail["patients"]["created"] == 2
    assert (
        f"Import run {run.pk} stopped: IntegrityError at "
        f"{settings.BASE_DIR / 'imports' / 'store.py'}:"
    ) in caplog.text
    assert "rejected by test trigger" not in caplog.text


def test_command_unexpected_error_one_line(tmp_path, monkeypatch):
    _reject_provider_updates()
    path = _patients_with_provider(tmp_path, monkeypatch)
    out = io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("import_patients", str(path), stdout=out)

    run = ImportRun.objects.get()
    assert str(raised.value) == (
        f"Import run {run.pk} stopped early after an unexpected error "
        "(IntegrityError) while setting primary providers. What was saved "
        "before it is kept."
    )
    assert "Import stopped early: an unexpected error" in out.getvalue()
    assert "Patients: 2 created, 0 updated, 0 unchanged" in out.getvalue()


def test_run_without_error_is_not_failed(tmp_path, monkeypatch):
    path = _patients_with_provider(tmp_path, monkeypatch)

    run, summary = import_patients([str(path)])

    run.refresh_from_db()
    assert run.summary["failed"] == ""
    assert summary.providers_set == 2
    assert "Import stopped early" not in summary.as_text()
    event = AuditEvent.objects.get(action=AuditEvent.Action.IMPORT)
    assert event.outcome == AuditEvent.Outcome.SUCCESS


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
