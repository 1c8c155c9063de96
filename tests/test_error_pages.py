"""The pages shown for 403, 404 and 500: they explain and offer a way back."""

from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from tests.conftest import make_patient


def test_patient_on_staff_page_is_sent_to_portal(client, patient_with_account):
    client.force_login(patient_with_account.user)

    response = client.get(reverse("onboarding"))

    assert response.status_code == 403
    assert "This page is for the practice's staff." in response.text
    assert f'href="{reverse("portal-home")}"' in response.text
    assert "Riverside Family Practice" in response.text


def test_staff_without_permission_is_told_why(read_only_client):
    patient = make_patient()

    response = read_only_client.post(
        reverse("patient-access", args=[patient.pk]), {"enabled": "true"}
    )

    assert response.status_code == 403
    assert "does not have the permission this needs" in response.text
    assert f'href="{reverse("onboarding")}"' in response.text


def test_unknown_address_shows_not_found(client, db):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert "Page not found" in response.text
    assert f'href="{reverse("portal-login")}"' in response.text


def test_server_error_page_asks_to_try_again():
    response = server_error(RequestFactory().get("/"))

    assert response.status_code == 500
    assert b"Please try again in a few minutes" in response.content
