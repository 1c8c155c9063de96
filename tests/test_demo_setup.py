"""rundemo's setup steps, run on the test database without starting any server."""

import io
import re
import socket

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from audit.models import AuditEvent
from demo.mailbox import list_messages
from invitations.models import Invitation
from patients.models import Patient
from tests.conftest import make_patient
from tests.smtp import free_port

pytestmark = pytest.mark.django_db

PATIENTS = 120


@pytest.fixture
def demo_settings(settings, tmp_path):
    settings.DEBUG = True
    settings.DEMO_MAILBOX_DIR = str(tmp_path / "mailbox")
    return settings


def run_setup(tmp_path, *extra):
    output = io.StringIO()
    call_command(
        "rundemo",
        "--setup-only",
        "--patients",
        str(PATIENTS),
        "--export-dir",
        str(tmp_path / "export"),
        "--mailbox-port",
        str(free_port()),
        *extra,
        stdout=output,
    )
    text = output.getvalue()
    password = re.search(r"username frontdesk\s+password (\S+)", text).group(1)
    return text, password


def can_log_in(password):
    request = RequestFactory().post("/staff/login/")
    return authenticate(request, username="frontdesk", password=password) is not None


def test_setup_imports_the_demo_practice(demo_settings, tmp_path):
    run_setup(tmp_path)

    assert Patient.objects.filter(source="demo").count() == PATIENTS
    assert (tmp_path / "export" / "Patient.ndjson").is_file()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT).count() == 1


def test_setup_seeds_every_portal_state(demo_settings, tmp_path):
    run_setup(tmp_path)
    patients = Patient.objects.filter(source="demo")
    enabled = patients.filter(portal_access=True)
    invited = enabled.exclude(last_invite_sent_at=None)
    accounts = patients.exclude(user=None)
    logged_in = patients.exclude(last_login_at=None)

    assert enabled.count() > invited.count() > accounts.count() > logged_in.count() > 0
    assert patients.filter(portal_access=False).exists()
    # Enabling access does not check the address, so the invite action has
    # patients without a usable one to skip with the reason.
    assert enabled.filter(email_valid=False).exists()
    assert Invitation.objects.filter(status=Invitation.Status.ACCEPTED).count() == (
        accounts.count()
    )


def test_setup_audits_every_state_change(demo_settings, tmp_path):
    run_setup(tmp_path)
    patients = Patient.objects.filter(source="demo")
    events = AuditEvent.objects.all()

    assert events.filter(action=AuditEvent.Action.ENABLE_ACCESS).count() == (
        patients.filter(portal_access=True).count()
    )
    assert events.filter(action=AuditEvent.Action.ACCEPT).count() == (
        patients.exclude(user=None).count()
    )
    assert events.filter(action=AuditEvent.Action.LOGIN).count() == (
        patients.exclude(last_login_at=None).count()
    )


def test_setup_emails_invitations_to_mailbox(demo_settings, tmp_path):
    run_setup(tmp_path)
    sent = Invitation.objects.filter(delivery_status=Invitation.Delivery.SENT)

    stored = list_messages(demo_settings.DEMO_MAILBOX_DIR)

    assert len(stored) == sent.count() > 0
    assert {m.to for m in stored} == set(sent.values_list("email", flat=True))


def test_setup_creates_administrator_login(demo_settings, tmp_path):
    _, password = run_setup(tmp_path)
    user = get_user_model().objects.get(username="frontdesk")

    assert user.is_staff
    assert not user.is_superuser
    assert user.groups.filter(name="Administrator").exists()
    assert user.has_perm("patients.enable_portal_access")
    assert user.has_perm("patients.send_portal_invitation")
    assert user.has_perm("patients.change_portal_username")
    assert user.has_perm("patients.override_safety_check")
    assert user.has_perm("audit.view_auditevent")
    assert can_log_in(password)


def test_rerun_keeps_states_new_password(demo_settings, tmp_path):
    _, first_password = run_setup(tmp_path)
    states = list(
        Patient.objects.order_by("pk").values_list("pk", "portal_access", "user_id")
    )
    invitations = Invitation.objects.count()

    text, second_password = run_setup(tmp_path)

    assert "portal states left as they are" in text
    assert f"{PATIENTS} unchanged" in text
    assert second_password != first_password
    assert can_log_in(second_password)
    assert not can_log_in(first_password)
    assert Invitation.objects.count() == invitations
    assert (
        list(
            Patient.objects.order_by("pk").values_list("pk", "portal_access", "user_id")
        )
        == states
    )


def test_setup_rejects_non_demo_patients(demo_settings, tmp_path):
    make_patient(source="fhir")

    with pytest.raises(CommandError, match="contains patients that are not demo"):
        run_setup(tmp_path)

    assert Patient.objects.count() == 1


def test_setup_rejects_debug_off(settings, tmp_path):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="runs only with DEBUG on"):
        run_setup(tmp_path)


def test_rundemo_names_a_busy_port(demo_settings, tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(CommandError, match=f"Port {port} on 127.0.0.1"):
            call_command(
                "rundemo",
                "--port",
                str(port),
                "--mailbox-port",
                str(free_port()),
                stdout=io.StringIO(),
            )

    assert not Patient.objects.exists()
