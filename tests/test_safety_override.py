"""Including one patient a safety check skipped, with a reason, on the portal page."""

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from invitations.models import Invitation
from patients import bulk
from tests.conftest import make_patient

REASON = "Confirmed at the desk that this is her own address."


@pytest.fixture
def supervisor(front_desk):
    front_desk.user_permissions.add(
        Permission.objects.get(codename="override_safety_check")
    )
    return front_desk


@pytest.fixture
def supervisor_client(client, supervisor):
    client.force_login(supervisor)
    return client


@pytest.fixture
def shared_address(db):
    """A patient with access whose address is also another patient's."""
    make_patient(given="Husband", email="home@example.org")
    return make_patient(given="Wife", email="home@example.org", portal_access=True)


def _invite(client, patient, override=""):
    return client.post(
        reverse("patient-invite", args=[patient.pk]),
        {"override": override} if override else {},
        follow=True,
    )


def _overrides():
    return AuditEvent.objects.filter(action=AuditEvent.Action.OVERRIDE)


def test_skipped_patient_is_not_invited(supervisor_client, shared_address):
    response = _invite(supervisor_client, shared_address)

    assert not Invitation.objects.exists()
    assert (
        "No invitation was sent: Email address shared with another patient or a "
        "practitioner." in response.text
    )


def test_override_with_reason_invites_and_audits(
    supervisor_client, supervisor, shared_address
):
    _invite(supervisor_client, shared_address, override=f"  {REASON} ")

    assert Invitation.objects.filter(patient=shared_address).count() == 1
    override = _overrides().get()
    assert override.patient == shared_address
    assert override.actor == supervisor
    assert override.detail == {
        "attempted": "invite",
        "checks": ["shared_email"],
        "reason": REASON,
    }
    assert AuditEvent.objects.filter(action=AuditEvent.Action.INVITE).count() == 1


def test_override_needs_permission(front_desk_client, shared_address):
    response = _invite(front_desk_client, shared_address, override=REASON)

    assert response.status_code == 403
    assert not Invitation.objects.exists()
    assert not _overrides().exists()


def test_blank_reason_overrides_nothing(supervisor_client, shared_address):
    response = _invite(supervisor_client, shared_address, override="   ")

    assert response.status_code == 400
    assert "Type why this patient should be included anyway." in response.text
    assert not Invitation.objects.exists()
    assert not _overrides().exists()


def test_child_cannot_be_overridden(supervisor_client):
    today = timezone.localdate()
    child = make_patient(
        birth_date=bulk.years_before(today, 8), portal_access=True, given="Kid"
    )

    response = _invite(supervisor_client, child, override=REASON)

    assert not Invitation.objects.exists()
    assert not _overrides().exists()
    assert "Too young for an own account" in response.text


def test_override_enables_access_for_minor(supervisor_client, supervisor):
    today = timezone.localdate()
    teen = make_patient(birth_date=bulk.years_before(today, 16), given="Teen")

    supervisor_client.post(
        reverse("patient-access", args=[teen.pk]),
        {"enabled": "true", "override": "Emancipated minor, papers on file."},
    )

    teen.refresh_from_db()
    assert teen.portal_access is True
    override = _overrides().get()
    assert override.detail["checks"] == ["minor"]
    assert override.detail["attempted"] == "enable"


def test_minor_not_enabled_without_override(supervisor_client):
    today = timezone.localdate()
    teen = make_patient(birth_date=bulk.years_before(today, 16), given="Teen")

    response = supervisor_client.post(
        reverse("patient-access", args=[teen.pk]), {"enabled": "true"}, follow=True
    )

    teen.refresh_from_db()
    assert teen.portal_access is False
    assert "Portal access was not enabled: Minor" in response.text


def test_long_reason_is_refused_with_limit(supervisor_client, shared_address):
    response = _invite(supervisor_client, shared_address, override="x" * 2000)

    assert response.status_code == 400
    assert "The reason has 2000 characters. Shorten it to 500 or fewer." in (
        response.text
    )
    assert not Invitation.objects.exists()
    assert not _overrides().exists()


def test_override_covers_every_check_and_audits_them(supervisor_client):
    make_patient(given="Parent", email="family@example.org")
    spouse = make_patient(
        given="Spouse",
        email="family@example.org",
        email_changed_at=timezone.now() - datetime.timedelta(days=1),
        portal_access=True,
    )
    page = supervisor_client.get(reverse("patient-portal", args=[spouse.pk]))
    assert (
        "Skipped by a safety check: Email address shared with another patient or "
        "a practitioner; Email address changed recently." in page.text
    )

    _invite(supervisor_client, spouse, override=REASON)

    assert Invitation.objects.filter(patient=spouse).count() == 1
    assert _overrides().get().detail["checks"] == ["shared_email", "email_changed"]


def test_minor_at_shared_address_cannot_be_overridden(supervisor_client):
    today = timezone.localdate()
    make_patient(given="Parent", email="family@example.org")
    teen = make_patient(
        given="Teen",
        email="family@example.org",
        birth_date=bulk.years_before(today, 15),
        portal_access=True,
    )
    page = supervisor_client.get(reverse("patient-portal", args=[teen.pk]))
    assert 'id="invite-override"' not in page.text

    response = _invite(supervisor_client, teen, override=REASON)

    assert not Invitation.objects.exists()
    assert not _overrides().exists()
    assert "No invitation was sent: Minor" in response.text


def test_page_offers_override_with_permission(supervisor_client, shared_address):
    response = supervisor_client.get(
        reverse("patient-portal", args=[shared_address.pk])
    )

    assert 'id="invite-override"' in response.text
    assert "Send the invitation anyway" in response.text


def test_page_hides_override_without_permission(front_desk_client, shared_address):
    response = front_desk_client.get(
        reverse("patient-portal", args=[shared_address.pk])
    )

    assert 'id="invite-blocked"' in response.text
    assert 'id="invite-override"' not in response.text


def test_page_hides_override_for_hard_reason(supervisor_client):
    patient = make_patient(email="", portal_access=True)

    response = supervisor_client.get(reverse("patient-portal", args=[patient.pk]))

    assert "Skipped by a safety check: No email address." in response.text
    assert 'id="invite-override"' not in response.text


def test_bulk_action_still_skips_overridden_patient(supervisor_client, shared_address):
    _invite(supervisor_client, shared_address, override=REASON)
    later = timezone.now() + datetime.timedelta(days=30)

    result = bulk.plan(
        type(shared_address).objects.filter(pk=shared_address.pk), bulk.INVITE, later
    )

    assert result.skipped == {"shared_email": 1}
