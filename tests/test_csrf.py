"""Every form that changes something is refused without its CSRF token."""

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.conftest import PASSWORD, make_patient

STAFF_FORMS = [
    ("bulk-action", False, {"action": "enable", "scope": "page", "patient": "1"}),
    ("patient-username", True, {"username": "new.name"}),
    ("patient-email", True, {"email": "new@example.org"}),
    ("patient-access", True, {"enabled": "true"}),
    ("patient-invite", True, {}),
    ("patient-letter", True, {"idempotency_key": "k"}),
    ("staff-logout", False, {}),
]
PATIENT_FORMS = [
    ("portal-email-change", {"email": "new@example.org", "password": PASSWORD}),
    ("portal-email-confirm", {}),
    ("portal-logout", {}),
]
ANONYMOUS_FORMS = [
    ("staff-login", {"username": "frontdesk", "password": PASSWORD}),
    ("portal-login", {"username": "chidi", "password": PASSWORD}),
    ("portal-password-reset", {"identifier": "chidi"}),
    ("portal-forgot-username", {"email": "chidi@example.org"}),
    ("invitation-verify", {"month": "5", "day": "17", "year": "1980"}),
    ("invitation-signup", {"username": "x", "password1": "y", "password2": "y"}),
    ("activate", {"code": "ABCD-EFGH-JKMN"}),
]


def _strict_client() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.mark.parametrize(("name", "with_pk", "data"), STAFF_FORMS)
def test_staff_form_needs_csrf_token(db, front_desk, name, with_pk, data):
    patient = make_patient(portal_access=True)
    client = _strict_client()
    client.force_login(front_desk)
    url = reverse(name, args=[patient.pk]) if with_pk else reverse(name)
    events_before = AuditEvent.objects.count()

    response = client.post(url, data)

    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.email != "new@example.org"
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize(("name", "data"), PATIENT_FORMS)
def test_patient_form_needs_csrf_token(patient_with_account, name, data):
    client = _strict_client()
    client.force_login(patient_with_account.user)

    response = client.post(reverse(name), data)

    assert response.status_code == 403
    assert "_auth_user_id" in client.session


@pytest.mark.parametrize(("name", "data"), ANONYMOUS_FORMS)
def test_public_form_needs_csrf_token(patient_with_account, front_desk, name, data):
    client = _strict_client()

    response = client.post(reverse(name), data)

    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
