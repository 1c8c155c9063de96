"""The invitation email: its text, its link, and what it leaves out."""

import datetime

import pytest

from invitations import emails, services
from invitations.models import Invitation
from tests.conftest import make_patient, make_practitioner


@pytest.fixture
def invitation(db, front_desk):
    patient = make_patient(
        family="Okonkwo",
        given="Adaeze",
        birth_date=datetime.date(1975, 3, 9),
        email="adaeze@example.org",
        portal_access=True,
        primary_provider=make_practitioner(family="Lindqvist", given="Maren"),
    )
    return services.send_invitation(patient, actor=front_desk)


def test_subject_names_the_practice(invitation):
    message = emails.invitation_email(invitation)

    assert message.subject == (
        "Riverside Family Practice: set up your patient portal account"
    )


def test_email_goes_to_invitation_address(invitation, settings):
    message = emails.invitation_email(invitation)

    assert message.to == ["adaeze@example.org"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"


def test_link_is_built_from_portal_base_url(invitation, settings):
    settings.PORTAL_BASE_URL = "https://portal.riverside.test"

    link = emails.invitation_link(invitation)

    assert link == f"https://portal.riverside.test/invite/{invitation.token}/"
    assert services.find_invitation(invitation.token).pk == invitation.pk


def test_both_parts_carry_link_and_expiry(invitation):
    invitation.expires_at = datetime.datetime(2031, 7, 4, 15, 0, tzinfo=datetime.UTC)
    message = emails.invitation_email(invitation)
    html = message.alternatives[0].content

    for body in (message.body, html):
        assert emails.invitation_link(invitation) in body
        assert "July 4, 2031" in body
        assert "ask for a new invitation" in body
        assert "Riverside Family Practice" in body


def test_html_part_is_html(invitation):
    message = emails.invitation_email(invitation)

    [alternative] = message.alternatives
    assert alternative.mimetype == "text/html"
    assert alternative.content.lstrip().startswith("<!DOCTYPE html>")


def test_email_has_nothing_clinical_or_personal(invitation):
    message = emails.invitation_email(invitation)
    html = message.alternatives[0].content

    for body in (message.subject, message.body, html):
        assert "Adaeze" not in body
        assert "Okonkwo" not in body
        assert "1975" not in body
        assert "Lindqvist" not in body


def test_practice_name_is_escaped_only_in_html(invitation, settings):
    settings.PRACTICE_NAME = "Smith & Jones <Clinic>"

    message = emails.invitation_email(invitation)

    assert "Smith & Jones <Clinic>" in message.subject
    assert "Smith & Jones <Clinic>" in message.body
    html = message.alternatives[0].content
    assert "Smith &amp; Jones &lt;Clinic&gt;" in html
    assert "<Clinic>" not in html


def test_practice_name_line_break_stays_out_of_subject(invitation, settings):
    settings.PRACTICE_NAME = "Riverside\r\nBcc: eve@example.net"

    message = emails.invitation_email(invitation)

    assert "\n" not in message.subject
    assert "\r" not in message.subject


@pytest.mark.parametrize(
    "address",
    [
        "adaeze@example.org\r\nBcc: eve@example.net",
        "adaeze@example.org\n",
        "adaeze@example.org, eve@example.net",
        "not an address",
        "",
    ],
)
def test_unusable_address_is_rejected(invitation, address):
    invitation.email = address

    with pytest.raises(emails.InvalidRecipient) as raised:
        emails.invitation_email(invitation)

    assert "example" not in str(raised.value)
    assert "send a new invitation" in str(raised.value)


def test_expiry_date_uses_practice_time_zone(invitation, settings):
    settings.TIME_ZONE = "America/New_York"
    # 02:00 UTC on July 5 is still July 4 in New York.
    invitation.expires_at = datetime.datetime(2031, 7, 5, 2, 0, tzinfo=datetime.UTC)

    message = emails.invitation_email(invitation)

    assert "July 4, 2031" in message.body


def test_token_is_stable_for_an_invitation(invitation):
    again = Invitation.objects.get(pk=invitation.pk)

    assert emails.invitation_link(again) == emails.invitation_link(invitation)
