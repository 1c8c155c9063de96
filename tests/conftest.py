"""Personas and small builders shared by every test.

Personas: an administrator, a front-desk user (may enable and invite), a
read-only staff user, and a patient with a finished portal account.
"""

import datetime
import itertools

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.commands import flush
from django.db import connection

from patients.models import Patient, Practitioner, Tag

# The smtp_server fixture: a real SMTP server on 127.0.0.1 for any test, and
# the browser and page fixtures. Registered once here, because a module that
# imports the session-scoped browser fixture gets its own copy, and a second
# Playwright instance cannot start while the first one runs.
pytest_plugins = ["tests.smtp", "tests.browser"]

PASSWORD = "correct horse battery staple"
_sequence = itertools.count(1)


@pytest.fixture(autouse=True, scope="session")
def _flush_past_audit_trigger():
    """Let the test runner empty the audit table between browser tests.

    Tests that run a live server are cleaned up with TRUNCATE, which the
    audit table's trigger refuses on PostgreSQL. The trigger is switched off
    just before that cleanup and on again right after it, so every test
    still runs with it.
    """
    original = flush.Command.handle

    def handle(self, **options):
        if connection.vendor != "postgresql":
            return original(self, **options)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        try:
            return original(self, **options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


def make_patient(
    family="Doe",
    given="Jane",
    birth_date=datetime.date(1980, 5, 17),
    email=None,
    **fields,
) -> Patient:
    """Create a patient directly, as an import would, with sensible defaults.

    Without an EMAIL each patient gets an address of their own, so that the
    shared-address safety check applies only where a test shares one.
    """
    number = next(_sequence)
    if email is None:
        email = f"patient{number}@example.org"
    tags = fields.pop("tags", [])
    patient = Patient(
        source=fields.pop("source", "test"),
        source_id=fields.pop("source_id", f"p{number}"),
        birth_date=birth_date,
        **fields,
    )
    patient.set_name(family, given)
    patient.set_email(email)
    patient.save()
    for name in tags:
        patient.tags.add(Tag.objects.get_or_create(name=name)[0])
    return patient


def make_practitioner(family="Ruiz", given="Ana", **fields) -> Practitioner:
    return Practitioner.objects.create(family_name=family, given_names=given, **fields)


def _staff_user(username, *permission_codenames, superuser=False):
    user_model = get_user_model()
    if superuser:
        return user_model.objects.create_superuser(
            username=username, password=PASSWORD, email=f"{username}@practice.test"
        )
    user = user_model.objects.create_user(
        username=username, password=PASSWORD, is_staff=True
    )
    for codename in permission_codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def admin_user(db):
    return _staff_user("admin", superuser=True)


@pytest.fixture
def front_desk(db):
    return _staff_user(
        "frontdesk",
        "enable_portal_access",
        "send_portal_invitation",
        "change_portal_username",
    )


@pytest.fixture
def read_only(db):
    return _staff_user("viewer")


@pytest.fixture
def patient_with_account(db):
    patient = make_patient(
        family="Okafor", given="Chidi", email="chidi@example.org", portal_access=True
    )
    patient.user = get_user_model().objects.create_user(
        username="chidi", password=PASSWORD, email=patient.email
    )
    patient.save()
    return patient


@pytest.fixture
def auditor(db):
    """A staff user who may read and export the audit log, and nothing else."""
    return _staff_user("auditor", "view_auditevent")


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


@pytest.fixture
def front_desk_client(client, front_desk):
    client.force_login(front_desk)
    return client


@pytest.fixture
def read_only_client(client, read_only):
    client.force_login(read_only)
    return client


def make_invitation(patient: Patient, **fields):
    """Invite PATIENT as staff would, then apply FIELDS (e.g. expires_at) to the row.

    The patient must be eligible: portal access on, a valid email, no account.
    """
    from invitations.models import Invitation
    from invitations.services import send_invitation

    invitation = send_invitation(patient, actor=None)
    if fields:
        Invitation.objects.filter(pk=invitation.pk).update(**fields)
        invitation.refresh_from_db()
    return invitation


@pytest.fixture
def clear_attempt_counters():
    """Start and end with empty attempt counters, which live in the cache."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
