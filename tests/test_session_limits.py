"""Sessions end on the server after idle time and after a maximum age."""

import datetime

import pytest
import time_machine
from django.urls import reverse

from tests.conftest import PASSWORD

START = datetime.datetime(2027, 5, 3, 8, 0, tzinfo=datetime.UTC)


def _at(minutes: float):
    return time_machine.travel(START + datetime.timedelta(minutes=minutes), tick=False)


def _staff_log_in(client):
    return client.post(
        reverse("staff-login"), {"username": "frontdesk", "password": PASSWORD}
    )


def _patient_log_in(client):
    return client.post(
        reverse("portal-login"), {"username": "chidi", "password": PASSWORD}
    )


@pytest.mark.parametrize(("minutes", "still_in"), [(14.9, True), (15.1, False)])
def test_staff_idle_limit(client, front_desk, minutes, still_in):
    with _at(0):
        _staff_log_in(client)
    with _at(minutes):
        response = client.get(reverse("onboarding"), follow=True)

    assert (response.redirect_chain == []) is still_in
    if not still_in:
        assert response.redirect_chain[0][0] == reverse("staff-login")
        assert "logged out after 15 minutes without activity" in response.text
        assert "_auth_user_id" not in client.session


def test_activity_keeps_staff_session(client, front_desk):
    with _at(0):
        _staff_log_in(client)
    for minutes in (10, 20, 30):
        with _at(minutes):
            response = client.get(reverse("onboarding"))
        assert response.status_code == 200


def test_activity_within_limit_never_ends_session_early(client, front_desk, settings):
    settings.STAFF_IDLE_MINUTES = 1
    with _at(0):
        _staff_log_in(client)
    with _at(50 / 60):
        assert client.get(reverse("onboarding")).status_code == 200
    with _at(65 / 60):
        assert client.get(reverse("onboarding")).status_code == 200

    with _at(65 / 60 + 1.1):
        response = client.get(reverse("onboarding"), follow=True)

    assert "logged out after 1 minute without activity" in response.text


@pytest.mark.parametrize(("minutes", "still_in"), [(29.9, True), (30.1, False)])
def test_patient_idle_limit(client, patient_with_account, minutes, still_in):
    with _at(0):
        _patient_log_in(client)
    with _at(minutes):
        response = client.get(reverse("portal-home"))

    assert (response.status_code == 200) is still_in
    if not still_in:
        assert response.url == reverse("portal-login")


def test_session_ends_after_maximum_age(client, patient_with_account):
    with _at(0):
        _patient_log_in(client)
    # A request every 20 minutes keeps the session from going idle.
    for minutes in range(20, 12 * 60, 20):
        with _at(minutes):
            assert client.get(reverse("portal-home")).status_code == 200

    with _at(12 * 60 + 1):
        response = client.get(reverse("portal-home"), follow=True)

    assert response.redirect_chain[0][0] == reverse("portal-login")
    assert "logged in more than 12 hours ago" in response.text


def test_ended_session_is_gone_from_store(client, front_desk):
    from django.contrib.sessions.models import Session

    with _at(0):
        _staff_log_in(client)
    key = client.session.session_key
    with _at(15.1):
        client.get(reverse("onboarding"))

    assert not Session.objects.filter(session_key=key).exists()


def test_login_gives_new_session_id(client, front_desk):
    client.get(reverse("staff-login"))
    client.session.save()
    before = client.session.session_key

    _staff_log_in(client)

    assert client.session.session_key != before


def test_logout_ends_session_on_server(client, front_desk):
    from django.contrib.sessions.models import Session

    _staff_log_in(client)
    key = client.session.session_key

    client.post(reverse("staff-logout"))

    assert not Session.objects.filter(session_key=key).exists()
