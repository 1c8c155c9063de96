"""Patient emails other than invitations wait for a mail server that is down."""

import time_machine
from django.tasks import TaskResultStatus

from portal.tasks import send_email_change_notice, send_password_reset
from tests.worker import queued_tasks, run_worker


def test_reset_email_is_retried_until_the_server_returns(
    patient_with_account, smtp_server
):
    smtp_server.stop()
    send_password_reset.enqueue(patient_with_account.user.pk)

    run_worker()

    [retry] = queued_tasks(send_password_reset)
    assert retry.args_kwargs["kwargs"] == {"attempt": 2}
    assert smtp_server.messages == []

    smtp_server.start()
    with time_machine.travel(retry.run_after, tick=True):
        run_worker()

    assert len(smtp_server.messages_to("chidi@example.org")) == 1
    assert not queued_tasks(send_password_reset).exists()


def test_notice_is_given_up_after_the_last_attempt(
    patient_with_account, smtp_server, settings, caplog
):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    smtp_server.stop()

    send_email_change_notice.call(patient_with_account.pk, "old@example.org", attempt=2)

    assert not queued_tasks(send_email_change_notice).exists()
    assert "not sent after 2 tries" in caplog.text
    assert "old@example.org" not in caplog.text


def test_rejected_reset_email_is_not_retried(patient_with_account, smtp_server):
    smtp_server.reject("chidi@example.org", code=550)
    send_password_reset.enqueue(patient_with_account.user.pk)

    run_worker()

    assert not queued_tasks(send_password_reset).exists()
    assert smtp_server.messages == []


def test_retried_task_ends_successful_not_failed(patient_with_account, smtp_server):
    smtp_server.stop()
    first = send_password_reset.enqueue(patient_with_account.user.pk)

    run_worker()

    first.refresh()
    assert first.status == TaskResultStatus.SUCCESSFUL
