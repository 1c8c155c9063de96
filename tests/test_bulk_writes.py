"""Rows written in bulk: defaults, types, numbering, and bulk actions' re-checks."""

import datetime
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from invitations.models import Invitation, hash_token
from invitations.services import find_invitation, send_invitations
from patients import bulk
from patients.models import Patient
from patients.services import enable_access, set_access
from portal.bulk_writes import insert_rows, reserve_ids
from tests.conftest import make_invitation, make_patient

pytestmark = pytest.mark.django_db(transaction=True)

INVITATION_FIELDS = ["id", "patient", "email", "salt", "token_hash", "expires_at"]


def _invitation_row(pk, patient, link="t1"):
    expires = timezone.now() + datetime.timedelta(days=3)
    return (pk, patient.pk, patient.email, "salt", hash_token(link), expires)


def test_insert_rows_fills_in_defaults():
    patient = make_patient()
    created = datetime.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)

    with transaction.atomic():
        (pk,) = reserve_ids(Invitation, 1)
        insert_rows(
            Invitation,
            [*INVITATION_FIELDS, "created_at"],
            [(*_invitation_row(pk, patient), created)],
        )

    stored = Invitation.objects.get(pk=pk)
    assert stored.patient == patient
    assert stored.created_at == created
    assert stored.status == Invitation.Status.PENDING
    assert stored.delivery_status == Invitation.Delivery.QUEUED
    assert stored.channel == Invitation.Channel.EMAIL
    assert (stored.delivery_attempts, stored.dob_failures) == (0, 0)
    assert (stored.claim_token, stored.delivery_error) == ("", "")
    assert stored.sent_at is None
    assert stored.created_by is None


def test_insert_rows_keeps_special_characters():
    patient = make_patient()
    detail = {"note": 'tab\there, back\\slash, "quotes", new\nline', "n": [1, None]}

    with transaction.atomic():
        insert_rows(
            AuditEvent,
            ["created_at", "actor_label", "action", "patient", "detail"],
            [(timezone.now(), "O'Brien \\ front desk", "invite", patient.pk, detail)],
        )

    stored = AuditEvent.objects.get(patient=patient)
    assert stored.detail == detail
    assert stored.actor_label == "O'Brien \\ front desk"
    assert stored.outcome == AuditEvent.Outcome.SUCCESS


def test_insert_rows_raises_integrity_error():
    patient = make_patient(portal_access=True)
    make_invitation(patient, token_hash=hash_token("taken"))

    with pytest.raises(IntegrityError), transaction.atomic():
        (pk,) = reserve_ids(Invitation, 1)
        insert_rows(
            Invitation, INVITATION_FIELDS, [_invitation_row(pk, patient, "taken")]
        )

    assert Invitation.objects.count() == 1


def test_writes_outside_transaction_are_rejected():
    patient = make_patient()

    with pytest.raises(RuntimeError, match="inside the transaction"):
        insert_rows(AuditEvent, ["created_at", "actor_label", "action"], [])
    with pytest.raises(RuntimeError, match="inside the transaction"):
        reserve_ids(Invitation, 1)

    assert not AuditEvent.objects.filter(patient=patient).exists()


def test_reserve_ids_never_repeats_a_number():
    patient = make_patient(portal_access=True)
    deleted = make_invitation(patient)
    deleted_pk = deleted.pk
    deleted.delete()

    with transaction.atomic():
        reserved = reserve_ids(Invitation, 3)
        insert_rows(
            Invitation,
            INVITATION_FIELDS,
            [_invitation_row(pk, patient, f"t{pk}") for pk in reserved],
        )
    later = make_invitation(patient)

    assert len(set(reserved)) == 3
    assert min(reserved) > deleted_pk
    assert later.pk > max(reserved)


def test_plan_with_ids_matches_plan():
    patients = [
        make_patient(given="Ready"),
        make_patient(given="Ready2"),
        make_patient(given="Enabled", portal_access=True),
        make_patient(given="Gone", deceased=True),
        make_patient(given="Young", birth_date=datetime.date.today()),
    ]
    selected = Patient.objects.filter(pk__in=[patient.pk for patient in patients])

    result, ids = bulk.plan_with_ids(selected, bulk.ENABLE)

    expected = bulk.plan(selected, bulk.ENABLE)
    assert (result.eligible, result.skipped) == (expected.eligible, expected.skipped)
    assert ids == list(bulk.eligible_ids(selected, bulk.ENABLE))
    assert ids == [patients[0].pk, patients[1].pk]


def test_enable_skips_patient_enabled_since_plan(monkeypatch, front_desk, admin_user):
    patient = make_patient()
    selected = Patient.objects.filter(pk=patient.pk)
    planned = bulk.plan_with_ids(selected, bulk.ENABLE)
    set_access(patient, True, actor=admin_user)
    monkeypatch.setattr(bulk, "plan_with_ids", lambda *args, **kwargs: planned)

    result = enable_access(selected, actor=front_desk)

    assert (result.eligible, result.skipped) == (0, {"already_enabled": 1})
    events = AuditEvent.objects.filter(
        action=AuditEvent.Action.ENABLE_ACCESS, patient=patient
    )
    assert [event.actor for event in events] == [admin_user]


def test_enable_audits_each_changed_patient(front_desk):
    ready = [make_patient(given=f"Ready{i}") for i in range(3)]
    make_patient(given="Gone", deceased=True)

    result = enable_access(Patient.objects.all(), actor=front_desk)

    assert result.eligible == 3
    events = AuditEvent.objects.filter(action=AuditEvent.Action.ENABLE_ACCESS)
    assert sorted(event.patient_id for event in events) == [p.pk for p in ready]
    assert {(event.actor, event.actor_label) for event in events} == {
        (front_desk, front_desk.username)
    }
    changed = Patient.objects.filter(portal_access=True)
    assert {patient.portal_access_changed_at for patient in changed} == {
        events[0].created_at
    }


def test_send_invitations_audits_each_link(front_desk, settings):
    settings.DELIVERY_BATCH_SIZE = 2
    patients = [
        make_patient(given=f"Ready{i}", portal_access=True, email=f"r{i}@example.org")
        for i in range(3)
    ]
    make_patient(given="Off", email="off@example.org")

    result = send_invitations(Patient.objects.all(), actor=front_desk)

    assert (result.eligible, result.skipped) == (3, {"access_not_enabled": 1})
    for patient in patients:
        (invitation,) = Invitation.objects.filter(patient=patient)
        assert find_invitation(invitation.token) == invitation
        assert invitation.email == patient.email
        assert invitation.created_by == front_desk
        assert invitation.expires_at - invitation.created_at == datetime.timedelta(
            days=settings.INVITATION_VALID_DAYS
        )
        event = AuditEvent.objects.get(action=AuditEvent.Action.INVITE, patient=patient)
        assert event.detail == {"invitation_id": invitation.pk}
    queued = sorted(
        pk for task in DBTaskResult.objects.all() for pk in task.args_kwargs["args"][0]
    )
    assert queued == sorted(Invitation.objects.values_list("pk", flat=True))


def test_send_invitations_cancels_unsent_one(front_desk):
    patient = make_patient(portal_access=True)
    unsent = make_invitation(
        patient, created_at=timezone.now() - datetime.timedelta(days=30)
    )
    sent = make_invitation(
        make_patient(given="Other", portal_access=True, email="other@example.org"),
        created_at=timezone.now() - datetime.timedelta(days=30),
        delivery_status=Invitation.Delivery.SENT,
    )

    send_invitations(Patient.objects.all(), actor=front_desk)

    unsent.refresh_from_db()
    sent.refresh_from_db()
    assert unsent.status == Invitation.Status.SUPERSEDED
    assert unsent.delivery_status == Invitation.Delivery.CANCELLED
    assert sent.status == Invitation.Status.SUPERSEDED
    assert sent.delivery_status == Invitation.Delivery.SENT


def test_send_invitations_skips_recent_link(front_desk):
    invited = make_patient(given="Invited", portal_access=True)
    bounced = make_patient(given="Bounced", portal_access=True)
    make_invitation(invited)
    # Sent to an earlier address, so the failed-delivery check passes.
    make_invitation(
        bounced, delivery_status=Invitation.Delivery.FAILED, email="old@example.org"
    )

    result = send_invitations(Patient.objects.all(), actor=front_desk)

    assert result.eligible == 1
    assert result.skipped == {"recently_invited": 1}
    assert Invitation.objects.filter(patient=invited).count() == 1
    assert Invitation.objects.filter(patient=bounced).count() == 2


def _wait_for_a_blocked_query(timeout=10.0):
    """Wait until another session of this database waits for a row lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # Otherwise pg_stat_activity stays as first read in a transaction.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                "'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("The second send never waited for the first one's locks.")


def test_concurrent_sends_invite_once(front_desk):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    patients = [make_patient(given=f"Ready{i}", portal_access=True) for i in range(4)]
    first_done = threading.Event()
    results = {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = send_invitations(
                    Patient.objects.all(), actor=front_desk
                )
                first_done.set()
                # Commit only once the second send waits for these rows.
                _wait_for_a_blocked_query()
        finally:
            connection.close()

    def second():
        try:
            first_done.wait(10)
            results["second"] = send_invitations(
                Patient.objects.all(), actor=front_desk
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert results["first"].eligible == 4
    assert results["second"].eligible == 0
    assert results["second"].skipped == {"recently_invited": 4}
    for patient in patients:
        assert Invitation.objects.filter(patient=patient).count() == 1
        invites = AuditEvent.objects.filter(
            action=AuditEvent.Action.INVITE, patient=patient
        )
        assert invites.count() == 1
