"""Forgotten password and forgotten username, by email, without revealing accounts."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from portal.tasks import send_password_reset
from tests.conftest import PASSWORD, make_patient

IMMEDIATE_TASKS = {
    "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}
}
NEW_PASSWORD = "lantern-orchard-river-7"
# The date of birth of patient_with_account, which a reset link requests.
BORN = {"month": "5", "day": "17", "year": "1980"}
RESET_LINK = re.compile(r"http://portal\.test/portal/password-reset/[^/\s]+/[^/\s]+/")


@pytest.fixture(autouse=True)
def _fresh_counters(clear_attempt_counters):
    pass


@pytest.fixture
def immediate_tasks(settings):
    settings.TASKS = IMMEDIATE_TASKS


def ask_reset(client, identifier, **extra):
    return client.post(
        reverse("portal-password-reset"), {"identifier": identifier}, **extra
    )


def ask_username(client, email):
    return client.post(reverse("portal-forgot-username"), {"email": email})


def page_after(client, response) -> tuple[int, str | None, str]:
    """Return what the patient sees: the redirect and the page it leads to."""
    page = client.get(response.url)
    return response.status_code, response.url, page.text


def reset_link_from(message) -> str:
    match = RESET_LINK.search(message.body)
    assert match, "the email carries no reset link"
    return match.group(0)


@pytest.mark.parametrize("identifier", ["chidi", "CHIDI", "Chidi@Example.org"])
def test_reset_emails_link_for_username_or_email(
    client, patient_with_account, immediate_tasks, identifier
):
    response = ask_reset(client, identifier)

    assert response.url == reverse("portal-password-reset-sent")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["chidi@example.org"]
    assert "Riverside Family Practice" in message.subject
    assert "chidi" in message.body
    html = message.alternatives[0].content
    assert reset_link_from(message) in html


def test_reset_answers_the_same_for_unknown_account(
    patient_with_account, immediate_tasks
):
    known = Client()
    unknown = Client()

    seen_known = page_after(known, ask_reset(known, "chidi"))
    seen_unknown = page_after(unknown, ask_reset(unknown, "nobody-here"))

    assert seen_known == seen_unknown
    assert len(mail.outbox) == 1


def test_reset_sends_nothing_for_staff_account(client, admin_user, immediate_tasks):
    response = ask_reset(client, "admin")

    assert response.url == reverse("portal-password-reset-sent")
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PASSWORD_RESET)


def test_reset_sends_nothing_for_disabled_patient(
    client, patient_with_account, front_desk, immediate_tasks
):
    from patients.services import set_access

    set_access(patient_with_account, False, actor=front_desk)

    ask_reset(client, "chidi")

    assert mail.outbox == []


def test_reset_link_uses_portal_base_url_despite_host(
    client, patient_with_account, immediate_tasks, settings
):
    settings.ALLOWED_HOSTS = ["testserver", "evil.example"]

    response = ask_reset(client, "chidi", HTTP_HOST="evil.example")

    assert response.status_code == 302
    message = mail.outbox[0]
    assert "evil.example" not in message.body
    assert "evil.example" not in message.alternatives[0].content
    assert reset_link_from(message).startswith("http://portal.test/")


def test_reset_is_queued_with_its_audit_record(client, patient_with_account):
    ask_reset(client, "chidi")

    assert mail.outbox == []
    task = DBTaskResult.objects.get()
    assert task.task_path == "portal.tasks.send_password_reset"
    assert task.args_kwargs["args"] == [patient_with_account.user.pk]
    event = AuditEvent.objects.get(action=AuditEvent.Action.PASSWORD_RESET)
    assert event.patient == patient_with_account
    assert event.detail == {"stage": "requested"}


def test_reset_email_says_how_to_get_new_link(
    client, patient_with_account, immediate_tasks
):
    ask_reset(client, "chidi")

    message = mail.outbox[0]
    text = message.body
    html = message.alternatives[0].content
    new_link = "http://portal.test" + reverse("portal-password-reset")
    assert f"If it has expired, ask for a\nnew one here:\n\n{new_link}" in text
    assert f'href="{new_link}"' in html


def test_reset_link_sets_new_password(client, patient_with_account, immediate_tasks):
    ask_reset(client, "chidi")
    link = reset_link_from(mail.outbox[0]).removeprefix("http://portal.test")

    opened = client.get(link)
    assert opened.status_code == 302
    # Django's view moves the token out of the address before showing the form.
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert token not in opened.url
    assert opened["Referrer-Policy"] == "no-referrer"
    form = client.get(opened.url)
    assert "Choose a new password" in form.text
    assert form["Referrer-Policy"] == "same-origin"

    done = client.post(
        opened.url,
        {**BORN, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert done.url == reverse("portal-password-reset-complete")
    user = patient_with_account.user
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    stages = list(
        AuditEvent.objects.filter(action=AuditEvent.Action.PASSWORD_RESET)
        .order_by("id")
        .values_list("detail__stage", flat=True)
    )
    assert stages == ["requested", "completed"]
    assert "_auth_user_id" not in client.session


def test_reset_link_works_once(client, patient_with_account, immediate_tasks):
    ask_reset(client, "chidi")
    link = reset_link_from(mail.outbox[0]).removeprefix("http://portal.test")
    opened = client.get(link)
    client.post(
        opened.url,
        {**BORN, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    again = Client().get(link)

    assert again.status_code == 200
    assert "This link no longer works" in again.text


def test_reset_rejects_weak_password(client, patient_with_account, immediate_tasks):
    ask_reset(client, "chidi")
    link = reset_link_from(mail.outbox[0]).removeprefix("http://portal.test")
    opened = client.get(link)

    response = client.post(
        opened.url,
        {**BORN, "new_password1": "password1234", "new_password2": "password1234"},
    )

    assert response.status_code == 200
    assert "This password is too common" in response.text
    user = patient_with_account.user
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_reset_rejects_patients_own_name(client, patient_with_account, immediate_tasks):
    ask_reset(client, "chidi")
    link = reset_link_from(mail.outbox[0]).removeprefix("http://portal.test")
    opened = client.get(link)
    # The patient's given name and family name are Chidi Okafor.
    weak = "okafor chidi born 1980"

    response = client.post(
        opened.url, {**BORN, "new_password1": weak, "new_password2": weak}
    )

    assert response.status_code == 200
    assert "contains your name" in response.text
    user = patient_with_account.user
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_reset_needs_the_date_of_birth(client, patient_with_account, immediate_tasks):
    ask_reset(client, "chidi")
    link = reset_link_from(mail.outbox[0]).removeprefix("http://portal.test")
    opened = client.get(link)
    wrong = {"month": "5", "day": "18", "year": "1980"}

    response = client.post(
        opened.url,
        {**wrong, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert "does not match the practice" in response.text
    user = patient_with_account.user
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_reset_birth_date_guessing_is_limited(
    client, patient_with_account, immediate_tasks, settings
):
    settings.PATIENT_ATTEMPT_LIMIT = 3
    ask_reset(client, "chidi")
    link = reset_link_from(mail.outbox[0]).removeprefix("http://portal.test")
    opened = client.get(link)
    wrong = {"month": "1", "day": "1", "year": "1990"}
    fields = {**wrong, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    for _ in range(3):
        client.post(opened.url, fields)

    response = client.post(opened.url, {**fields, **BORN})

    assert response.status_code == 429
    user = patient_with_account.user
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_reset_link_for_staff_account_is_invalid(client, admin_user):
    from portal.emails import password_reset_link

    link = password_reset_link(admin_user).removeprefix("http://portal.test")

    response = client.get(link)

    assert response.status_code == 200
    assert "This link no longer works" in response.text


def test_reset_email_goes_through_real_smtp(patient_with_account, smtp_server):
    send_password_reset.call(patient_with_account.user.pk)

    received = smtp_server.messages_to("chidi@example.org")
    assert len(received) == 1
    text = received[0].get_body(("plain",)).get_content()
    assert RESET_LINK.search(text)


def test_forgot_username_emails_usernames(
    client, patient_with_account, immediate_tasks
):
    response = ask_username(client, "CHIDI@example.org")

    assert response.url == reverse("portal-forgot-username-sent")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["chidi@example.org"]
    assert "Your username is: chidi" in message.body
    assert PASSWORD not in message.body
    event = AuditEvent.objects.get(action=AuditEvent.Action.USERNAME_REMINDER)
    assert event.patient == patient_with_account


def test_forgot_username_lists_every_account_at_address(
    client, patient_with_account, immediate_tasks
):
    from django.contrib.auth import get_user_model

    sibling = make_patient(given="Ada", email="Chidi@example.org", portal_access=True)
    sibling.user = get_user_model().objects.create_user(username="ada", password="x")
    sibling.save()

    ask_username(client, "chidi@example.org")

    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "The usernames are:" in body
    assert "  chidi\n" in body
    assert "  ada\n" in body
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.USERNAME_REMINDER).count()
        == 2
    )


def test_forgot_username_answers_the_same_for_unknown_address(
    patient_with_account, immediate_tasks
):
    known = Client()
    unknown = Client()

    seen_known = page_after(known, ask_username(known, "chidi@example.org"))
    seen_unknown = page_after(unknown, ask_username(unknown, "nobody@example.org"))

    assert seen_known == seen_unknown
    assert len(mail.outbox) == 1


def test_forgot_username_rejects_malformed_address(client, db):
    response = ask_username(client, "not an address")

    assert response.status_code == 200
    assert "Enter a valid email address" in response.text


def test_forgotten_details_are_rate_limited(client, patient_with_account, settings):
    settings.PATIENT_ATTEMPT_LIMIT = 2

    first = ask_reset(client, "chidi")
    second = ask_username(client, "chidi@example.org")
    third = ask_reset(client, "chidi")

    assert first.status_code == 302
    assert second.status_code == 302
    assert third.status_code == 429
    assert DBTaskResult.objects.count() == 2
