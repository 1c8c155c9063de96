"""Patient login, logout and home page, and the wall between patients and staff."""

import datetime

import pytest
import time_machine
from django.urls import reverse

from audit.models import AuditEvent
from patients.models import Appointment
from patients.services import set_access
from tests.conftest import PASSWORD, make_patient, make_practitioner

NOW = datetime.datetime(2031, 3, 10, 9, 0, tzinfo=datetime.UTC)
WRONG_LOGIN = "Please enter a correct username and password"


def log_in(client, username="chidi", password=PASSWORD, next_url=None):
    data = {"username": username, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post(reverse("portal-login"), data)


def test_patient_logs_in_and_lands_on_home(client, patient_with_account):
    response = log_in(client)

    assert response.status_code == 302
    assert response.url == reverse("portal-home")
    home = client.get(response.url)
    assert home.status_code == 200
    assert "You are signed up with Riverside Family Practice" in home.text


def test_login_records_last_login_and_audit(client, patient_with_account):
    with time_machine.travel(NOW, tick=False):
        log_in(client)

    patient_with_account.refresh_from_db()
    assert patient_with_account.last_login_at == NOW
    event = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN)
    assert event.patient == patient_with_account
    assert event.actor == patient_with_account.user


def test_logout_ends_session_and_audits(client, patient_with_account):
    log_in(client)

    response = client.post(reverse("portal-logout"))

    assert response.url == reverse("portal-login")
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action=AuditEvent.Action.LOGOUT)
    assert event.patient == patient_with_account
    home = client.get(reverse("portal-home"))
    assert home.status_code == 302


def test_logout_says_so_on_login_page(client, patient_with_account):
    log_in(client)

    response = client.post(reverse("portal-logout"), follow=True)

    assert response.redirect_chain[-1][0] == reverse("portal-login")
    assert "You have logged out." in response.text


def test_logout_needs_post(client, patient_with_account):
    log_in(client)

    response = client.get(reverse("portal-logout"))

    assert response.status_code == 405
    assert "_auth_user_id" in client.session


def test_wrong_password_gets_generic_error(client, patient_with_account):
    response = log_in(client, password="not the password")

    assert response.status_code == 200
    assert WRONG_LOGIN in response.text
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN).exists()


def test_staff_user_cannot_log_in_on_portal(client, front_desk):
    response = log_in(client, username="frontdesk")

    assert response.status_code == 200
    assert WRONG_LOGIN in response.text
    assert "staff" not in response.text.lower()
    assert "_auth_user_id" not in client.session


def test_superuser_cannot_log_in_on_portal(client, admin_user):
    response = log_in(client, username="admin")

    assert WRONG_LOGIN in response.text
    assert "_auth_user_id" not in client.session


def test_disabled_patient_cannot_log_in(client, patient_with_account, front_desk):
    set_access(patient_with_account, False, actor=front_desk)

    response = log_in(client)

    assert response.status_code == 200
    assert WRONG_LOGIN in response.text
    assert "_auth_user_id" not in client.session
    patient_with_account.refresh_from_db()
    assert patient_with_account.last_login_at is None


def test_disabling_access_ends_open_session(client, patient_with_account, front_desk):
    log_in(client)

    set_access(patient_with_account, False, actor=front_desk)
    response = client.get(reverse("portal-home"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("portal-login"))


def test_anonymous_user_is_sent_to_portal_login(client, db):
    response = client.get(reverse("portal-home"))

    assert response.status_code == 302
    assert response.url == f"{reverse('portal-login')}?next=%2Fportal%2F"


def test_staff_session_gets_403_on_portal_home(front_desk_client):
    response = front_desk_client.get(reverse("portal-home"))

    assert response.status_code == 403


def test_patient_session_gets_403_on_staff_pages(client, patient_with_account):
    log_in(client)

    onboarding = client.get(reverse("onboarding"))
    portal_page = client.get(reverse("patient-portal", args=[patient_with_account.pk]))

    assert onboarding.status_code == 403
    assert portal_page.status_code == 403


def test_patient_cannot_log_in_on_staff_login(client, patient_with_account):
    response = client.post(
        reverse("staff-login"), {"username": "chidi", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/portal/",
        "//evil.example/portal/",
        "http:///evil.example/",
        "javascript:alert(1)",
    ],
)
def test_login_rejects_redirect_off_site(client, patient_with_account, target):
    response = log_in(client, next_url=target)

    assert response.status_code == 302
    assert response.url == reverse("portal-home")


def test_login_follows_next_on_this_site(client, patient_with_account):
    response = log_in(client, next_url="/portal/?tab=appointments")

    assert response.url == "/portal/?tab=appointments"


def test_login_page_keeps_next_from_query(client, db):
    page = client.get(reverse("portal-login") + "?next=/portal/")

    assert 'name="next" value="/portal/"' in page.text


def _appointment(patient, start, status=Appointment.Status.BOOKED, **fields):
    return Appointment.objects.create(
        source="test",
        source_id=f"a-{patient.pk}-{start.isoformat()}-{status}",
        patient=patient,
        status=status,
        start=start,
        **fields,
    )


def test_home_lists_only_upcoming_appointments(client, patient_with_account):
    patient = patient_with_account
    practitioner = make_practitioner(family="Vasquez-Oyelaran", given="Teodora")
    day = datetime.timedelta(days=1)
    _appointment(patient, NOW - 3 * day)
    _appointment(patient, NOW + 2 * day, practitioner=practitioner)
    _appointment(patient, NOW + 3 * day, status=Appointment.Status.CANCELLED)
    _appointment(patient, NOW + 4 * day, status=Appointment.Status.NOSHOW)
    _appointment(patient, NOW + 5 * day, status=Appointment.Status.ENTERED_IN_ERROR)
    other = make_patient(email="someone.else@example.org")
    _appointment(other, NOW + 6 * day)

    with time_machine.travel(NOW, tick=False):
        log_in(client)
        home = client.get(reverse("portal-home")).text

    assert "Wednesday, March 12, 2031" in home
    assert "March 7, 2031" not in home
    assert "March 13, 2031" not in home
    assert "March 14, 2031" not in home
    assert "March 15, 2031" not in home
    assert "March 16, 2031" not in home
    assert "Vasquez-Oyelaran" not in home
    assert home.count("<li><time") == 1


def test_home_says_when_nothing_is_upcoming(client, patient_with_account):
    log_in(client)

    home = client.get(reverse("portal-home")).text

    assert "You have no upcoming appointments" in home


def test_login_ignores_username_case(client, patient_with_account):
    response = log_in(client, username="  CHIDI ")

    assert response.status_code == 302
    assert response.url == reverse("portal-home")


def test_repeated_wrong_passwords_lock_out_login(client, patient_with_account, caplog):
    for _ in range(5):
        log_in(client, password="not the password")

    locked = log_in(client)

    assert locked.status_code == 429
    assert "Too many failed logins" in locked.text
    assert "Wait 15 minutes" in locked.text
    assert "_auth_user_id" not in client.session
    patient_with_account.refresh_from_db()
    assert patient_with_account.last_login_at is None
    assert not any("chidi" in record.getMessage() for record in caplog.records)


def test_tries_during_lockout_do_not_extend_it(client, patient_with_account):
    start = datetime.datetime.now(tz=datetime.UTC)
    with time_machine.travel(start, tick=False):
        for _ in range(5):
            log_in(client, password="not the password")
    with time_machine.travel(start + datetime.timedelta(minutes=14), tick=False):
        assert log_in(client, password="still not it").status_code == 429
        assert log_in(client).status_code == 429

    with time_machine.travel(start + datetime.timedelta(minutes=16), tick=False):
        response = log_in(client)

    assert response.status_code == 302
    assert response.url == reverse("portal-home")


def test_lockout_is_per_username_and_address(client, patient_with_account):
    from django.test import Client

    for _ in range(5):
        log_in(client, password="not the password")

    elsewhere = log_in(Client(REMOTE_ADDR="192.0.2.7"))

    assert elsewhere.status_code == 302
    assert elsewhere.url == reverse("portal-home")
