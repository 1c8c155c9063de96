"""A patient's whole path in Chromium: invitation link, sign-up, login, logout."""

import datetime

import pytest
from django.utils import timezone

from patients.models import Appointment
from tests.conftest import make_invitation, make_patient

PASSWORD = "tidal-basin-ferry-42"


@pytest.fixture
def invited(transactional_db):
    from django.core.cache import cache

    cache.clear()
    patient = make_patient(
        email="maren.lindqvist@example.org",
        birth_date=datetime.date(1980, 5, 17),
        portal_access=True,
    )
    Appointment.objects.create(
        source="test",
        source_id="a1",
        patient=patient,
        status=Appointment.Status.BOOKED,
        start=timezone.now() + datetime.timedelta(days=9),
    )
    return patient, make_invitation(patient)


def test_patient_signs_up_and_logs_in(page, live_server, invited):
    patient, invitation = invited

    page.goto(f"{live_server.url}/invite/{invitation.token}/")
    assert page.url == f"{live_server.url}/invite/"
    assert invitation.token not in page.url

    page.fill("input[name=month]", "May")
    page.fill("input[name=day]", "17")
    page.fill("input[name=year]", "1980")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/invite/account/")

    page.fill("input[name=username]", "maren")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/invite/ready/")
    assert "Your account is ready" in page.text_content("h1")

    page.get_by_role("link", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/portal/login/")
    page.fill("input[name=username]", "maren")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/portal/")

    assert "You are signed up with" in page.text_content("main")
    assert page.locator(".appointments li").count() == 1
    patient.refresh_from_db()
    assert patient.last_login_at is not None

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{live_server.url}/portal/login/")


def test_date_of_birth_fields_fit_a_phone(page, live_server, invited):
    _, invitation = invited
    page.set_viewport_size({"width": 360, "height": 740})

    page.goto(f"{live_server.url}/invite/{invitation.token}/")

    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 360
    for name in ("month", "day", "year"):
        assert page.locator(f"input[name={name}]").is_visible()


def test_patient_chooses_new_password_from_reset_link(
    page,
    live_server,
    patient_with_account,
    transactional_db,
):
    from portal.emails import password_reset_link

    user = patient_with_account.user
    path = password_reset_link(user).removeprefix("http://portal.test")

    page.goto(f"{live_server.url}{path}")
    page.wait_for_url(f"{live_server.url}/portal/password-reset/*/set-password/")
    born = patient_with_account.birth_date
    page.fill("input[name=month]", str(born.month))
    page.fill("input[name=day]", str(born.day))
    page.fill("input[name=year]", str(born.year))
    page.fill("input[name=new_password1]", PASSWORD)
    page.fill("input[name=new_password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/portal/password-reset/done/")

    user.refresh_from_db()
    assert user.check_password(PASSWORD)
