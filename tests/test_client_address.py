"""The client address used by rate limits and lockouts, with and without proxies."""

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from config.clientip import client_address


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.2"),
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        (2, "198.51.100.1, 203.0.113.9", "198.51.100.1"),
        (2, "203.0.113.9", "10.0.0.2"),
        (1, "", "10.0.0.2"),
    ],
)
def test_client_address_behind_proxies(settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded
    )

    assert client_address(request) == expected


def test_lockout_counts_each_client_behind_proxy(settings, patient_with_account):
    from tests.conftest import PASSWORD

    settings.TRUSTED_PROXY_COUNT = 1
    attacker = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    patient = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.4")
    url = reverse("portal-login")
    for _ in range(6):
        attacker.post(url, {"username": "chidi", "password": "wrong guess"})

    locked = attacker.post(url, {"username": "chidi", "password": PASSWORD})
    response = patient.post(url, {"username": "chidi", "password": PASSWORD})

    assert locked.status_code == 429
    assert response.status_code == 302
    assert response.url == reverse("portal-home")
