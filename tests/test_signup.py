"""Choosing a username and password from a verified invitation."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.urls import reverse

from audit.models import AuditEvent
from invitations.models import Invitation
from invitations.services import send_invitation
from patients.services import set_access
from tests.conftest import make_invitation, make_patient

GOOD_PASSWORD = "tidal-basin-ferry-42"


@pytest.fixture(autouse=True)
def _fresh_counters(clear_attempt_counters):
    pass


@pytest.fixture
def patient(db):
    return make_patient(
        family="Lindqvist",
        given="Maren",
        email="maren.lindqvist@example.org",
        portal_access=True,
    )


@pytest.fixture
def invitation(patient):
    return make_invitation(patient)


@pytest.fixture
def verified_client(client, invitation, patient):
    client.get(reverse("invitation-link", args=[invitation.token]))
    birth = patient.birth_date
    response = client.post(
        reverse("invitation-verify"),
        {"month": birth.month, "day": birth.day, "year": birth.year},
    )
    assert response.url == reverse("invitation-signup")
    return client


def sign_up(client, username="maren", password=GOOD_PASSWORD, confirmation=None):
    return client.post(
        reverse("invitation-signup"),
        {
            "username": username,
            "password1": password,
            "password2": password if confirmation is None else confirmation,
        },
    )


def test_signup_creates_one_user_linked_to_patient(
    verified_client, invitation, patient
):
    users_before = get_user_model().objects.count()

    response = sign_up(verified_client)

    assert response.status_code == 302
    assert response.url == reverse("invitation-done")
    assert get_user_model().objects.count() == users_before + 1
    patient.refresh_from_db()
    assert patient.user.username == "maren"
    assert patient.user.check_password(GOOD_PASSWORD)
    assert patient.user.is_staff is False
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCEPT)
    assert event.patient == patient
    assert event.actor == patient.user
    assert event.detail["invitation_id"] == invitation.pk


def test_signup_does_not_log_patient_in(verified_client):
    sign_up(verified_client)

    done = verified_client.get(reverse("invitation-done"))

    assert "_auth_user_id" not in verified_client.session
    assert "Your account is ready" in done.text
    assert reverse("portal-login") in done.text


def test_signup_page_asks_for_username_and_password(verified_client):
    page = verified_client.get(reverse("invitation-signup"))

    assert page.status_code == 200
    assert 'name="username"' in page.text
    assert 'name="password1"' in page.text
    assert 'name="password2"' in page.text


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Ab1!xyz", "This password is too short"),
        ("password1234", "This password is too common"),
        ("123456789012345", "repeats itself or follows the keyboard"),
        ("maren.lindqvist", "too similar to the"),
        ("passwordpassword", "repeats itself or follows the keyboard"),
        ("qwertyuiopasdfg", "repeats itself or follows the keyboard"),
        (" " * 16, "repeats itself or follows the keyboard"),
        ("lindqvist summer of 1980", "contains your name"),
        ("Riverside Family Practice!", "contains your name"),
        ("my riversidefamilypractice key", "contains your name"),
    ],
)
def test_signup_rejects_weak_password(verified_client, patient, password, message):
    response = sign_up(verified_client, password=password)

    assert response.status_code == 200
    assert message in response.text
    patient.refresh_from_db()
    assert patient.user is None


@pytest.mark.parametrize(
    "password",
    [
        "tidal basin ferry at dawn",
        "Ноябрьский дождь над рекой",
        "九月の静かな川辺で古い本を読む",
        "🌧️🌧️ and a cup of strong tea",
        "1234 kettle 5678 harbor",
    ],
)
def test_signup_accepts_long_passphrases(verified_client, patient, password):
    response = sign_up(verified_client, password=password)

    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.user is not None


def test_signup_rejects_different_confirmation(verified_client, patient):
    response = sign_up(verified_client, confirmation=GOOD_PASSWORD + "x")

    assert response.status_code == 200
    assert "fields didn’t match" in response.text
    patient.refresh_from_db()
    assert patient.user is None


def test_taken_username_rejected_without_saying_whose(
    verified_client, patient_with_account, patient
):
    response = sign_up(verified_client, username="CHIDI")

    assert response.status_code == 200
    assert "That username is not available" in response.text
    assert "Okafor" not in response.text
    assert "chidi@example.org" not in response.text
    patient.refresh_from_db()
    assert patient.user is None


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("frontdesk\u200b", "Use only letters, digits, dots, hyphens and underscores"),
        ("<b>omar</b>", "Use only letters, digits, dots, hyphens and underscores"),
        ("omar/../j", "Use only letters, digits, dots, hyphens and underscores"),
        ("pedro.green@example.org", "cannot be an email address"),
        ("frontd\u0435sk", "letters of one alphabet only"),
        ("\u00a0\u00a0", "This field is required"),
    ],
)
def test_username_look_alikes_rejected(verified_client, patient, username, message):
    response = sign_up(verified_client, username=username)

    assert response.status_code == 200
    assert message in response.text
    patient.refresh_from_db()
    assert patient.user is None


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Maren", "maren"),
        ("ＭＡＲＥＮ", "maren"),
        ("  Straße ", "strasse"),
        ("ΩΜΕΓΑ_7", "ωμεγα_7"),
        ("josé.núñez", "josé.núñez"),
    ],
)
def test_username_is_stored_folded(verified_client, patient, typed, stored):
    sign_up(verified_client, username=typed)

    patient.refresh_from_db()
    assert patient.user.username == stored


def test_folded_username_collides(verified_client, patient):
    get_user_model().objects.create_user(username="strasse", password=GOOD_PASSWORD)

    response = sign_up(verified_client, username="STRAßE")

    assert "That username is not available" in response.text


def test_username_with_space_rejected(verified_client):
    response = sign_up(verified_client, username="maren l")

    assert "A username cannot contain spaces" in response.text


def test_username_taken_during_signup_says_not_available(
    verified_client, patient, monkeypatch
):
    # Stands in for another sign-up taking the name between the form's check
    # and the insert, which the database's unique index then rejects.
    get_user_model().objects.create_user(username="maren", password="x")
    monkeypatch.setattr("portal.forms.validate_username", str.strip)

    response = sign_up(verified_client, username="maren")

    assert response.status_code == 200
    assert "That username is not available" in response.text
    patient.refresh_from_db()
    assert patient.user is None
    invitation = patient.invitations.get()
    assert invitation.status == Invitation.Status.PENDING


def test_used_link_no_longer_works(verified_client, invitation):
    sign_up(verified_client)

    verified_client.get(reverse("invitation-link", args=[invitation.token]))
    response = verified_client.get(reverse("invitation-verify"))

    assert response.status_code == 404
    assert "This link no longer works" in response.text


def test_signup_after_link_replaced_meanwhile(verified_client, patient):
    send_invitation(patient, actor=None)

    response = sign_up(verified_client)

    assert response.status_code == 404
    assert "This link no longer works" in response.text
    patient.refresh_from_db()
    assert patient.user is None


def test_signup_after_access_disabled_meanwhile(verified_client, patient, front_desk):
    set_access(patient, False, actor=front_desk)

    response = sign_up(verified_client)

    assert response.status_code == 404
    patient.refresh_from_db()
    assert patient.user is None


def test_second_signup_from_same_session_fails(verified_client, patient):
    sign_up(verified_client)

    response = sign_up(verified_client, username="maren2")

    assert response.status_code == 404
    assert get_user_model().objects.filter(username="maren2").count() == 0


def test_accept_raises_integrity_error_for_exact_duplicate(invitation):
    from invitations.services import accept_invitation

    get_user_model().objects.create_user(username="maren", password="x")

    with pytest.raises(IntegrityError):
        accept_invitation(invitation, username="maren", password=GOOD_PASSWORD)


def test_field_error_is_linked_to_its_input(verified_client):
    response = verified_client.post(
        reverse("invitation-signup"),
        {"username": "has space", "password1": "x", "password2": "y"},
    )

    described_by = re.search(
        r'name="username"[^>]*aria-describedby="([^"]*)"', response.text
    ).group(1)
    assert "id_username_error" in described_by.split()
    assert 'id="id_username_error"' in response.text


def test_signup_emails_account_notice(verified_client, patient, smtp_server):
    from tests.worker import run_worker

    sign_up(verified_client)
    run_worker()

    [notice] = smtp_server.messages_to(patient.email)
    assert notice["Subject"] == (
        "Riverside Family Practice: your patient portal account was created"
    )
    text = notice.get_body(preferencelist=("plain",)).get_content()
    assert "Its username is: maren" in text
    assert "If you did not set up this account" in text
    assert str(patient.birth_date.year) not in text
