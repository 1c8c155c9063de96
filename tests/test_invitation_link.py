"""The invitation link: opening it, the date-of-birth check and dead links."""

import datetime
import re

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from invitations.models import Invitation
from invitations.services import send_invitation
from tests.conftest import make_invitation, make_patient

BIRTH_DATE = datetime.date(1980, 5, 17)


@pytest.fixture(autouse=True)
def _fresh_counters(clear_attempt_counters):
    pass


@pytest.fixture
def patient(db):
    return make_patient(
        family="Lindqvist",
        given="Maren",
        email="maren.lindqvist@example.org",
        birth_date=BIRTH_DATE,
        portal_access=True,
    )


@pytest.fixture
def invitation(patient):
    return make_invitation(patient)


def open_link(client, token: str):
    return client.get(reverse("invitation-link", args=[token]))


def post_birth_date(client, month="5", day="17", year="1980", **extra):
    return client.post(
        reverse("invitation-verify"),
        {"month": month, "day": day, "year": year},
        **extra,
    )


def without_csrf(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


def test_link_redirects_token_out_of_address(client, invitation):
    response = open_link(client, invitation.token)

    assert response.status_code == 302
    assert response.url == reverse("invitation-verify")
    assert invitation.token not in response.url
    assert client.session["invitation_id"] == invitation.pk


def test_opening_link_twice_does_not_use_it(client, invitation):
    open_link(client, invitation.token)
    open_link(client, invitation.token)

    page = client.get(reverse("invitation-verify"))
    assert page.status_code == 200
    assert "Date of birth" in page.text

    response = post_birth_date(client)
    assert response.url == reverse("invitation-signup")

    response = client.post(
        reverse("invitation-signup"),
        {
            "username": "maren",
            "password1": "tidal-basin-ferry-42",
            "password2": "tidal-basin-ferry-42",
        },
    )
    assert response.url == reverse("invitation-done")
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED


def test_mail_scanner_opening_link_leaves_it_usable(client, invitation):
    # A scanner's browser is a different client from the patient's.
    Client().get(reverse("invitation-link", args=[invitation.token]), follow=True)

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING
    open_link(client, invitation.token)
    assert post_birth_date(client).url == reverse("invitation-signup")


def test_invitation_pages_send_no_referrer(client, invitation):
    link = open_link(client, invitation.token)
    matched = post_birth_date(client)
    dead = open_link(Client(), "not-a-token")
    dead_page = Client().get(reverse("invitation-verify"))

    for response in (link, matched, dead, dead_page):
        assert response["Referrer-Policy"] == "no-referrer"
        assert "no-store" in response["Cache-Control"]


def test_invitation_form_pages_keep_referrer_on_site(client, invitation):
    # Under no-referrer browsers send "Origin: null" with a form, and
    # Django's CSRF check rejects it; same-origin still sends other sites no address.
    open_link(client, invitation.token)
    verify = client.get(reverse("invitation-verify"))
    post_birth_date(client)
    signup = client.get(reverse("invitation-signup"))

    for response in (verify, signup):
        assert response["Referrer-Policy"] == "same-origin"
        assert "no-store" in response["Cache-Control"]


def test_verify_page_reveals_nothing_about_patient(client, invitation, patient):
    open_link(client, invitation.token)

    page = client.get(reverse("invitation-verify")).text

    assert "Lindqvist" not in page
    assert "Maren" not in page
    assert "maren.lindqvist" not in page
    assert "1980" not in page


def _unknown(patient):
    make_invitation(patient)
    return "Zm9yZ2VkLXRva2VuLXRoYXQtbWF0Y2hlcy1ub3RoaW5nLWF0LWFsbA"


def _accepted(patient):
    invitation = make_invitation(patient)
    Invitation.objects.filter(pk=invitation.pk).update(
        status=Invitation.Status.ACCEPTED
    )
    return invitation.token


def _expired(patient):
    past = timezone.now() - datetime.timedelta(minutes=1)
    return make_invitation(patient, expires_at=past).token


def _replaced(patient):
    old = make_invitation(patient)
    send_invitation(patient, actor=None)
    return old.token


def _revoked(patient):
    return make_invitation(patient, status=Invitation.Status.REVOKED).token


def _locked(patient):
    return make_invitation(
        patient, status=Invitation.Status.LOCKED, dob_failures=5
    ).token


DEAD_LINKS = {
    "unknown": _unknown,
    "accepted": _accepted,
    "expired": _expired,
    "replaced": _replaced,
    "revoked": _revoked,
    "locked": _locked,
}


def _dead_link_responses(client, token):
    opened = open_link(client, token)
    page = client.get(opened.url)
    posted = post_birth_date(client)
    signup = client.get(reverse("invitation-signup"))
    return opened, page, posted, signup


@pytest.mark.parametrize("kind", DEAD_LINKS)
def test_dead_link_shows_no_longer_works(client, patient, kind):
    token = DEAD_LINKS[kind](patient)

    opened, page, posted, signup = _dead_link_responses(client, token)

    assert opened.status_code == 302
    assert opened.url == reverse("invitation-verify")
    for response in (page, posted, signup):
        assert response.status_code == 404
        assert "This link no longer works" in response.text
        assert "ask for a new invitation" in response.text


def test_dead_links_all_look_the_same(db):
    seen = {}
    for number, (kind, make_token) in enumerate(DEAD_LINKS.items()):
        patient = make_patient(
            given=f"Dead{number}", email=f"dead{number}@example.org", portal_access=True
        )
        responses = _dead_link_responses(Client(), make_token(patient))
        seen[kind] = [
            (
                response.status_code,
                response.get("Location"),
                without_csrf(response.text),
            )
            for response in responses
        ]

    reference = seen.pop("unknown")
    for kind, responses in seen.items():
        assert responses == reference, f"the {kind} link differs from an unknown one"


def test_dead_link_counts_no_birth_date_miss(client, patient):
    token = _revoked(patient)

    _dead_link_responses(client, token)

    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOB_MISMATCH)


def test_link_expires_while_page_is_open(client, invitation):
    open_link(client, invitation.token)

    later = invitation.expires_at + datetime.timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        response = post_birth_date(client)

    assert response.status_code == 404
    assert "This link no longer works" in response.text


def test_wrong_birth_date_shows_message_and_counts(client, invitation):
    open_link(client, invitation.token)

    response = post_birth_date(client, day="18")

    assert response.status_code == 404
    assert "This link no longer works" in response.text
    assert "open the link in your email again" in response.text
    invitation.refresh_from_db()
    assert invitation.dob_failures == 1
    assert invitation.status == Invitation.Status.PENDING
    event = AuditEvent.objects.get(action=AuditEvent.Action.DOB_MISMATCH)
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.detail["invitation_id"] == invitation.pk


def test_wrong_birth_date_looks_like_dead_link(client, invitation):
    open_link(client, invitation.token)
    wrong = post_birth_date(client, day="18")
    dead = Client().get(reverse("invitation-link", args=["not-a-real-token"]))
    dead = Client().get(dead.url) if dead.status_code == 302 else dead

    assert wrong.status_code == dead.status_code == 404
    assert wrong.content == dead.content


def test_retry_after_wrong_birth_date(client, invitation):
    open_link(client, invitation.token)
    post_birth_date(client, day="18")

    open_link(client, invitation.token)
    response = post_birth_date(client)

    assert response.url == reverse("invitation-signup")


def test_link_locks_after_five_wrong_dates(client, invitation, settings):
    assert settings.INVITATION_MAX_DOB_ATTEMPTS == 5
    open_link(client, invitation.token)

    responses = [post_birth_date(client, year=str(1970 + n)) for n in range(5)]

    assert [r.status_code for r in responses] == [404] * 5
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.LOCKED

    # The right date no longer helps, from this browser or a fresh one.
    assert post_birth_date(client).status_code == 404
    open_link(client, invitation.token)
    assert post_birth_date(client).status_code == 404
    assert "_auth_user_id" not in client.session
    assert client.session.get("invitation_verified_id") is None


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (("Smarch", "17", "1980"), "Enter the month as a number from 1 to 12"),
        (("13", "17", "1980"), "Enter the month as a number from 1 to 12"),
        (("5", "x", "1980"), "Enter the day as a number from 1 to 31"),
        (("5", "17", "80"), "Enter the year with four digits"),
        (("2", "30", "1980"), "That date does not exist"),
        (("5", "17", "2999"), "cannot be in the future"),
        (("", "", ""), "This field is required"),
        (("²", "17", "1980"), "Enter the month as a number from 1 to 12"),
        (("5", "¹⁷", "1980"), "Enter the day as a number from 1 to 31"),
        (("5", "17", "²²²²"), "Enter the year with four digits"),
    ],
)
def test_unreadable_birth_date_gets_clear_message(client, invitation, parts, message):
    open_link(client, invitation.token)
    month, day, year = parts

    response = post_birth_date(client, month=month, day=day, year=year)

    assert response.status_code == 200
    assert message in response.text
    invitation.refresh_from_db()
    assert invitation.dob_failures == 0


@pytest.mark.parametrize(
    ("month", "day", "year"),
    [
        ("May", "17", "1980"),
        ("may.", "17", "1980"),
        ("05", "17", "1980"),
        (" 5 ", "17 ", "1980"),
        ("٥", "١٧", "١٩٨٠"),
    ],
)
def test_birth_date_accepts_what_people_type(client, invitation, month, day, year):
    open_link(client, invitation.token)

    response = post_birth_date(client, month=month, day=day, year=year)

    assert response.status_code == 302
    assert response.url == reverse("invitation-signup")


def test_signup_page_needs_matched_birth_date(client, invitation):
    open_link(client, invitation.token)

    response = client.get(reverse("invitation-signup"))

    assert response.status_code == 404
    assert "This link no longer works" in response.text


def test_matched_birth_date_is_bound_to_its_invitation(client, invitation, db):
    other_patient = make_patient(email="other@example.org", portal_access=True)
    other = make_invitation(other_patient)
    open_link(client, invitation.token)
    post_birth_date(client)

    # Opening another link in the same browser clears the earlier match.
    open_link(client, other.token)
    response = client.get(reverse("invitation-signup"))

    assert response.status_code == 404


def test_birth_date_guessing_is_limited_per_address(client, db, settings):
    settings.PATIENT_ATTEMPT_LIMIT = 3
    settings.INVITATION_MAX_DOB_ATTEMPTS = 100
    patients = [
        make_patient(
            given=f"Guess{n}", email=f"guess{n}@example.org", portal_access=True
        )
        for n in range(2)
    ]
    first, second = (make_invitation(patient) for patient in patients)
    open_link(client, first.token)

    statuses = [post_birth_date(client, day="1").status_code for _ in range(3)]
    # Moving to another link does not reset the count for this address.
    open_link(client, second.token)
    blocked = post_birth_date(client)

    assert statuses == [404, 404, 404]
    assert blocked.status_code == 429
    assert "Too many tries" in blocked.text
    second.refresh_from_db()
    assert second.dob_failures == 0

    elsewhere = Client(REMOTE_ADDR="192.0.2.7")
    open_link(elsewhere, second.token)
    assert post_birth_date(elsewhere).status_code == 302
