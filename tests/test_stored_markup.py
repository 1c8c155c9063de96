"""Markup and control characters in imported data are shown as text, never run."""

import csv

import pytest
from django.urls import reverse

from invitations import emails
from invitations.services import send_invitation
from patients.models import Patient
from tests.import_files import run_import

FAMILY = "<script>alert('family')</script>"
GIVEN = '"><img src=x onerror=alert(1)>'
TAG = "<b onmouseover=alert(2)>Cardio</b>"
PROVIDER = "<svg onload=alert(3)>"


def _import(tmp_path, email="markup@example.org"):
    path = tmp_path / "patients.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "identifier",
                "family_name",
                "given_names",
                "birth_date",
                "email",
                "primary_provider",
                "tags",
            ]
        )
        writer.writerow(["M1", FAMILY, GIVEN, "1970-01-02", email, PROVIDER, TAG])
    run_import(path)
    return Patient.objects.get()


def _assert_escaped(page: str):
    for raw in (FAMILY, GIVEN, TAG, PROVIDER):
        assert raw not in page
    assert "&lt;script&gt;alert(&#x27;family&#x27;)&lt;/script&gt;" in page
    assert "&lt;svg onload=alert(3)&gt;" in page


def test_list_shows_imported_markup_as_text(front_desk_client, tmp_path):
    _import(tmp_path)

    page = front_desk_client.get(reverse("onboarding")).text

    _assert_escaped(page)


def test_patient_page_shows_imported_markup_as_text(front_desk_client, tmp_path):
    patient = _import(tmp_path)

    page = front_desk_client.get(reverse("patient-portal", args=[patient.pk])).text

    _assert_escaped(page)


def test_invitation_email_carries_no_imported_text(front_desk, tmp_path):
    patient = _import(tmp_path)
    Patient.objects.filter(pk=patient.pk).update(portal_access=True)
    patient.refresh_from_db()

    message = emails.invitation_email(send_invitation(patient, actor=front_desk))

    body = message.body + message.alternatives[0].content + message.subject
    for raw in (FAMILY, GIVEN, TAG, PROVIDER, "alert"):
        assert raw not in body


def test_address_line_break_never_in_header(tmp_path, db):
    patient = _import(tmp_path, email="a@example.org\r\nBcc: thief@example.net")

    assert patient.email_valid is False
    with pytest.raises(emails.InvalidRecipient, match="line break"):
        emails.check_recipient(patient.email)
