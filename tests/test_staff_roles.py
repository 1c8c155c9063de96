"""Staff roles, the command that creates staff users, and audited refusals."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from audit.models import AuditEvent
from patients import roles
from tests.conftest import make_patient


def _codes(group_name):
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_migrate_creates_the_roles(db):
    assert _codes(roles.FRONT_DESK) == set(roles.FRONT_DESK_PERMISSIONS)
    assert _codes(roles.READ_ONLY) == set()
    administrator = _codes(roles.ADMINISTRATOR)
    assert "patients.override_safety_check" in administrator
    assert "audit.view_auditevent" in administrator
    assert set(roles.FRONT_DESK_PERMISSIONS) <= administrator


def test_existing_role_is_not_reset(db):
    front_desk = Group.objects.get(name=roles.FRONT_DESK)
    front_desk.permissions.set(
        Permission.objects.filter(codename="send_portal_invitation")
    )

    roles.ensure_roles()

    assert _codes(roles.FRONT_DESK) == {"patients.send_portal_invitation"}


def _add(*args):
    output = io.StringIO()
    call_command("add_staff_user", *args, stdout=output)
    return output.getvalue()


def test_add_staff_user_with_role(client, db):
    output = _add("jdoe", "--role", "front-desk")

    user = get_user_model().objects.get(username="jdoe")
    assert user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == [roles.FRONT_DESK]
    password = output.rsplit("First password: ", 1)[1].strip()
    assert user.check_password(password)
    assert user.has_perm("patients.enable_portal_access")
    assert not user.has_perm("patients.change_patient_email")


def test_add_staff_user_refuses_taken_name(db):
    _add("jdoe", "--role", "read-only")

    with pytest.raises(CommandError, match="'JDoe' already exists"):
        _add("JDoe", "--role", "administrator")


def test_add_staff_user_needs_known_role(db):
    with pytest.raises(CommandError, match="invalid choice: 'nurse'"):
        _add("jdoe", "--role", "nurse")


def _staff_client(client, role):
    _add("member", "--role", role)
    client.force_login(get_user_model().objects.get(username="member"))
    return client


@pytest.mark.parametrize(
    ("role", "url_name", "data", "allowed"),
    [
        ("front-desk", "patient-access", {"enabled": "true"}, True),
        ("front-desk", "patient-email", {"email": "new@example.org"}, False),
        ("read-only", "patient-access", {"enabled": "true"}, False),
        ("read-only", "patient-invite", {}, False),
        ("administrator", "patient-email", {"email": "new@example.org"}, True),
    ],
)
def test_role_decides_what_staff_may_do(client, db, role, url_name, data, allowed):
    staff = _staff_client(client, role)
    patient = make_patient()

    response = staff.post(reverse(url_name, args=[patient.pk]), data)

    assert (response.status_code != 403) is allowed
    refused = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED)
    assert refused.exists() is not allowed


def test_refusal_is_audited_with_permission(read_only_client, read_only):
    patient = make_patient()
    url = reverse("patient-access", args=[patient.pk])

    response = read_only_client.post(url, {"enabled": "true"})

    assert response.status_code == 403
    event = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert event.actor == read_only
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.detail == {
        "method": "POST",
        "path": url,
        "reason": "missing permission",
        "permission": "patients.enable_portal_access",
    }
    patient.refresh_from_db()
    assert patient.portal_access is False


def test_bulk_action_refusal_changes_nothing(read_only_client):
    patients = [make_patient(given=f"P{number}") for number in range(3)]

    response = read_only_client.post(
        reverse("bulk-action"),
        {
            "action": "enable",
            "scope": "page",
            "patient": [p.pk for p in patients],
            "confirm": "1",
            "idempotency_key": "k1",
        },
    )

    assert response.status_code == 403
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count() == 1
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.ENABLE_ACCESS
    ).exists()


def test_patient_on_staff_page_is_audited(client, patient_with_account):
    client.force_login(patient_with_account.user)

    response = client.get(reverse("onboarding"))

    assert response.status_code == 403
    event = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert event.actor == patient_with_account.user
    assert event.detail["reason"] == "not staff"


@pytest.mark.parametrize(
    "path", ["/audit/", "/audit/export.csv", "/audit/export.ndjson"]
)
def test_refused_audit_view_is_audited(read_only_client, read_only, path):
    response = read_only_client.get(path)

    assert response.status_code == 403
    event = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert event.actor == read_only
    assert event.detail["permission"] == "audit.view_auditevent"
    assert event.detail["path"] == path
