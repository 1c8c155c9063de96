"""A patient changes their own email address: password, then a link to the new one."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from patients.services import change_email
from portal.models import EmailChangeRequest
from portal.tasks import send_email_change_confirmation, send_email_change_notice
from tests.conftest import PASSWORD
from tests.worker import queued_tasks, run_worker

NEW = "chidi.new@example.org"


@pytest.fixture
def logged_in(client, patient_with_account, clear_attempt_counters):
    client.force_login(patient_with_account.user)
    return client


def _ask(client, address=NEW, password=PASSWORD):
    return client.post(
        reverse("portal-email-change"), {"email": address, "password": password}
    )


def _link(smtp_server) -> str:
    [message] = smtp_server.messages_to(NEW)
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"http://portal\.test(/portal/email/confirm/\S+/)", text).group(1)


def test_wrong_password_changes_nothing(logged_in):
    response = _ask(logged_in, password="not my password at all")

    assert response.status_code == 200
    assert "That is not your current password." in response.text
    assert not EmailChangeRequest.objects.exists()
    assert queued_tasks(send_email_change_confirmation).count() == 0


def test_request_sends_link_to_new_address_only(
    logged_in, patient_with_account, smtp_server
):
    response = _ask(logged_in)
    run_worker()

    assert response.url == reverse("portal-email-sent")
    assert len(smtp_server.messages_to(NEW)) == 1
    assert smtp_server.messages_to("chidi@example.org") == []
    patient_with_account.refresh_from_db()
    assert patient_with_account.email == "chidi@example.org"
    request = EmailChangeRequest.objects.get()
    assert request.token not in request.token_hash
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.EMAIL_CHANGE_REQUEST
    ).exists()


def test_confirmed_link_changes_address(logged_in, patient_with_account, smtp_server):
    _ask(logged_in)
    run_worker()
    link = _link(smtp_server)

    opened = logged_in.get(link)
    assert opened.url == reverse("portal-email-confirm")
    assert opened["Referrer-Policy"] == "no-referrer"
    page = logged_in.get(opened.url)
    assert NEW in page.text
    patient_with_account.refresh_from_db()
    assert patient_with_account.email == "chidi@example.org"

    done = logged_in.post(reverse("portal-email-confirm"), follow=True)

    assert "Your email address was changed." in done.text
    patient_with_account.refresh_from_db()
    assert patient_with_account.email == NEW
    event = AuditEvent.objects.get(action=AuditEvent.Action.EMAIL_CHANGE)
    assert event.actor == patient_with_account.user
    assert event.detail["confirmed_by"] == "patient"
    assert queued_tasks(send_email_change_notice).count() == 1


def test_link_works_once(logged_in, smtp_server):
    _ask(logged_in)
    run_worker()
    link = _link(smtp_server)
    logged_in.get(link)
    logged_in.post(reverse("portal-email-confirm"))

    logged_in.get(link)
    again = logged_in.get(reverse("portal-email-confirm"))

    assert again.status_code == 404
    assert "This link no longer works" in again.text


def test_newer_request_replaces_older(logged_in, smtp_server):
    _ask(logged_in)
    run_worker()
    first = _link(smtp_server)
    _ask(logged_in, address="chidi.other@example.org")

    logged_in.get(first)
    response = logged_in.get(reverse("portal-email-confirm"))

    assert response.status_code == 404


def test_link_dies_when_staff_change_address(
    logged_in, patient_with_account, smtp_server
):
    from django.db import transaction

    _ask(logged_in)
    run_worker()
    link = _link(smtp_server)
    with transaction.atomic():
        change_email(patient_with_account, "desk@example.org", actor_label="staff")

    logged_in.get(link)
    response = logged_in.get(reverse("portal-email-confirm"))

    assert response.status_code == 404


def test_link_expires(logged_in, smtp_server):
    _ask(logged_in)
    run_worker()
    link = _link(smtp_server)

    EmailChangeRequest.objects.update(
        expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )

    logged_in.get(link)
    response = logged_in.get(reverse("portal-email-confirm"))

    assert response.status_code == 404


def test_link_opened_by_another_patient_is_dead(logged_in, client, smtp_server, db):
    from django.contrib.auth import get_user_model

    from tests.conftest import make_patient

    _ask(logged_in)
    run_worker()
    link = _link(smtp_server)
    other = make_patient(given="Other", portal_access=True)
    other.user = get_user_model().objects.create_user("other.one", password=PASSWORD)
    other.save()
    client.force_login(other.user)

    client.get(link)
    response = client.get(reverse("portal-email-confirm"))

    assert response.status_code == 404


def test_link_opened_before_login_works_after(
    client, patient_with_account, smtp_server, clear_attempt_counters
):
    client.force_login(patient_with_account.user)
    _ask(client)
    run_worker()
    link = _link(smtp_server)
    client.logout()

    client.get(link)
    to_login = client.get(reverse("portal-email-confirm"))
    assert to_login.url.startswith(reverse("portal-login"))
    client.post(to_login.url, {"username": "chidi", "password": PASSWORD}, follow=False)
    page = client.get(reverse("portal-email-confirm"))

    assert page.status_code == 200
    assert NEW in page.text


def test_same_address_is_refused(logged_in):
    response = _ask(logged_in, address="CHIDI@example.org")

    assert "This is already your email address." in response.text
