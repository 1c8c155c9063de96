"""The staff login's second step: a code from an authenticator app (TOTP).

The test settings turn STAFF_TWO_FACTOR off for every other test. Here it is on
unless a test turns it off. Codes are computed from the device's own key
with RFC 6238, as a phone's app would.
"""

import base64
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests.conftest import PASSWORD, make_patient

PROJECT = Path(__file__).resolve().parent.parent
CODE_REJECTED = "That code was not accepted."
LOGIN = reverse("staff-login")
CODE_PAGE = reverse("staff-login-code")
ENROL_PAGE = reverse("staff-two-factor-enrol")
START = datetime.datetime(2026, 3, 2, 9, 0, 0, tzinfo=datetime.UTC)

Action = AuditEvent.Action
Outcome = AuditEvent.Outcome


@pytest.fixture(autouse=True)
def _two_factor_on(settings):
    settings.STAFF_TWO_FACTOR = True


@pytest.fixture
def device(front_desk):
    return TOTPDevice.objects.create(user=front_desk, name="phone", confirmed=True)


def code_for(device: TOTPDevice) -> str:
    """The code the device's app shows at the current (possibly travelled) time."""
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits):06d}"


def wrong_code(device: TOTPDevice) -> str:
    """A code that none of the steps the device accepts now would show."""
    device.refresh_from_db()
    accepted = {
        totp(device.bin_key, device.step, device.t0, device.digits, drift)
        for drift in range(-device.tolerance, device.tolerance + 1)
    }
    return next(f"{code:06d}" for code in range(1_000_000) if code not in accepted)


def log_in(client, username="frontdesk", next_path=None):
    url = LOGIN if next_path is None else f"{LOGIN}?next={next_path}"
    return client.post(url, {"username": username, "password": PASSWORD})


def staff_logins(outcome=Outcome.SUCCESS):
    return AuditEvent.objects.filter(action=Action.STAFF_LOGIN, outcome=outcome)


# Setting up an authenticator app at the first login


def test_first_login_sets_up_app(client, front_desk):
    response = log_in(client)

    assert response.status_code == 302
    assert response.url == ENROL_PAGE
    assert not staff_logins().exists()

    page = client.get(ENROL_PAGE)
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=front_desk)
    assert device.confirmed is False
    key_text = base64.b32encode(device.bin_key).decode().rstrip("=")
    secret = page.context["secret"]
    assert secret.replace(" ", "") == key_text
    assert secret in page.content.decode()
    assert 'src="data:image/svg+xml' in page.content.decode()

    # Before the code matches, the staff pages stay closed.
    assert client.get(reverse("onboarding")).url == f"{ENROL_PAGE}?next=/"

    confirmed = client.post(ENROL_PAGE, {"code": code_for(device)})

    assert confirmed.status_code == 302
    assert confirmed.url == reverse("onboarding")
    assert client.get(reverse("onboarding")).status_code == 200
    device.refresh_from_db()
    assert device.confirmed is True
    event = staff_logins().get()
    assert event.actor == front_desk
    assert event.detail == {"second_factor": "totp", "enrolled": True}


def test_set_up_page_keeps_its_secret_until_confirmed(client, front_desk):
    log_in(client)

    first = client.get(ENROL_PAGE).context["secret"]
    second = client.get(ENROL_PAGE).context["secret"]

    assert first == second
    assert TOTPDevice.objects.filter(user=front_desk).count() == 1


def test_wrong_code_does_not_confirm_the_new_device(client, front_desk):
    log_in(client)
    client.get(ENROL_PAGE)
    device = TOTPDevice.objects.get(user=front_desk)

    response = client.post(ENROL_PAGE, {"code": wrong_code(device)})

    assert response.status_code == 200
    assert CODE_REJECTED in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed is False
    assert client.get(reverse("onboarding")).status_code == 302
    failure = staff_logins(Outcome.FAILURE).get()
    assert failure.detail["reason"] == "wrong code"


def test_user_with_device_cannot_set_up_another(client, device):
    log_in(client)

    response = client.get(ENROL_PAGE)

    assert response.status_code == 302
    assert response.url == CODE_PAGE
    assert TOTPDevice.objects.filter(user=device.user).count() == 1


# The code page


def test_login_with_device_asks_for_code(client, device):
    response = log_in(client)

    assert response.status_code == 302
    assert response.url == CODE_PAGE
    page = client.get(CODE_PAGE)
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.content.decode()
    assert not staff_logins().exists()


def test_code_page_wrong_right_reused(client, device):
    with time_machine.travel(START, tick=False) as clock:
        log_in(client)

        rejected = client.post(CODE_PAGE, {"code": wrong_code(device)})

        assert rejected.status_code == 200
        assert CODE_REJECTED in rejected.content.decode()
        assert rejected.context["form"]["code"].value() is None
        assert client.get(reverse("onboarding")).url == f"{CODE_PAGE}?next=/"

        clock.shift(2)
        code = code_for(device)
        accepted = client.post(CODE_PAGE, {"code": code})

        assert accepted.status_code == 302
        assert accepted.url == reverse("onboarding")
        assert client.get(reverse("onboarding")).status_code == 200

        client.post(reverse("staff-logout"))
        log_in(client)
        reused = client.post(CODE_PAGE, {"code": code})

        assert reused.status_code == 200
        assert CODE_REJECTED in reused.content.decode()
        assert client.get(reverse("onboarding")).status_code == 302

    assert staff_logins().get().detail == {"second_factor": "totp"}
    failures = staff_logins(Outcome.FAILURE)
    assert failures.count() == 2
    assert {event.actor_id for event in failures} == {device.user_id}
    assert all(event.detail["reason"] == "wrong code" for event in failures)


def test_right_code_waits_after_a_wrong_one(client, device):
    with time_machine.travel(START, tick=False) as clock:
        log_in(client)
        client.post(CODE_PAGE, {"code": wrong_code(device)})

        too_soon = client.post(CODE_PAGE, {"code": code_for(device)})

        assert too_soon.status_code == 200
        assert CODE_REJECTED in too_soon.content.decode()
        rejections = staff_logins(Outcome.FAILURE).order_by("id")
        assert [event.detail["reason"] for event in rejections] == [
            "wrong code",
            "too soon after a wrong code",
        ]

        # Two wrong codes in a row double the wait to two seconds.
        clock.shift(1.5)
        client.post(CODE_PAGE, {"code": wrong_code(device)})
        clock.shift(1.5)
        assert client.post(CODE_PAGE, {"code": code_for(device)}).status_code == 200
        device.refresh_from_db()
        assert device.throttling_failure_count == 2

        clock.shift(1)
        accepted = client.post(CODE_PAGE, {"code": code_for(device)})

    assert accepted.status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", ""])
def test_code_not_six_digits(client, device, code):
    log_in(client)

    response = client.post(CODE_PAGE, {"code": code})

    assert response.status_code == 200
    assert response.context["form"].errors["code"]
    assert not AuditEvent.objects.exists()
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


def test_code_with_spaces_is_accepted(client, device):
    log_in(client)
    code = code_for(device)

    response = client.post(CODE_PAGE, {"code": f" {code[:3]} {code[3:]} "})

    assert response.status_code == 302


def test_next_page_survives_the_code_step(client, device):
    response = log_in(client, next_path="/audit/")

    assert response.url == f"{CODE_PAGE}?next=/audit/"
    accepted = client.post(
        f"{CODE_PAGE}?next=/audit/", {"code": code_for(device), "next": "/audit/"}
    )

    assert accepted.url == "/audit/"


def test_next_page_on_another_site_is_dropped(client, device):
    response = log_in(client, next_path="https://elsewhere.example/")

    assert response.url == CODE_PAGE


def test_second_step_needs_the_password_first(client, db):
    for page in (CODE_PAGE, ENROL_PAGE):
        response = client.get(page)

        assert response.status_code == 302
        assert response.url == LOGIN


def test_second_step_is_not_for_patients(client, patient_with_account):
    client.force_login(patient_with_account.user)

    assert client.get(CODE_PAGE).status_code == 403
    assert client.get(ENROL_PAGE).status_code == 403


def test_password_login_drops_earlier_code(client, device):
    log_in(client)
    client.post(CODE_PAGE, {"code": code_for(device)})
    assert client.get(reverse("onboarding")).status_code == 200

    log_in(client)

    assert client.get(reverse("onboarding")).url == f"{CODE_PAGE}?next=/"


# Every staff page waits for the code


def _staff_gets(patient):
    return [
        reverse("onboarding"),
        reverse("patient-portal", args=[patient.pk]),
        reverse("audit-log"),
        reverse("audit-export-csv"),
        reverse("audit-export-fhir"),
        reverse("demo-mailbox"),
        reverse("demo-mailbox-message", args=["any"]),
    ]


def _staff_posts(patient):
    return [
        (reverse("bulk-action"), {"action": "enable", "patient": [patient.pk]}),
        (reverse("patient-access", args=[patient.pk]), {"enabled": "true"}),
        (reverse("patient-invite", args=[patient.pk]), {}),
        (reverse("patient-username", args=[patient.pk]), {"username": "newname"}),
        (reverse("patient-email", args=[patient.pk]), {"email": "new@example.org"}),
    ]


@pytest.mark.parametrize("has_device", [True, False])
def test_staff_pages_wait_for_code(client, admin_user, has_device):
    if has_device:
        TOTPDevice.objects.create(user=admin_user, name="phone", confirmed=True)
    step = CODE_PAGE if has_device else ENROL_PAGE
    patient = make_patient(email="before@example.org")
    log_in(client, username="admin")

    for url in _staff_gets(patient):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(f"{step}?next="), url
    for url, data in _staff_posts(patient):
        response = client.post(url, data)
        assert response.status_code == 302, url
        assert response.url.startswith(f"{step}?next="), url

    patient.refresh_from_db()
    assert patient.portal_access is False
    assert patient.email == "before@example.org"
    assert not AuditEvent.objects.filter(patient=patient).exists()


def test_staff_pages_open_after_code(client, admin_user):
    device = TOTPDevice.objects.create(user=admin_user, name="phone", confirmed=True)
    patient = make_patient()
    log_in(client, username="admin")
    client.post(CODE_PAGE, {"code": code_for(device)})

    for url in _staff_gets(patient)[:5]:
        assert client.get(url).status_code == 200, url


# Turned off


def test_setting_off_skips_the_second_step(client, settings, device):
    settings.STAFF_TWO_FACTOR = False

    response = log_in(client)

    assert response.status_code == 302
    assert response.url == reverse("onboarding")
    assert client.get(reverse("onboarding")).status_code == 200
    assert staff_logins().get().detail == {}
    assert client.get(CODE_PAGE).url == reverse("onboarding")


def _setting_in(module: str, tmp_path, **environment) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"STAFF_TWO_FACTOR", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE=module,
        SECRET_KEY="settings-check-secret-key-0123456789-abcdefghijklmnop",
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        **environment,
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.STAFF_TWO_FACTOR)",
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def test_setting_defaults(tmp_path):
    assert _setting_in("config.settings.base", tmp_path) == "True"
    assert (
        _setting_in("config.settings.base", tmp_path, STAFF_TWO_FACTOR="false")
        == "False"
    )
    assert _setting_in("config.settings.dev", tmp_path) == "False"
    assert (
        _setting_in("config.settings.dev", tmp_path, STAFF_TWO_FACTOR="true") == "True"
    )


# Resetting a user's authenticator app


def test_reset_command_deletes_devices_and_audits(client, device, capsys):
    log_in(client)
    client.post(CODE_PAGE, {"code": code_for(device)})
    assert client.get(reverse("onboarding")).status_code == 200

    call_command("reset_staff_two_factor", "frontdesk")

    assert "Removed the authenticator app of frontdesk" in capsys.readouterr().out
    assert not TOTPDevice.objects.filter(user=device.user).exists()
    event = AuditEvent.objects.get(action=Action.TWO_FACTOR_RESET)
    assert event.actor is None
    assert event.actor_label == "manage.py reset_staff_two_factor"
    assert event.detail == {
        "user_id": device.user_id,
        "username": "frontdesk",
        "devices": 1,
    }
    # The open session loses its second factor and must set up a new app.
    assert client.get(reverse("onboarding")).url == f"{ENROL_PAGE}?next=/"
    client.post(reverse("staff-logout"))
    assert log_in(client).url == ENROL_PAGE


def test_reset_command_without_device(front_desk, capsys):
    call_command("reset_staff_two_factor", "FrontDesk")

    assert "frontdesk has no authenticator app" in capsys.readouterr().out
    assert not AuditEvent.objects.exists()


def test_reset_command_names_an_unknown_user(db):
    with pytest.raises(CommandError) as raised:
        call_command("reset_staff_two_factor", "nobody")

    assert "'nobody'" in str(raised.value)


# In a browser


def test_set_up_page_in_chromium(page, live_server, transactional_db, front_desk):
    violations = []

    def keep_policy_violation(message):
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", keep_policy_violation)
    base_url = live_server.url

    page.goto(f"{base_url}/staff/login/")
    page.fill("input[name=username]", "frontdesk")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{ENROL_PAGE}")

    qr_width = page.eval_on_selector("img.qr-code", "image => image.naturalWidth")
    assert qr_width > 0
    secret = page.text_content("#totp-secret")
    device = TOTPDevice.objects.get(user=front_desk)
    assert secret.replace(" ", "") == base64.b32encode(device.bin_key).decode()

    page.fill("input[name=code]", code_for(device))
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base_url}/")

    assert page.is_visible("text=Signed in as frontdesk")
    assert violations == []
