"""Audit events can be added but never changed or deleted through the application."""

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEvent
from audit.services import record, record_many
from patients.models import Patient
from tests.conftest import make_patient

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


@pytest.fixture
def event(front_desk):
    patient = make_patient()
    with transaction.atomic():
        return record(
            Action.ENABLE_ACCESS, actor=front_desk, patient=patient, reason="asked"
        )


def assert_unchanged(event):
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.action == Action.ENABLE_ACCESS
    assert stored.actor_label == "frontdesk"
    assert stored.detail == {"reason": "asked"}
    assert stored.patient_id == event.patient_id


def test_record_inserts_an_event(event, front_desk):
    stored = AuditEvent.objects.get(pk=event.pk)

    assert stored.actor == front_desk
    assert stored.actor_label == "frontdesk"
    assert stored.detail == {"reason": "asked"}


def test_record_many_inserts_events():
    patients = [make_patient(), make_patient()]
    now = timezone.now()

    with transaction.atomic():
        record_many(
            Action.INVITE,
            [patient.pk for patient in patients],
            now=now,
            actor_label="system",
            details=[{"invitation_id": 7}, {"invitation_id": 8}],
        )

    stored = AuditEvent.objects.filter(action=Action.INVITE).order_by("pk")
    assert [(event.patient_id, event.detail) for event in stored] == [
        (patients[0].pk, {"invitation_id": 7}),
        (patients[1].pk, {"invitation_id": 8}),
    ]
    assert {(event.created_at, event.actor_label) for event in stored} == {
        (now, "system")
    }


def test_save_of_existing_event_raises(event):
    event.detail = {"reason": "rewritten"}

    with pytest.raises(AppendOnlyError, match="append-only"):
        event.save()

    assert_unchanged(event)


def test_save_of_loaded_event_raises(event):
    loaded = AuditEvent.objects.get(pk=event.pk)
    loaded.actor_label = "someone else"

    with pytest.raises(AppendOnlyError, match="save"):
        loaded.save(update_fields=["actor_label"])

    assert_unchanged(event)


def test_reused_id_does_not_overwrite(event):
    impostor = AuditEvent(
        pk=event.pk,
        created_at=timezone.now(),
        actor_label="someone else",
        action=Action.DISABLE_ACCESS,
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        impostor.save()

    assert_unchanged(event)


def test_delete_of_event_raises(event):
    with pytest.raises(AppendOnlyError, match="delete"):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_queryset_update_raises(event):
    with pytest.raises(AppendOnlyError, match="update"):
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="someone else")

    assert_unchanged(event)


def test_unlinking_patient_outside_deletion_raises(event):
    patient = event.patient

    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(patient=None)
    with pytest.raises(AppendOnlyError):
        patient.audit_events.clear()

    assert_unchanged(event)


def test_queryset_delete_raises(event):
    with pytest.raises(AppendOnlyError, match="delete"):
        AuditEvent.objects.all().delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_base_manager_raises_too(event):
    with pytest.raises(AppendOnlyError):
        AuditEvent._base_manager.filter(pk=event.pk).update(actor_label="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent._base_manager.filter(pk=event.pk).delete()

    assert_unchanged(event)


def test_bulk_update_raises(event):
    event.actor_label = "someone else"

    # bulk_update() runs in a transaction of its own, which the error ends.
    with pytest.raises(AppendOnlyError), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["actor_label"])

    assert_unchanged(event)


def test_deleting_patient_keeps_events(front_desk):
    patient = make_patient(family="Sørensen", given="Ida")
    other = make_patient()
    with transaction.atomic():
        unlinked = record(
            Action.INVITE, actor=front_desk, patient=patient, invitation=7
        )
        untouched = record(Action.INVITE, actor=front_desk, patient=other)

    patient.delete()

    unlinked.refresh_from_db()
    assert unlinked.patient_id is None
    assert unlinked.actor_id == front_desk.pk
    assert unlinked.actor_label == "frontdesk"
    assert unlinked.detail == {"invitation": 7}
    untouched.refresh_from_db()
    assert untouched.patient_id == other.pk


def test_deleting_patients_in_bulk_keeps_events():
    patients = [make_patient(), make_patient()]
    with transaction.atomic():
        for patient in patients:
            record(Action.ENABLE_ACCESS, actor_label="import", patient=patient)

    Patient.objects.filter(pk__in=[p.pk for p in patients]).delete()

    events = AuditEvent.objects.filter(action=Action.ENABLE_ACCESS)
    assert events.count() == 2
    assert list(events.values_list("patient_id", flat=True)) == [None, None]
    assert list(events.values_list("actor_label", flat=True)) == ["import", "import"]


def test_deleting_users_keeps_events(front_desk, patient_with_account):
    with transaction.atomic():
        by_staff = record(
            Action.ENABLE_ACCESS, actor=front_desk, patient=patient_with_account
        )
        by_patient = record(
            Action.LOGIN,
            actor=patient_with_account.user,
            patient=patient_with_account,
        )

    front_desk.delete()
    patient_with_account.user.delete()

    by_staff.refresh_from_db()
    by_patient.refresh_from_db()
    assert by_staff.actor_id is None
    assert by_staff.actor_label == "frontdesk"
    assert by_patient.actor_id is None
    assert by_patient.actor_label == "chidi"
    assert by_patient.patient_id == patient_with_account.pk
    assert not get_user_model().objects.filter(username="frontdesk").exists()


def test_deleting_patient_and_their_login(patient_with_account):
    user = patient_with_account.user
    with transaction.atomic():
        record(Action.LOGIN, actor=user, patient=patient_with_account)

    user.delete()
    patient_with_account.delete()

    event = AuditEvent.objects.get(action=Action.LOGIN)
    assert event.actor_id is None
    assert event.patient_id is None
    assert event.actor_label == "chidi"
