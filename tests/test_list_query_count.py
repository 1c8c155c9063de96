"""The onboarding list runs a fixed number of queries, whatever it shows.

Each page costs the same queries with 5 rows or 100, and in a practice of 5
patients or 200 with providers, tags, appointments, invitations and logins.
A query made once per row (a related object read in the template, say)
makes the counts below grow with the page and fails these tests.
"""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from invitations.models import Invitation
from patients.models import Appointment, Practitioner, Tag
from tests.conftest import make_patient

# One list request without filters reads the session, the staff user, the
# snapshot counts, the page's rows, the user's and the groups' permissions,
# the user's unfinished bulk actions and the filter form's tags and
# providers. It writes the session to keep the idle limit exact, inside a
# savepoint that the test's transaction adds.
QUERIES_WITHOUT_FILTERS = 12


def _invitation(patient, *, delivery, days_ago):
    created_at = timezone.now() - datetime.timedelta(days=days_ago)
    return Invitation.objects.create(
        patient=patient,
        email=patient.email,
        salt=Invitation.new_salt(),
        token_hash=f"hash-{patient.pk}-{delivery}-{days_ago}",
        created_at=created_at,
        expires_at=created_at + datetime.timedelta(days=14),
        delivery_status=delivery,
    )


def _add_patients(count: int, start: int = 0) -> None:
    """Add COUNT patients spread over every portal state, tag and provider."""
    providers = [
        Practitioner.objects.get_or_create(family_name=f"Provider{n}")[0]
        for n in range(3)
    ]
    tags = [Tag.objects.get_or_create(name=name)[0] for name in ("Heart", "Lungs")]
    soon = timezone.now() + datetime.timedelta(days=3)
    for index in range(start, start + count):
        kind = index % 5
        # Two patients in every five share a household address.
        shared = f"household{index // 5}@example.org" if kind >= 3 else None
        patient = make_patient(
            family=f"Family{index:03d}",
            email=shared,
            primary_provider=providers[(index // 3) % 3],
            portal_access=kind != 0,
        )
        patient.tags.add(*tags[: index % 3])
        Appointment.objects.create(
            source="test",
            source_id=f"a{index}",
            patient=patient,
            status=Appointment.Status.BOOKED,
            start=soon,
            practitioner=patient.primary_provider,
        )
        if kind in (2, 3):
            _invitation(patient, delivery="sent", days_ago=20)
            _invitation(patient, delivery="failed" if kind == 3 else "sent", days_ago=1)
        elif kind == 4:
            _invitation(patient, delivery="sent", days_ago=30)
            patient.user = get_user_model().objects.create_user(f"patient{index}")
            if (index // 5) % 2 == 0:
                patient.last_login_at = timezone.now()
            patient.save()


def _queries(client, params: dict) -> tuple[int, int]:
    """Request the list; return the number of queries and of rows shown."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("onboarding"), params)
    assert response.status_code == 200
    return len(queries), len(response.context["page"].object_list)


def test_list_queries_same_for_page_sizes(front_desk_client, settings):
    _add_patients(200)

    settings.ONBOARDING_PAGE_SIZE = 5
    small, small_rows = _queries(front_desk_client, {})
    settings.ONBOARDING_PAGE_SIZE = 100
    large, large_rows = _queries(front_desk_client, {})

    assert small_rows == 5
    assert large_rows == 100
    assert small == QUERIES_WITHOUT_FILTERS
    assert large == QUERIES_WITHOUT_FILTERS


def test_list_queries_same_for_practice_sizes(front_desk_client):
    _add_patients(5)
    small, small_rows = _queries(front_desk_client, {})
    _add_patients(195, start=5)
    large, large_rows = _queries(front_desk_client, {})

    assert small_rows == 5
    assert large_rows == 50
    assert small == QUERIES_WITHOUT_FILTERS
    assert large == QUERIES_WITHOUT_FILTERS


def _tag():
    return {"tags": [Tag.objects.get(name="Heart").pk]}


def _provider_and_dates():
    today = timezone.localdate()
    return {
        "provider": Practitioner.objects.get(family_name="Provider0").pk,
        "appointment_after": today.isoformat(),
        "appointment_before": (today + datetime.timedelta(days=7)).isoformat(),
    }


# Filters, and the queries they add: the filter form checks a chosen tag or
# provider against the database, and the shared-address check reads the
# practitioners' addresses.
FILTERS = {
    "tag": (_tag, 1),
    "provider and dates": (_provider_and_dates, 1),
    "state invited": (lambda: {"state": "invited"}, 0),
    "state invite failed": (lambda: {"state": "invite_failed"}, 0),
    "state logged in": (lambda: {"state": "logged_in"}, 0),
    "safety check": (lambda: {"check": "shared_email"}, 1),
    "name search": (lambda: {"q": "family"}, 0),
    "sorted by login": (lambda: {"sort": "-login", "access": "yes"}, 0),
}


@pytest.mark.parametrize("name", FILTERS)
def test_list_queries_same_with_filters(front_desk_client, name):
    make_params, form_queries = FILTERS[name]
    _add_patients(5)
    small, small_rows = _queries(front_desk_client, make_params())
    _add_patients(195, start=5)
    large, large_rows = _queries(front_desk_client, make_params())

    assert small_rows >= 1
    assert large_rows > small_rows
    assert small == QUERIES_WITHOUT_FILTERS + form_queries
    assert large == QUERIES_WITHOUT_FILTERS + form_queries
