"""The delivery task against a real SMTP server: sending, repeats and cancellations."""

import logging
import re

import time_machine
from django.conf import settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from invitations import services
from invitations.models import Invitation
from invitations.tasks import deliver_invitations
from patients.models import Patient
from patients.services import set_access
from tests.conftest import make_patient
from tests.worker import queued_tasks, run_worker

ADDRESSES = ["ada@example.org", "bo@example.org", "cy@example.org"]


def invite(front_desk, *addresses) -> list[Invitation]:
    """Enable and invite one patient per address, the way the staff screen does."""
    patients = [
        make_patient(given=f"Given{index}", email=address, portal_access=True)
        for index, address in enumerate(addresses)
    ]
    services.send_invitations(
        Patient.objects.filter(pk__in=[patient.pk for patient in patients]),
        actor=front_desk,
    )
    return list(Invitation.objects.filter(patient__in=patients).order_by("patient_id"))


def link_in(text: str) -> str:
    match = re.search(re.escape(settings.PORTAL_BASE_URL) + r"/invite/[^\s\"<]+", text)
    assert match, "no invitation link in the message"
    return match.group(0)


def token_in(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def test_batch_goes_out_over_one_connection(smtp_server, front_desk):
    invitations = invite(front_desk, *ADDRESSES)

    run_worker()

    assert len(smtp_server.messages) == 3
    assert smtp_server.connections == 1
    for address in ADDRESSES:
        assert len(smtp_server.messages_to(address)) == 1
    for invitation in invitations:
        invitation.refresh_from_db()
        assert invitation.delivery_status == Invitation.Delivery.SENT
        assert invitation.delivery_attempts == 1


def test_message_has_text_and_html_parts(smtp_server, front_desk):
    invite(front_desk, "ada@example.org")

    run_worker()

    [message] = smtp_server.messages
    assert message["To"] == "ada@example.org"
    assert "Riverside Family Practice" in text_of(message)
    assert "Riverside Family Practice" in html_of(message)


def test_link_in_email_finds_invitation(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")

    run_worker()

    [message] = smtp_server.messages
    text_link = link_in(text_of(message))
    html_link = link_in(html_of(message))
    assert text_link == html_link
    assert text_link.startswith("http://portal.test/invite/")
    found = services.find_invitation(token_in(text_link))
    assert found is not None
    assert found.pk == invitation.pk


def test_last_invite_sent_is_set_only_after_sending(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    patient = invitation.patient
    patient.refresh_from_db()
    assert patient.last_invite_sent_at is None

    smtp_server.stop()
    run_worker()
    patient.refresh_from_db()
    assert patient.last_invite_sent_at is None

    smtp_server.start()
    invitation.refresh_from_db()
    with time_machine.travel(invitation.next_attempt_at, tick=True):
        deliver_invitations.call([invitation.pk])
    patient.refresh_from_db()
    invitation.refresh_from_db()
    assert invitation.sent_at is not None
    assert patient.last_invite_sent_at == invitation.sent_at


def test_sent_invitation_has_audit_record(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")

    run_worker()

    event = AuditEvent.objects.get(action=AuditEvent.Action.DELIVERY)
    assert event.outcome == AuditEvent.Outcome.SUCCESS
    assert event.patient_id == invitation.patient_id
    assert event.detail == {"invitation_id": invitation.pk}
    assert event.actor_label == "system"


def test_worker_stores_counts_as_task_result(smtp_server, front_desk):
    invite(front_desk, *ADDRESSES)

    run_worker()

    result = DBTaskResult.objects.get(task_path=deliver_invitations.module_path)
    assert result.status == "SUCCESSFUL"
    assert result.return_value == {
        "sent": 3,
        "failed": 0,
        "retrying": 0,
        "cancelled": 0,
        "skipped": 0,
        "requeued": 0,
    }


def test_batches_follow_delivery_batch_size(smtp_server, front_desk, settings):
    settings.DELIVERY_BATCH_SIZE = 2
    invite(front_desk, *ADDRESSES)

    assert queued_tasks(deliver_invitations).count() == 2
    run_worker()

    assert len(smtp_server.messages) == 3
    assert smtp_server.connections == 2


def test_running_task_twice_sends_once(smtp_server, front_desk):
    invitations = invite(front_desk, *ADDRESSES)
    ids = [invitation.pk for invitation in invitations]

    first = deliver_invitations.call(ids)
    second = deliver_invitations.call(ids)

    assert first["sent"] == 3
    assert second == {
        "sent": 0,
        "failed": 0,
        "retrying": 0,
        "cancelled": 0,
        "skipped": 3,
        "requeued": 0,
    }
    for address in ADDRESSES:
        assert len(smtp_server.messages_to(address)) == 1
    deliveries = AuditEvent.objects.filter(action=AuditEvent.Action.DELIVERY)
    assert deliveries.count() == 3


def test_repeat_after_crash_carries_same_link(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    deliver_invitations.call([invitation.pk])
    # The server accepted the message but the worker died before recording
    # it, and its hold on the invitation has run out.
    Invitation.objects.filter(pk=invitation.pk).update(
        delivery_status=Invitation.Delivery.QUEUED,
        sent_at=None,
        claimed_until=timezone.now(),
    )

    deliver_invitations.call([invitation.pk])

    first, second = smtp_server.messages_to("ada@example.org")
    assert link_in(text_of(first)) == link_in(text_of(second))
    assert services.find_invitation(token_in(link_in(text_of(second)))) is not None


def test_superseded_invitation_is_not_sent(smtp_server, front_desk):
    [old] = invite(front_desk, "ada@example.org")
    new = services.send_invitation(old.patient, actor=front_desk)

    run_worker()

    [message] = smtp_server.messages
    found = services.find_invitation(token_in(link_in(text_of(message))))
    assert found.pk == new.pk
    old.refresh_from_db()
    assert old.delivery_status == Invitation.Delivery.CANCELLED


def test_email_change_cancels_queued_invitation(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    patient = invitation.patient
    patient.set_email("ada.new@example.org")
    patient.save()

    run_worker()

    assert smtp_server.messages == []
    invitation.refresh_from_db()
    assert invitation.delivery_status == Invitation.Delivery.CANCELLED
    assert "email address changed" in invitation.delivery_error
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELIVERY)
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.detail["cancelled"] is True


def test_email_case_change_still_sends(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    patient = invitation.patient
    patient.set_email("Ada@Example.org")
    patient.save()

    run_worker()

    assert len(smtp_server.messages) == 1


def test_disabled_access_cancels_queued_invitation(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    set_access(invitation.patient, False, actor=front_desk)

    run_worker()

    assert smtp_server.messages == []
    invitation.refresh_from_db()
    assert invitation.delivery_status == Invitation.Delivery.CANCELLED
    assert "Revoked" in invitation.delivery_error


def test_line_break_in_address_fails_without_sending(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    injected = "ada@example.org\r\nBcc: eve@example.net"
    patient = invitation.patient
    patient.set_email(injected)
    patient.save()
    Invitation.objects.filter(pk=invitation.pk).update(email=injected)

    run_worker()

    assert smtp_server.messages == []
    assert smtp_server.connections == 0
    invitation.refresh_from_db()
    assert invitation.delivery_status == Invitation.Delivery.FAILED
    assert "line break" in invitation.delivery_error
    assert "example" not in invitation.delivery_error


def test_invalid_address_fails_and_batch_goes_on(smtp_server, front_desk):
    bad, good = invite(front_desk, "ada@example.org", "bo@example.org")
    patient = bad.patient
    patient.set_email("ada at example.org")
    patient.save()
    Invitation.objects.filter(pk=bad.pk).update(email="ada at example.org")

    run_worker()

    bad.refresh_from_db()
    assert bad.delivery_status == Invitation.Delivery.FAILED
    assert "not valid" in bad.delivery_error
    assert len(smtp_server.messages_to("bo@example.org")) == 1


def test_logs_carry_no_address_name_or_token(smtp_server, front_desk, caplog):
    caplog.set_level(logging.DEBUG)
    invitations = invite(front_desk, *ADDRESSES)
    smtp_server.reject("bo@example.org", 550, "5.1.1 <bo@example.org> unknown user")
    smtp_server.reject("cy@example.org", 451, "4.3.0 <cy@example.org> try later")

    run_worker()

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert str(invitations[0].pk) in logged
    assert "550" in logged
    for invitation in invitations:
        assert invitation.email not in logged
        assert invitation.patient.given_names not in logged
        assert invitation.token not in logged
    assert "@" not in logged
