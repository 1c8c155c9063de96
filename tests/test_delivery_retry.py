"""Delivery failures: retries with backoff while the server is away, and rejections."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from invitations import services
from invitations.models import Invitation
from invitations.tasks import deliver_invitations
from tests.test_delivery_task import ADDRESSES, invite
from tests.worker import queued_tasks, run_worker


def later(seconds: int):
    """Move the clock forward, so that retries due by then run."""
    return time_machine.travel(
        timezone.now() + datetime.timedelta(seconds=seconds), tick=True
    )


def queued_ids(task_row) -> list[int]:
    return task_row.args_kwargs["args"][0]


def refreshed(invitations):
    return [Invitation.objects.get(pk=invitation.pk) for invitation in invitations]


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (20, 3600)],
)
def test_retry_delay_doubles_up_to_cap(attempts, seconds):
    assert services.retry_delay(attempts) == datetime.timedelta(seconds=seconds)


def test_server_down_schedules_retry_with_backoff(smtp_server, front_desk):
    invitations = invite(front_desk, *ADDRESSES)
    smtp_server.stop()
    started = timezone.now()

    run_worker()

    for invitation in refreshed(invitations):
        assert invitation.delivery_status == Invitation.Delivery.QUEUED
        assert invitation.delivery_attempts == 1
        assert "could not be reached" in invitation.delivery_error
        wait = invitation.next_attempt_at - started
        assert datetime.timedelta(seconds=29) < wait < datetime.timedelta(seconds=35)
    [retry] = queued_tasks(deliver_invitations)
    assert retry.run_after > timezone.now()
    assert queued_ids(retry) == [invitation.pk for invitation in invitations]


def test_retry_waits_for_its_time(smtp_server, front_desk):
    invite(front_desk, *ADDRESSES)
    smtp_server.stop()
    run_worker()
    smtp_server.start()

    run_worker()

    assert smtp_server.messages == []
    assert queued_tasks(deliver_invitations).count() == 1


def test_everything_arrives_once_after_server_returns(smtp_server, front_desk):
    invitations = invite(front_desk, *ADDRESSES)
    smtp_server.stop()
    run_worker()
    with later(31):
        run_worker()
    smtp_server.start()

    with later(31 + 61):
        run_worker()

    for address in ADDRESSES:
        assert len(smtp_server.messages_to(address)) == 1
    for invitation in refreshed(invitations):
        assert invitation.delivery_status == Invitation.Delivery.SENT
        assert invitation.delivery_attempts == 3
        assert invitation.delivery_error == ""
        assert invitation.next_attempt_at is None
    assert queued_tasks(deliver_invitations).count() == 0


def test_421_reply_is_retried(smtp_server, front_desk):
    invitations = invite(front_desk, *ADDRESSES)
    smtp_server.set_unavailable()

    run_worker()

    for invitation in refreshed(invitations):
        assert invitation.delivery_status == Invitation.Delivery.QUEUED
        assert "421" in invitation.delivery_error
    assert queued_tasks(deliver_invitations).count() == 1

    smtp_server.set_unavailable(False)
    with later(31):
        run_worker()

    for address in ADDRESSES:
        assert len(smtp_server.messages_to(address)) == 1


def test_connection_lost_mid_batch_retries_the_rest(smtp_server, front_desk):
    invitations = invite(front_desk, *ADDRESSES)
    smtp_server.disconnect_after(1)

    run_worker()

    # Each connection takes one message, and the next message finds it closed:
    # that one waits for a retry, and the untried rest go on a new connection.
    first, second, third = refreshed(invitations)
    assert first.delivery_status == Invitation.Delivery.SENT
    assert second.delivery_status == Invitation.Delivery.QUEUED
    assert second.delivery_attempts == 1
    assert third.delivery_status == Invitation.Delivery.SENT

    smtp_server.disconnect_after(None)
    with later(31):
        run_worker()

    for address in ADDRESSES:
        assert len(smtp_server.messages_to(address)) == 1


def test_connection_limit_counts_only_tried_invitations(
    smtp_server, front_desk, settings
):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    addresses = [f"limit{number}@example.org" for number in range(7)]
    invitations = invite(front_desk, *addresses)
    smtp_server.disconnect_after(3)

    run_worker()

    done = refreshed(invitations)
    sent = [i for i in done if i.delivery_status == Invitation.Delivery.SENT]
    waiting = [i for i in done if i.delivery_status == Invitation.Delivery.QUEUED]
    assert len(sent) == 6
    assert [i.delivery_attempts for i in sent] == [1] * 6
    assert [i.delivery_attempts for i in waiting] == [1]
    assert not [i for i in done if i.delivery_status == Invitation.Delivery.FAILED]


def test_gives_up_after_max_attempts(smtp_server, front_desk, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    [invitation] = invite(front_desk, "ada@example.org")
    smtp_server.stop()

    run_worker()
    with later(31):
        run_worker()
    with later(31 + 61):
        run_worker()

    invitation.refresh_from_db()
    assert invitation.delivery_status == Invitation.Delivery.FAILED
    assert invitation.delivery_attempts == 3
    assert "could not be reached" in invitation.delivery_error
    assert queued_tasks(deliver_invitations).count() == 0
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELIVERY)
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.detail["attempts"] == 3


def test_permanent_rejection_marks_failed(smtp_server, front_desk):
    ada, bo, cy = invite(front_desk, *ADDRESSES)
    smtp_server.reject(
        "bo@example.org", 550, "5.1.1 <bo@example.org>: Recipient address rejected"
    )

    run_worker()

    bo.refresh_from_db()
    assert bo.delivery_status == Invitation.Delivery.FAILED
    assert bo.delivery_error.startswith("The mail server answered 550 5.1.1")
    assert "bo@example.org" not in bo.delivery_error
    assert len(smtp_server.messages_to("ada@example.org")) == 1
    assert len(smtp_server.messages_to("cy@example.org")) == 1
    assert smtp_server.connections == 1
    assert queued_tasks(deliver_invitations).count() == 0
    failure = AuditEvent.objects.get(
        action=AuditEvent.Action.DELIVERY, outcome=AuditEvent.Outcome.FAILURE
    )
    assert failure.detail == {"invitation_id": bo.pk, "reason": bo.delivery_error}


def test_rejected_message_data_marks_failed(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    smtp_server.reject_data("ada@example.org", 554, "5.7.1 Message refused")

    run_worker()

    invitation.refresh_from_db()
    assert invitation.delivery_status == Invitation.Delivery.FAILED
    assert "554 5.7.1 Message refused" in invitation.delivery_error
    assert smtp_server.messages == []


def test_greylisted_recipient_is_retried_alone(smtp_server, front_desk):
    ada, bo, cy = invite(front_desk, *ADDRESSES)
    smtp_server.reject("bo@example.org", 450, "4.2.0 Greylisted, try again")

    run_worker()

    assert len(smtp_server.messages) == 2
    bo.refresh_from_db()
    assert bo.delivery_status == Invitation.Delivery.QUEUED
    assert "450" in bo.delivery_error
    [retry] = queued_tasks(deliver_invitations)
    assert queued_ids(retry) == [bo.pk]

    smtp_server.accept("bo@example.org")
    with later(31):
        run_worker()

    assert len(smtp_server.messages_to("bo@example.org")) == 1
    assert len(smtp_server.messages) == 3


def test_failed_delivery_shows_on_patient_state(smtp_server, front_desk):
    [invitation] = invite(front_desk, "ada@example.org")
    smtp_server.reject("ada@example.org", 550)

    run_worker()

    invitation.refresh_from_db()
    patient = invitation.patient
    patient.refresh_from_db()
    assert patient.portal_state(invitation) == patient.PortalState.INVITE_FAILED
    assert patient.last_invite_sent_at is None
