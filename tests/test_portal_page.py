"""A patient's portal page for staff: facts, username, access, invitations, audit."""

import datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from invitations.models import Invitation
from invitations.services import send_invitation
from patients.models import Appointment
from tests.conftest import make_patient, make_practitioner

NOW = datetime.datetime(2027, 3, 1, 9, 0, tzinfo=datetime.UTC)


def _page_url(patient):
    return reverse("patient-portal", args=[patient.pk])


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_page_shows_patient_facts(front_desk_client):
    provider = make_practitioner(family="Ruiz", given="Ana")
    patient = make_patient(
        family="Doe",
        given="Jane",
        email="jane@example.org",
        primary_provider=provider,
        tags=["Heart cohort"],
    )

    response = front_desk_client.get(_page_url(patient))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Doe, Jane" in page
    assert "May 17, 1980" in page
    assert "jane@example.org" in page
    assert "Ruiz, Ana" in page
    assert "Heart cohort" in page
    assert '<span class="state state-not_enabled" id="portal-state">' in page
    assert 'type="password"' not in page


def test_page_marks_invalid_email(front_desk_client):
    patient = make_patient(email="jane at example")

    page = front_desk_client.get(_page_url(patient)).content.decode()

    assert "not valid" in page


def test_page_lists_every_invitation(front_desk_client, front_desk):
    patient = make_patient(portal_access=True)
    first = send_invitation(patient, actor=front_desk)
    second = send_invitation(patient, actor=front_desk)
    Invitation.objects.filter(pk=second.pk).update(
        delivery_status=Invitation.Delivery.FAILED,
        delivery_error="550 mailbox unavailable",
        dob_failures=2,
    )

    response = front_desk_client.get(_page_url(patient))

    page = response.content.decode()
    assert [i.pk for i in response.context["invitations"]] == [second.pk, first.pk]
    assert "Replaced by a newer invitation" in page
    assert "Not sent (replaced before delivery)" in page
    assert "550 mailbox unavailable" in page
    assert "<td>2</td>" in page
    assert response.context["state"] == "invite_failed"


def test_page_shows_expired_invitation(clock, front_desk_client, front_desk):
    patient = make_patient(portal_access=True)
    send_invitation(patient, actor=front_desk)
    clock.shift(datetime.timedelta(days=30))
    front_desk_client.force_login(front_desk)

    page = front_desk_client.get(_page_url(patient)).content.decode()

    assert "<td>Expired</td>" in page


def test_page_lists_upcoming_appointments_only(clock, front_desk_client):
    patient = make_patient()
    for index, (offset, status) in enumerate(
        [
            (-2, Appointment.Status.FULFILLED),
            (3, Appointment.Status.BOOKED),
            (4, Appointment.Status.CANCELLED),
            (10, Appointment.Status.PENDING),
        ]
    ):
        Appointment.objects.create(
            source="test",
            source_id=f"a{index}",
            patient=patient,
            status=status,
            start=NOW + datetime.timedelta(days=offset),
        )

    response = front_desk_client.get(_page_url(patient))

    starts = [a.start for a in response.context["appointments"]]
    assert starts == [
        NOW + datetime.timedelta(days=3),
        NOW + datetime.timedelta(days=10),
    ]
    assert "Mar 4, 2027" in response.content.decode()


def test_page_lists_audit_events(front_desk_client):
    patient = make_patient()

    front_desk_client.post(
        reverse("patient-access", args=[patient.pk]), {"enabled": "true"}
    )
    response = front_desk_client.get(_page_url(patient))

    page = response.content.decode()
    assert '<tr data-action="enable_access">' in page
    assert "Portal access enabled" in page
    assert "frontdesk" in page


# Username


def test_change_username(front_desk_client, front_desk, patient_with_account):
    response = front_desk_client.post(
        reverse("patient-username", args=[patient_with_account.pk]),
        {"username": "chidi.okafor"},
    )

    assert response.status_code == 302
    assert _messages(response) == ["Username changed."]
    patient_with_account.user.refresh_from_db()
    assert patient_with_account.user.username == "chidi.okafor"
    event = AuditEvent.objects.get(action=AuditEvent.Action.USERNAME_CHANGE)
    assert event.patient_id == patient_with_account.pk
    assert event.actor == front_desk


def test_change_username_rejects_taken_name(front_desk_client, patient_with_account):
    get_user_model().objects.create_user(username="taken")

    response = front_desk_client.post(
        reverse("patient-username", args=[patient_with_account.pk]),
        {"username": "TAKEN"},
    )

    assert response.status_code == 200
    assert "That username is not available" in response.content.decode()
    patient_with_account.user.refresh_from_db()
    assert patient_with_account.user.username == "chidi"
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.USERNAME_CHANGE
    ).exists()


def test_change_username_needs_an_account(front_desk_client):
    patient = make_patient()

    response = front_desk_client.post(
        reverse("patient-username", args=[patient.pk]), {"username": "jane"}
    )

    assert "has not set up an account yet" in response.content.decode()
    assert not get_user_model().objects.filter(username="jane").exists()


def test_username_form_is_shown_with_permission(
    front_desk_client, patient_with_account
):
    page = front_desk_client.get(_page_url(patient_with_account)).content.decode()

    assert 'id="current-username">chidi<' in page
    assert 'name="username"' in page


def test_username_form_is_hidden_without_permission(
    read_only_client, patient_with_account
):
    page = read_only_client.get(_page_url(patient_with_account)).content.decode()

    assert 'name="username"' not in page
    assert "cannot change usernames" in page


# Access


def test_enable_access(front_desk_client):
    patient = make_patient()

    response = front_desk_client.post(
        reverse("patient-access", args=[patient.pk]), {"enabled": "true"}
    )

    assert _messages(response) == ["Portal access enabled."]
    patient.refresh_from_db()
    assert patient.portal_access is True
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.ENABLE_ACCESS, patient=patient
    ).exists()


def test_disable_access_revokes_invitation_and_login(
    front_desk_client, front_desk, patient_with_account
):
    pending = make_patient(given="Pending", portal_access=True)
    invitation = send_invitation(pending, actor=front_desk)

    front_desk_client.post(
        reverse("patient-access", args=[pending.pk]), {"enabled": "false"}
    )
    front_desk_client.post(
        reverse("patient-access", args=[patient_with_account.pk]),
        {"enabled": "false"},
    )

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    patient_with_account.user.refresh_from_db()
    assert patient_with_account.user.is_active is False
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.DISABLE_ACCESS).count() == 2
    )
    response = front_desk_client.get(_page_url(pending))
    assert response.context["state"] == "not_enabled"


@pytest.mark.parametrize("choice", ["maybe", "", "TRUE"])
def test_unknown_access_choice_changes_nothing(front_desk_client, choice):
    patient = make_patient(portal_access=True)

    response = front_desk_client.post(
        reverse("patient-access", args=[patient.pk]), {"enabled": choice}, follow=True
    )

    patient.refresh_from_db()
    assert patient.portal_access is True
    assert "is not a portal access choice" in response.content.decode()
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.DISABLE_ACCESS
    ).exists()


def test_enable_access_for_deceased_shows_reason(front_desk_client):
    patient = make_patient(deceased=True)

    response = front_desk_client.post(
        reverse("patient-access", args=[patient.pk]), {"enabled": "true"}
    )

    assert _messages(response) == ["Portal access was not enabled: Deceased."]
    patient.refresh_from_db()
    assert patient.portal_access is False


@pytest.mark.parametrize(
    "name", ["patient-access", "patient-invite", "patient-username"]
)
def test_actions_need_post(front_desk_client, name):
    patient = make_patient()

    response = front_desk_client.get(reverse(name, args=[patient.pk]))

    assert response.status_code == 405


# Invitations


def test_send_invitation(front_desk_client, front_desk):
    patient = make_patient(portal_access=True)

    response = front_desk_client.post(reverse("patient-invite", args=[patient.pk]))

    assert response.status_code == 302
    assert _messages(response) == [
        "Invitation queued. Any earlier invitation link no longer works."
    ]
    invitation = Invitation.objects.get(patient=patient)
    assert invitation.created_by == front_desk
    task = DBTaskResult.objects.get()
    assert task.args_kwargs["args"] == [[invitation.pk]]
    event = AuditEvent.objects.get(action=AuditEvent.Action.INVITE)
    assert event.detail == {"invitation_id": invitation.pk}


def test_resend_replaces_recent_invitation(front_desk_client, front_desk):
    patient = make_patient(portal_access=True)
    first = send_invitation(patient, actor=front_desk)

    front_desk_client.post(reverse("patient-invite", args=[patient.pk]))

    first.refresh_from_db()
    assert first.status == Invitation.Status.SUPERSEDED
    assert patient.invitations.count() == 2


def test_send_invitation_shows_why_not(front_desk_client):
    patient = make_patient(portal_access=False)

    response = front_desk_client.post(reverse("patient-invite", args=[patient.pk]))

    assert _messages(response) == ["No invitation was sent: Portal access not enabled."]
    assert not Invitation.objects.exists()


def test_page_explains_why_invite_is_disabled(front_desk_client):
    patient = make_patient(portal_access=True, email="")

    page = front_desk_client.get(_page_url(patient)).content.decode()

    assert "Skipped by a safety check: No email address." in page
