"""A patient's email address change, by staff or by a re-import, as a security event."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse

from audit.models import AuditEvent
from invitations.models import Invitation
from patients import bulk
from patients.services import change_email
from portal.tasks import send_email_change_notice
from tests.conftest import make_invitation, make_patient
from tests.worker import queued_tasks, run_worker

OLD = "old.address@example.org"
NEW = "new.address@example.org"


@pytest.fixture
def email_editor(front_desk):
    front_desk.user_permissions.add(
        Permission.objects.get(codename="change_patient_email")
    )
    return front_desk


@pytest.fixture
def editor_client(client, email_editor):
    client.force_login(email_editor)
    return client


@pytest.fixture
def invited(db):
    patient = make_patient(email=OLD, portal_access=True)
    return patient, make_invitation(patient)


def _post_email(client, patient, address):
    return client.post(
        reverse("patient-email", args=[patient.pk]), {"email": address}, follow=True
    )


def test_change_revokes_pending_invitation(editor_client, invited):
    patient, invitation = invited

    response = _post_email(editor_client, patient, NEW)

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    assert invitation.delivery_status == Invitation.Delivery.CANCELLED
    assert not invitation.is_usable
    assert "1 pending invitation stopped working" in response.text


def test_change_is_audited_with_both_addresses(editor_client, email_editor, invited):
    patient, _ = invited

    _post_email(editor_client, patient, NEW)

    event = AuditEvent.objects.get(action=AuditEvent.Action.EMAIL_CHANGE)
    assert event.actor == email_editor
    assert event.patient == patient
    assert event.detail["old"] == OLD
    assert event.detail["new"] == NEW
    assert event.detail["invitations_revoked"] == 1


def test_changed_patient_needs_override_to_invite(editor_client, invited):
    patient, _ = invited

    _post_email(editor_client, patient, NEW)

    patient.refresh_from_db()
    assert patient.email == NEW
    assert patient.email_changed_at is not None
    assert bulk.skip_reason(patient.pk, bulk.INVITE) == "email_changed"


def test_old_address_gets_notice_without_link(editor_client, invited, smtp_server):
    patient, _ = invited

    _post_email(editor_client, patient, NEW)
    assert queued_tasks(send_email_change_notice).count() == 1
    run_worker()

    notices = smtp_server.messages_to(OLD)
    assert len(notices) == 1
    text = notices[0].get_body(preferencelist=("plain",)).get_content()
    html = notices[0].get_body(preferencelist=("html",)).get_content()
    assert "was changed" in text
    for body in (text, html):
        assert "http" not in body
        assert NEW not in body
    assert smtp_server.messages_to(NEW) == []


def test_change_stops_password_reset_link(editor_client, patient_with_account):
    user = patient_with_account.user
    token = default_token_generator.make_token(user)

    _post_email(editor_client, patient_with_account, NEW)

    user.refresh_from_db()
    assert user.email == NEW
    assert not default_token_generator.check_token(user, token)


def test_case_change_is_not_an_event(editor_client, invited):
    patient, invitation = invited

    _post_email(editor_client, patient, OLD.upper())

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EMAIL_CHANGE).exists()
    assert queued_tasks(send_email_change_notice).count() == 0


@pytest.mark.parametrize(
    "address", ["not an address", "a@example.org\r\nBcc: x@example.org", ""]
)
def test_invalid_address_is_rejected(editor_client, invited, address):
    patient, invitation = invited

    response = _post_email(editor_client, patient, address)

    assert response.status_code == 400
    patient.refresh_from_db()
    assert patient.email == OLD
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING


def test_change_needs_permission(front_desk_client, invited):
    patient, _ = invited

    response = _post_email(front_desk_client, patient, NEW)

    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.email == OLD


def test_page_offers_form_only_with_permission(editor_client, front_desk, invited):
    patient, _ = invited
    url = reverse("patient-portal", args=[patient.pk])

    assert "Change email address" in editor_client.get(url).text
    editor_client.force_login(front_desk)
    front_desk.user_permissions.remove(
        Permission.objects.get(codename="change_patient_email")
    )
    assert "Change email address" not in editor_client.get(url).text


def test_service_records_import_run(invited):
    patient, _ = invited

    with transaction.atomic():
        revoked = change_email(patient, NEW, actor_label="import", import_run=7)

    assert revoked == 1
    event = AuditEvent.objects.get(action=AuditEvent.Action.EMAIL_CHANGE)
    assert event.actor_label == "import"
    assert event.detail["import_run"] == 7
