"""Failed logins look the same and cost the same, whatever the reason.

An attacker must not learn from a login form whether a username exists, was
invited but never set up, or is disabled. The page is the same, and so is the
number of password hashes computed, which is what makes the time equal.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD, make_invitation, make_patient
from tests.hashers import CountingHasher

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


@pytest.fixture
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.hashers.CountingHasher"]


@pytest.fixture
def accounts(db, counting_hasher):
    """Make one account of each kind; return the (username, password) to try."""
    user_model = get_user_model()
    active = make_patient(given="Active", portal_access=True)
    active.user = user_model.objects.create_user("active.patient", password=PASSWORD)
    active.save()
    disabled = make_patient(given="Disabled", portal_access=True)
    disabled.user = user_model.objects.create_user(
        "disabled.patient", password=PASSWORD, is_active=False
    )
    disabled.save()
    make_invitation(make_patient(given="Invited", portal_access=True))
    user_model.objects.create_user("staffer", password=PASSWORD, is_staff=True)
    return {
        "unknown username": ("nobody.here", PASSWORD),
        "wrong password": ("active.patient", "not the password at all"),
        "invited, never set up": ("invited", PASSWORD),
        "disabled account": ("disabled.patient", PASSWORD),
    }


def _attempt(url_name, username, password):
    """Return the status, the page and the number of hashes computed.

    The page is returned without its CSRF token and the typed username.
    """
    client = Client()
    before = CountingHasher.calls
    response = client.post(
        reverse(url_name), {"username": username, "password": password}
    )
    page = CSRF.sub("", response.text).replace(f'value="{username}"', "")
    return response.status_code, page, CountingHasher.calls - before


@pytest.mark.parametrize("url_name", ["portal-login", "staff-login"])
def test_failed_logins_are_indistinguishable(accounts, url_name):
    results = {
        case: _attempt(url_name, *credentials) for case, credentials in accounts.items()
    }

    statuses = {case: result[0] for case, result in results.items()}
    pages = {result[1] for result in results.values()}
    hashes = {case: result[2] for case, result in results.items()}
    assert set(statuses.values()) == {200}, statuses
    assert len(pages) == 1
    assert set(hashes.values()) == {1}, hashes


def test_staff_account_on_patient_login_looks_wrong(accounts):
    staff = _attempt("portal-login", "staffer", PASSWORD)
    unknown = _attempt("portal-login", "nobody.here", PASSWORD)

    assert staff[:2] == unknown[:2]
    assert staff[2] >= 1
