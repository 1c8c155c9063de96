"""The onboarding list: filters, search, columns, sorting, paging and the snapshot."""

import datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from invitations.models import Invitation
from patients import bulk
from patients.filters import with_portal_state
from patients.models import Appointment, Patient, Tag
from tests.conftest import make_patient, make_practitioner

NOW = datetime.datetime(2027, 3, 1, 9, 0, tzinfo=datetime.UTC)


@pytest.fixture
def clock():
    """Freeze time at NOW. Request it before the client so the login happens then."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _listed_ids(response) -> list[int]:
    return [patient.pk for patient in response.context["page"]]


def _get(client, **params):
    response = client.get(reverse("onboarding"), params)
    assert response.status_code == 200
    return response


def _appointment(patient, start, status=Appointment.Status.BOOKED):
    return Appointment.objects.create(
        source="test",
        source_id=f"a{Appointment.objects.count() + 1}",
        patient=patient,
        status=status,
        start=start,
    )


def _invitation(patient, delivery=Invitation.Delivery.SENT, created_at=None):
    created_at = created_at or timezone.now()
    return Invitation.objects.create(
        patient=patient,
        email=patient.email,
        salt=Invitation.new_salt(),
        token_hash=f"hash-{Invitation.objects.count() + 1}-{patient.pk}",
        created_at=created_at,
        expires_at=created_at + datetime.timedelta(days=14),
        delivery_status=delivery,
    )


def _give_account(patient, username, logged_in=None):
    patient.user = get_user_model().objects.create_user(username=username)
    patient.last_login_at = logged_in
    patient.save()


# Columns


def test_list_shows_columns(front_desk_client):
    provider = make_practitioner(family="Ruiz", given="Ana")
    patient = make_patient(
        family="Doe",
        given="Jane",
        email="jane@example.org",
        primary_provider=provider,
        portal_access=True,
        last_invite_sent_at=datetime.datetime(2026, 11, 2, 10, tzinfo=datetime.UTC),
    )

    page = _get(front_desk_client).content.decode()

    assert "Doe, Jane" in page
    assert reverse("patient-portal", args=[patient.pk]) in page
    assert "May 17, 1980" in page
    assert "jane@example.org" in page
    assert "Ruiz, Ana" in page
    assert "<td>Yes</td>" in page
    assert "Nov 2, 2026" in page
    assert "Confidential" in page


def test_list_marks_invalid_email(front_desk_client):
    make_patient(email="not-an-address")

    page = _get(front_desk_client).content.decode()

    assert "not-an-address" in page
    assert '<span class="marker-invalid">not valid</span>' in page


def test_list_leaves_blank_columns_blank(front_desk_client):
    make_patient(portal_access=False)

    page = _get(front_desk_client).content.decode()

    assert "<td>Yes</td>" not in page
    assert "marker-invalid" not in page


def test_state_badge_for_each_portal_state(front_desk_client):
    not_enabled = make_patient(given="A")
    enabled = make_patient(given="B", portal_access=True)
    invited = make_patient(given="C", portal_access=True)
    _invitation(invited)
    failed = make_patient(given="D", portal_access=True)
    _invitation(failed, delivery=Invitation.Delivery.SENT, created_at=NOW)
    _invitation(
        failed,
        delivery=Invitation.Delivery.FAILED,
        created_at=NOW + datetime.timedelta(hours=1),
    )
    set_up = make_patient(given="E", portal_access=True)
    _give_account(set_up, "e-user")
    logged_in = make_patient(given="F", portal_access=True)
    _give_account(logged_in, "f-user", logged_in=NOW)

    response = _get(front_desk_client)

    states = {p.pk: p.portal_state_value for p in response.context["page"]}
    assert states[not_enabled.pk] == Patient.PortalState.NOT_ENABLED
    assert states[enabled.pk] == Patient.PortalState.ENABLED
    assert states[invited.pk] == Patient.PortalState.INVITED
    assert states[failed.pk] == Patient.PortalState.INVITE_FAILED
    assert states[set_up.pk] == Patient.PortalState.ACCOUNT_SET_UP
    assert states[logged_in.pk] == Patient.PortalState.LOGGED_IN
    assert "Invitation failed" in response.content.decode()


def test_each_state_filter_matches_badge(front_desk_client):
    patients = [
        make_patient(given="Off"),
        make_patient(given="Revoked"),
        make_patient(given="Enabled", portal_access=True),
        make_patient(given="Invited", portal_access=True),
        make_patient(given="Failed", portal_access=True),
        make_patient(given="Lapsed", portal_access=True),
        make_patient(given="SetUp", portal_access=True),
        make_patient(given="LoggedIn", portal_access=True),
    ]
    off, revoked, enabled, invited, failed, lapsed, set_up, logged_in = patients
    _invitation(revoked)
    _invitation(invited)
    _invitation(failed, delivery=Invitation.Delivery.FAILED)
    _invitation(lapsed, created_at=timezone.now() - datetime.timedelta(days=20))
    _invitation(set_up)
    _give_account(set_up, "setup-user")
    _give_account(logged_in, "login-user", logged_in=NOW)

    for state in Patient.PortalState:
        response = _get(front_desk_client, state=state)

        expected = [
            patient.pk
            for patient in with_portal_state(Patient.objects.order_by("sort_name"))
            if patient.portal_state_value == state
        ]
        assert _listed_ids(response) == expected, state
        assert expected, state


def test_state_annotation_matches_model_method(db):
    revoked = make_patient(given="Revoked", portal_access=False)
    _invitation(revoked)
    failed = make_patient(given="Failed", portal_access=True)
    _invitation(failed, delivery=Invitation.Delivery.FAILED)
    make_patient(given="Plain", portal_access=True)

    for patient in with_portal_state(Patient.objects.all()):
        latest = patient.invitations.first()
        assert patient.portal_state_value == patient.portal_state(latest), patient


@pytest.mark.parametrize(
    "change",
    [
        {"expires_at": NOW - datetime.timedelta(days=1)},
        {"status": Invitation.Status.LOCKED},
        {"status": Invitation.Status.REVOKED},
    ],
)
def test_dead_invitation_shows_lapsed(clock, front_desk_client, change):
    patient = make_patient(portal_access=True)
    invitation = _invitation(patient, created_at=NOW - datetime.timedelta(days=1))
    Invitation.objects.filter(pk=invitation.pk).update(**change)

    response = _get(front_desk_client, state=Patient.PortalState.INVITE_LAPSED)

    assert _listed_ids(response) == [patient.pk]
    annotated = response.context["page"][0]
    assert annotated.portal_state_value == Patient.PortalState.INVITE_LAPSED
    invitation.refresh_from_db()
    assert patient.portal_state(invitation) == Patient.PortalState.INVITE_LAPSED
    assert "Invitation no longer works" in response.content.decode()


def test_state_without_access_is_not_enabled(db):
    disabled = make_patient(given="Disabled", portal_access=False)
    _give_account(disabled, "disabled-user", logged_in=NOW)

    annotated = with_portal_state(Patient.objects.all()).get()

    assert annotated.portal_state_value == Patient.PortalState.NOT_ENABLED
    assert disabled.portal_state() == Patient.PortalState.NOT_ENABLED


# Filters, one at a time


def test_filter_by_tags_matches_any_selected(front_desk_client):
    diabetes = make_patient(given="Dia", tags=["Diabetes program"])
    both = make_patient(given="Both", tags=["Diabetes program", "Heart cohort"])
    heart = make_patient(given="Heart", tags=["Heart cohort"])
    make_patient(given="None", tags=["Other"])
    diabetes_tag = Tag.objects.get(name="Diabetes program")
    heart_tag = Tag.objects.get(name="Heart cohort")

    one_tag = _get(front_desk_client, tags=[diabetes_tag.pk])
    two_tags = _get(front_desk_client, tags=[diabetes_tag.pk, heart_tag.pk])

    assert sorted(_listed_ids(one_tag)) == sorted([diabetes.pk, both.pk])
    assert sorted(_listed_ids(two_tags)) == sorted([diabetes.pk, both.pk, heart.pk])
    # A patient with two matching tags is listed once and counted once.
    assert two_tags.context["counts"]["total"] == 3


def test_filter_by_primary_provider(front_desk_client):
    ruiz = make_practitioner(family="Ruiz")
    chen = make_practitioner(family="Chen")
    mine = make_patient(primary_provider=ruiz)
    make_patient(primary_provider=chen)
    make_patient()

    response = _get(front_desk_client, provider=ruiz.pk)

    assert _listed_ids(response) == [mine.pk]


@pytest.mark.parametrize(("choice", "expected"), [("yes", "on"), ("no", "off")])
def test_filter_by_portal_access(front_desk_client, choice, expected):
    patients = {
        "on": make_patient(portal_access=True),
        "off": make_patient(portal_access=False),
    }

    response = _get(front_desk_client, access=choice)

    assert _listed_ids(response) == [patients[expected].pk]


@pytest.mark.parametrize(("choice", "expected"), [("yes", "with"), ("no", "without")])
def test_filter_by_username(front_desk_client, choice, expected):
    patients = {"with": make_patient(given="With"), "without": make_patient()}
    _give_account(patients["with"], "with-user")

    response = _get(front_desk_client, username=choice)

    assert _listed_ids(response) == [patients[expected].pk]


def test_filter_any_shows_everyone(front_desk_client):
    make_patient(portal_access=True)
    make_patient(portal_access=False)

    response = _get(front_desk_client, access="", username="")

    assert len(_listed_ids(response)) == 2


def test_filter_by_appointment_range(clock, front_desk_client):
    inside = make_patient(given="Inside")
    _appointment(inside, NOW + datetime.timedelta(days=5))
    _appointment(inside, NOW + datetime.timedelta(days=6))
    later = make_patient(given="Later")
    _appointment(later, NOW + datetime.timedelta(days=40))
    cancelled = make_patient(given="Cancelled")
    _appointment(
        cancelled,
        NOW + datetime.timedelta(days=5),
        status=Appointment.Status.CANCELLED,
    )
    make_patient(given="NoVisit")

    response = _get(
        front_desk_client,
        appointment_after="2027-03-02",
        appointment_before="2027-03-10",
    )

    assert _listed_ids(response) == [inside.pk]
    assert response.context["counts"]["total"] == 1


def test_appointment_dates_are_inclusive(clock, front_desk_client):
    first_day = make_patient(given="First")
    _appointment(first_day, datetime.datetime(2027, 3, 2, 0, 0, tzinfo=datetime.UTC))
    last_day = make_patient(given="Last")
    _appointment(last_day, datetime.datetime(2027, 3, 10, 23, 30, tzinfo=datetime.UTC))
    day_after = make_patient(given="After")
    _appointment(day_after, datetime.datetime(2027, 3, 11, 0, 0, tzinfo=datetime.UTC))

    response = _get(
        front_desk_client,
        appointment_after="2027-03-02",
        appointment_before="2027-03-10",
    )

    assert sorted(_listed_ids(response)) == sorted([first_day.pk, last_day.pk])


def test_filter_by_appointment_after_only(clock, front_desk_client):
    past = make_patient(given="Past")
    _appointment(past, NOW - datetime.timedelta(days=3))
    upcoming = make_patient(given="Upcoming")
    _appointment(upcoming, NOW + datetime.timedelta(days=3))

    response = _get(front_desk_client, appointment_after="2027-03-01")

    assert _listed_ids(response) == [upcoming.pk]


def test_filter_by_appointment_before_only(clock, front_desk_client):
    past = make_patient(given="Past")
    _appointment(past, NOW - datetime.timedelta(days=3))
    upcoming = make_patient(given="Upcoming")
    _appointment(upcoming, NOW + datetime.timedelta(days=3))

    response = _get(front_desk_client, appointment_before="2027-02-28")

    assert _listed_ids(response) == [past.pk]


def test_reversed_appointment_range_is_an_error(front_desk_client):
    make_patient()

    response = _get(
        front_desk_client,
        appointment_after="2027-03-10",
        appointment_before="2027-03-02",
    )

    assert "Swap the two dates" in response.content.decode()


def test_reversed_appointment_range_lists_nobody(clock, front_desk_client):
    patient = make_patient()
    _appointment(patient, NOW + datetime.timedelta(days=40))

    response = _get(
        front_desk_client,
        appointment_after="2027-03-10",
        appointment_before="2027-03-02",
    )

    assert _listed_ids(response) == []
    assert response.context["counts"]["total"] == 0
    assert "Correct the filters above" in response.content.decode()


@pytest.mark.parametrize("field", ["appointment_after", "appointment_before"])
@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_far_appointment_date_is_an_error(front_desk_client, field, day):
    make_patient()

    response = _get(front_desk_client, **{field: day})

    assert _listed_ids(response) == []
    assert "Enter a date between 1900-01-01 and 2199-12-31." in (
        response.content.decode()
    )


@pytest.mark.parametrize("value", ["99999999999999999999", "0", "-3", "²", "abc"])
def test_invalid_tag_id_is_an_error(front_desk_client, value):
    make_patient(tags=["Heart"])

    response = _get(front_desk_client, tags=value)

    assert _listed_ids(response) == []
    assert response.context["form"].errors["tags"]


@pytest.mark.parametrize(
    ("check", "fields"),
    [
        ("no_email", {"email": ""}),
        ("invalid_email", {"email": "not an address"}),
        ("email_changed", {"email_changed_at": NOW - datetime.timedelta(days=2)}),
        ("minor", {"birth_date": datetime.date(2012, 1, 1)}),
        ("deceased", {"deceased": True}),
        ("inactive", {"active": False}),
    ],
)
def test_filter_by_safety_check(clock, front_desk_client, check, fields):
    match = make_patient(given="Match", **fields)
    make_patient(given="Other")

    response = _get(front_desk_client, check=check)

    assert _listed_ids(response) == [match.pk]


def test_filter_by_recently_invited(clock, front_desk_client):
    invited = make_patient(given="Invited", portal_access=True)
    _invitation(invited, delivery=Invitation.Delivery.SENT, created_at=NOW)
    old = make_patient(given="Old", portal_access=True)
    _invitation(old, created_at=NOW - datetime.timedelta(days=10))

    response = _get(front_desk_client, check="recently_invited")

    assert _listed_ids(response) == [invited.pk]


def test_filter_by_shared_email(clock, front_desk_client):
    first = make_patient(given="First", email="home@example.org")
    second = make_patient(given="Second", email="HOME@example.org")
    make_patient(given="Alone", email="alone@example.org")

    response = _get(front_desk_client, check="shared_email")

    assert sorted(_listed_ids(response)) == sorted([first.pk, second.pk])


def test_shared_email_filter_matches_check(clock, front_desk_client):
    make_practitioner(email="  Clinic@Example.org ")
    sharing = [
        make_patient(given="Staff", email="clinic@example.org"),
        make_patient(given="Twin1", email="twins@example.org"),
        make_patient(given="Twin2", email="twins@example.org"),
        make_patient(given="Twin3", email="TWINS@example.org"),
    ]
    make_patient(given="Alone", email="alone@example.org")
    make_patient(given="Blank1", email="")
    make_patient(given="Blank2", email="")

    response = _get(front_desk_client, check="shared_email")

    condition = bulk.safety_conditions(timezone.now())["shared_email"]
    checked = Patient.objects.filter(condition).values_list("pk", flat=True)
    assert sorted(_listed_ids(response)) == sorted(patient.pk for patient in sharing)
    assert sorted(checked) == sorted(patient.pk for patient in sharing)


def test_shared_email_check_folds_any_letter(clock, front_desk_client):
    make_practitioner(email="DR.MULLER@BÜCHER.EXAMPLE")
    patient = make_patient(
        given="Umlaut", email="dr.muller@bücher.example", portal_access=True
    )

    response = _get(front_desk_client, check="shared_email")

    assert _listed_ids(response) == [patient.pk]
    reason = bulk.skip_reason(patient.pk, bulk.INVITE)
    assert reason == "shared_email"


def test_filter_minor_includes_children(clock, front_desk_client):
    child = make_patient(given="Child", birth_date=datetime.date(2022, 1, 1))
    teen = make_patient(given="Teen", birth_date=datetime.date(2012, 1, 1))
    make_patient(given="Adult")

    response = _get(front_desk_client, check="minor")

    assert sorted(_listed_ids(response)) == sorted([child.pk, teen.pk])


def test_filter_turns_adult_within_30_days(clock, front_desk_client):
    # NOW is 2027-03-01, so 18th birthdays up to 2027-03-31 are within 30 days.
    soon = make_patient(given="Soon", birth_date=datetime.date(2009, 3, 31))
    make_patient(given="Later", birth_date=datetime.date(2009, 4, 1))
    make_patient(given="Already", birth_date=datetime.date(2009, 3, 1))

    response = _get(front_desk_client, check="turning_adult")

    assert _listed_ids(response) == [soon.pk]
    assert "Turns 18 in the next 30 days" in response.content.decode()


def test_unknown_safety_check_is_an_error(front_desk_client):
    make_patient()

    response = _get(front_desk_client, check="nonsense")

    assert _listed_ids(response) == []
    assert response.context["form"].errors["check"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("provider", "٤"),
        ("provider", "99999999999999999999"),
        ("appointment_after", "٢٠٢٦-12-05"),
    ],
)
def test_filter_rejects_foreign_digits(front_desk_client, field, value):
    make_patient()

    response = _get(front_desk_client, **{field: value})

    assert _listed_ids(response) == []
    assert response.context["form"].errors[field]


def test_filter_by_portal_state(front_desk_client):
    invited = make_patient(given="Invited", portal_access=True)
    _invitation(invited)
    make_patient(given="Enabled", portal_access=True)
    make_patient(given="Off")

    response = _get(front_desk_client, state=Patient.PortalState.INVITED)

    assert _listed_ids(response) == [invited.pk]


# Filters together


def test_filters_combine(clock, front_desk_client):
    ruiz = make_practitioner(family="Ruiz")
    chen = make_practitioner(family="Chen")
    match = make_patient(
        given="Match", primary_provider=ruiz, portal_access=True, tags=["Heart"]
    )
    _appointment(match, NOW + datetime.timedelta(days=2))
    wrong_provider = make_patient(
        given="Chen", primary_provider=chen, portal_access=True, tags=["Heart"]
    )
    _appointment(wrong_provider, NOW + datetime.timedelta(days=2))
    no_access = make_patient(
        given="NoAccess", primary_provider=ruiz, portal_access=False, tags=["Heart"]
    )
    _appointment(no_access, NOW + datetime.timedelta(days=2))
    no_visit = make_patient(
        given="NoVisit", primary_provider=ruiz, portal_access=True, tags=["Heart"]
    )
    has_user = make_patient(
        given="HasUser", primary_provider=ruiz, portal_access=True, tags=["Heart"]
    )
    _appointment(has_user, NOW + datetime.timedelta(days=2))
    _give_account(has_user, "has-user")
    heart = Tag.objects.get(name="Heart")

    response = _get(
        front_desk_client,
        tags=[heart.pk],
        provider=ruiz.pk,
        access="yes",
        username="no",
        appointment_after="2027-03-01",
    )

    assert _listed_ids(response) == [match.pk]
    assert no_visit.pk not in _listed_ids(response)


# Search


def test_search_by_name_in_any_order(front_desk_client):
    jane = make_patient(family="Doe", given="Jane")
    make_patient(family="Roe", given="Richard")

    for text in ["doe", "JANE", "Doe, Jane", "jane doe", "do"]:
        response = _get(front_desk_client, q=text)
        assert _listed_ids(response) == [jane.pk], text


def test_search_by_name_with_accents(front_desk_client):
    zoe = make_patient(family="Müller", given="Zoë")
    make_patient(family="Miller", given="Zoe")

    response = _get(front_desk_client, q="MÜLLER")

    assert _listed_ids(response) == [zoe.pk]


@pytest.mark.parametrize(
    ("family", "given", "typed"),
    [
        ("Moreau", "Léa", "lea"),
        ("Sørensen", "Mette", "Sorensen"),
        ("Nguyễn", "Thảo", "nguyen thao"),
        ("Łukasiewicz", "Ærin", "lukasiewicz aerin"),
    ],
)
def test_search_ignores_accents(front_desk_client, family, given, typed):
    match = make_patient(family=family, given=given)
    make_patient(family="Other", given="Person")

    response = _get(front_desk_client, q=typed)

    assert _listed_ids(response) == [match.pk]


@pytest.mark.parametrize("text", ["1980-05-17", "05/17/1980", "5/17/1980"])
def test_search_by_birth_date(front_desk_client, text):
    match = make_patient(birth_date=datetime.date(1980, 5, 17))
    make_patient(birth_date=datetime.date(1980, 5, 18))

    response = _get(front_desk_client, q=text)

    assert _listed_ids(response) == [match.pk]


@pytest.mark.parametrize("text", ["13/45/1980", "1980-02-30", "17/05"])
def test_search_by_invalid_date_says_how_to_fix(front_desk_client, text):
    make_patient()

    response = _get(front_desk_client, q=text)

    page = response.content.decode()
    assert f"“{text}” is not a valid date of birth" in page
    assert "YYYY-MM-DD or MM/DD/YYYY" in page


# Sorting and paging


@pytest.fixture
def sortable(db):
    base = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC)
    patients = [
        make_patient(family="Baker", given="Al", birth_date=datetime.date(1990, 1, 1)),
        make_patient(family="Adams", given="Bo", birth_date=datetime.date(1970, 1, 1)),
        make_patient(family="Cole", given="Cy", birth_date=datetime.date(1980, 1, 1)),
        # Same name and date as the first Baker, so only the id orders the two.
        make_patient(family="Baker", given="Al", birth_date=datetime.date(1990, 1, 1)),
    ]
    patients[0].last_invite_sent_at = base + datetime.timedelta(days=2)
    patients[0].last_login_at = base + datetime.timedelta(days=9)
    patients[1].last_invite_sent_at = base
    patients[2].last_invite_sent_at = base + datetime.timedelta(days=5)
    patients[2].last_login_at = base + datetime.timedelta(days=7)
    for patient in patients:
        patient.save()
    return patients


def test_sort_by_name_is_default(front_desk_client, sortable):
    response = _get(front_desk_client)

    expected = [sortable[1].pk, sortable[0].pk, sortable[3].pk, sortable[2].pk]
    assert _listed_ids(response) == expected


def test_sort_by_name_descending(front_desk_client, sortable):
    response = _get(front_desk_client, sort="-name")

    expected = [sortable[2].pk, sortable[3].pk, sortable[0].pk, sortable[1].pk]
    assert _listed_ids(response) == expected


def test_sort_by_dob(front_desk_client, sortable):
    ascending = _get(front_desk_client, sort="dob")
    descending = _get(front_desk_client, sort="-dob")

    assert _listed_ids(ascending) == [
        sortable[1].pk,
        sortable[2].pk,
        sortable[0].pk,
        sortable[3].pk,
    ]
    assert _listed_ids(descending) == [
        sortable[3].pk,
        sortable[0].pk,
        sortable[2].pk,
        sortable[1].pk,
    ]


def test_sort_by_last_invite_puts_blanks_last(front_desk_client, sortable):
    ascending = _get(front_desk_client, sort="invite")
    descending = _get(front_desk_client, sort="-invite")

    assert _listed_ids(ascending) == [
        sortable[1].pk,
        sortable[0].pk,
        sortable[2].pk,
        sortable[3].pk,
    ]
    assert _listed_ids(descending) == [
        sortable[2].pk,
        sortable[0].pk,
        sortable[1].pk,
        sortable[3].pk,
    ]


def test_sort_by_last_login(front_desk_client, sortable):
    ascending = _get(front_desk_client, sort="login")
    descending = _get(front_desk_client, sort="-login")

    assert _listed_ids(ascending) == [
        sortable[2].pk,
        sortable[0].pk,
        sortable[1].pk,
        sortable[3].pk,
    ]
    assert _listed_ids(descending) == [
        sortable[0].pk,
        sortable[2].pk,
        sortable[3].pk,
        sortable[1].pk,
    ]


def test_unknown_sort_falls_back_to_name(front_desk_client, sortable):
    response = _get(front_desk_client, sort="email; drop table")

    assert response.context["sort"] == "name"


def test_header_link_toggles_direction(front_desk_client, sortable):
    page = _get(front_desk_client, sort="dob").content.decode()

    assert "?sort=-dob" in page
    assert "?sort=name" in page


def test_paging_keeps_filters(front_desk_client, settings):
    settings.ONBOARDING_PAGE_SIZE = 2
    for index in range(5):
        make_patient(family=f"Tagged{index}", tags=["Heart"])
    make_patient(family="Untagged")
    heart = Tag.objects.get(name="Heart")

    first = _get(front_desk_client, tags=[heart.pk])
    third = _get(front_desk_client, tags=[heart.pk], page=3)

    assert len(_listed_ids(first)) == 2
    assert first.context["page"].paginator.num_pages == 3
    assert f"?tags={heart.pk}&amp;page=2" in first.content.decode()
    assert len(_listed_ids(third)) == 1
    assert third.context["page"].object_list[0].family_name == "Tagged4"


def test_page_past_the_end_shows_last_page(front_desk_client, settings):
    settings.ONBOARDING_PAGE_SIZE = 2
    for index in range(3):
        make_patient(family=f"P{index}")

    response = _get(front_desk_client, page=99)

    assert response.context["page"].number == 2


# Snapshot


def test_snapshot_counts_current_filter(front_desk_client):
    tagged = {"tags": ["Heart"]}
    make_patient(given="Plain", **tagged)
    make_patient(given="Access", portal_access=True, **tagged)
    invited = make_patient(given="Invited", portal_access=True, **tagged)
    _invitation(invited)
    _invitation(invited, created_at=NOW)
    with_user = make_patient(given="User", portal_access=True, **tagged)
    _give_account(with_user, "user-1")
    logged_in = make_patient(given="Login", portal_access=True, **tagged)
    _give_account(logged_in, "user-2", logged_in=NOW)
    make_patient(given="Outside", portal_access=True)
    heart = Tag.objects.get(name="Heart")

    response = _get(front_desk_client, tags=[heart.pk])

    assert response.context["counts"] == {
        "total": 5,
        "with_access": 4,
        "invited": 1,
        "with_username": 2,
        "logged_in": 1,
    }
    assert '<dd id="count-total">5</dd>' in response.content.decode()


# Query count


def _make_listed_patients(count):
    provider = make_practitioner()
    for index in range(count):
        patient = make_patient(
            family=f"Family{index:03d}",
            primary_provider=provider,
            portal_access=True,
            tags=["Heart"],
        )
        _invitation(patient)


def _count_queries(client, params) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("onboarding"), params)
    assert response.status_code == 200
    return len(queries)


def test_query_count_does_not_grow_with_page_size(front_desk_client, settings):
    settings.ONBOARDING_PAGE_SIZE = 100
    params = {"sort": "-invite", "access": "yes"}

    _make_listed_patients(10)
    small = _count_queries(front_desk_client, params)
    _make_listed_patients(50)
    large = _count_queries(front_desk_client, params)

    assert Patient.objects.count() == 60
    assert large == small
    # Includes the session write that keeps the idle limit exact, and the
    # query for the user's unfinished bulk actions.
    assert small <= 12
