"""Importing again: same patients updated, email changes audited, links revoked."""

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from invitations.models import Invitation, hash_token
from patients.models import Patient
from tests.db_faults import reject_writes
from tests.import_files import patient, run_import, write_json, write_ndjson

pytestmark = pytest.mark.django_db


def _with_email(address, **fields):
    return patient(telecom=[{"system": "email", "value": address}], **fields)


def _invitation(saved, *, status=Invitation.Status.PENDING, delivery="queued"):
    salt = Invitation.new_salt()
    return Invitation.objects.create(
        patient=saved,
        email=saved.email,
        salt=salt,
        token_hash=hash_token(Invitation.token_for_salt(salt)),
        expires_at=timezone.now() + datetime.timedelta(days=14),
        status=status,
        delivery_status=delivery,
    )


def test_reimport_updates_same_patient(tmp_path):
    path = write_json(tmp_path / "p.json", patient(family="Nguyen"))
    run_import(path)
    write_json(path, patient(family="Tran"))

    summary = run_import(path)

    assert Patient.objects.get().family_name == "Tran"
    assert summary.patients.updated == 1
    assert summary.patients.created == 0


def test_reimport_unchanged_keeps_updated_at(tmp_path):
    path = write_json(tmp_path / "p.json", _with_email("lan@example.org"))
    run_import(path)
    before = Patient.objects.get().updated_at
    audit_rows = AuditEvent.objects.count()

    summary = run_import(path)

    assert summary.patients.unchanged == 1
    assert Patient.objects.get().updated_at == before
    assert AuditEvent.objects.count() == audit_rows + 1
    assert AuditEvent.objects.first().action == AuditEvent.Action.IMPORT


def test_email_case_change_is_not_a_change(tmp_path):
    path = write_json(tmp_path / "p.json", _with_email("lan@example.org"))
    run_import(path)
    write_json(path, _with_email("LAN@Example.org"))

    summary = run_import(path)

    assert summary.email_changes == 0
    assert summary.patients.unchanged == 1


def test_email_change_audited_and_invitation_revoked(tmp_path):
    path = write_json(tmp_path / "p.json", _with_email("old@example.org"))
    run_import(path)
    saved = Patient.objects.get()
    queued = _invitation(saved)
    sent = _invitation(saved, delivery="sent")
    accepted = _invitation(saved, status=Invitation.Status.ACCEPTED, delivery="sent")
    write_json(path, _with_email("new@example.org"))

    summary = run_import(path)

    saved.refresh_from_db()
    assert saved.email == "new@example.org"
    assert saved.email_valid
    assert saved.email_changed_at is not None
    assert summary.email_changes == 1
    assert summary.invitations_revoked == 2

    queued.refresh_from_db()
    sent.refresh_from_db()
    accepted.refresh_from_db()
    assert queued.status == Invitation.Status.REVOKED
    assert queued.delivery_status == Invitation.Delivery.CANCELLED
    assert sent.status == Invitation.Status.REVOKED
    assert sent.delivery_status == Invitation.Delivery.SENT
    assert accepted.status == Invitation.Status.ACCEPTED

    change = AuditEvent.objects.get(action=AuditEvent.Action.EMAIL_CHANGE)
    assert change.patient == saved
    assert change.actor_label == "import"
    assert change.detail["old"] == "old@example.org"
    assert change.detail["new"] == "new@example.org"


def test_import_audit_record_has_counts(tmp_path):
    run_import(write_json(tmp_path / "p.json", patient()))

    event = AuditEvent.objects.get(action=AuditEvent.Action.IMPORT)
    assert event.actor_label == "import"
    assert event.detail["patients"] == {"created": 1, "updated": 0, "unchanged": 0}
    assert event.detail["files_read"] == 1
    assert "Nguyen" not in str(event.detail)


def test_patient_matched_by_identifier(tmp_path):
    mrn = {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}
    first = write_json(tmp_path / "a.json", patient(id="old-id", identifier=[mrn]))
    run_import(first)
    second = write_json(
        tmp_path / "b.json",
        patient(id="new-id", family="Tran", identifier=[mrn]),
    )

    summary = run_import(second)

    saved = Patient.objects.get()
    assert saved.family_name == "Tran"
    assert summary.patients.updated == 1


def test_shared_identifier_never_merges_two_people(tmp_path):
    mrn = {"system": "urn:mrn", "value": "M10"}
    export = write_ndjson(
        tmp_path / "Patient.ndjson",
        [
            _with_email("g10@example.org", id="g10", identifier=[mrn]),
            _with_email(
                "g7000@example.org",
                id="g7000",
                family="Okafor",
                birthDate="1991-02-03",
                identifier=[mrn],
            ),
        ],
    )

    first = run_import(export)
    again = run_import(export)

    by_id = {p.source_id: p for p in Patient.objects.all()}
    assert set(by_id) == {"g10", "g7000"}
    assert by_id["g10"].email == "g10@example.org"
    assert by_id["g7000"].email == "g7000@example.org"
    assert by_id["g7000"].family_name == "Okafor"
    assert first.patients.created == 2
    assert "another date of birth" in str(first.warnings)
    assert again.patients.unchanged == 2
    assert again.email_changes == 0


def test_social_security_number_not_stored(tmp_path):
    ssn = {
        "type": {"coding": [{"code": "SS"}]},
        "system": "http://hl7.org/fhir/sid/us-ssn",
        "value": "999-27-2868",
    }
    mrn = {"type": {"coding": [{"code": "MR"}]}, "system": "urn:mrn", "value": "A1"}
    run_import(write_json(tmp_path / "p.json", patient(identifier=[ssn, mrn])))

    stored = list(Patient.objects.get().identifiers.values_list("system", "value"))
    assert stored == [("urn:mrn", "A1")]


def test_failed_record_rolled_back_whole(tmp_path):
    # A trigger makes the database reject one identifier, after that record's
    # Patient row was already written inside its savepoint.
    reject_writes(
        "reject_boom",
        event="INSERT",
        table="patients_patientidentifier",
        when="NEW.value = 'boom'",
    )
    boom = [{"system": "urn:mrn", "value": "boom"}]
    path = write_ndjson(
        tmp_path / "Patient.ndjson",
        [patient(id="p1"), patient(id="p2", identifier=boom), patient(id="p3")],
    )
    summary = run_import(path)

    assert sorted(Patient.objects.values_list("source_id", flat=True)) == ["p1", "p3"]
    assert summary.patients.created == 2
    assert summary.skipped[0]["line"] == 2
    assert "could not be saved (IntegrityError)" in summary.skipped[0]["reason"]
