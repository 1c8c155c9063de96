"""Safety checks before enabling access or inviting, each from data that triggers it."""

import datetime

import pytest
from django.utils import timezone

from invitations.models import Invitation
from patients import bulk
from patients.models import Patient
from tests.conftest import make_patient, make_practitioner

NOW = datetime.datetime(2027, 3, 1, 15, 0, tzinfo=datetime.UTC)
ACTIONS = [bulk.ENABLE, bulk.INVITE]

pytestmark = pytest.mark.django_db


def _reason(patient, action, now=NOW):
    """Return the skip reason of one patient for ACTION, or "eligible"."""
    if action == bulk.INVITE:
        Patient.objects.filter(pk=patient.pk).update(portal_access=True)
    annotated = bulk.annotate_reason(Patient.objects.filter(pk=patient.pk), action, now)
    return annotated.values_list("skip_reason", flat=True).get()


def _born_years_ago(years, days=0):
    return bulk.years_before(NOW.date(), years) + datetime.timedelta(days=days)


@pytest.mark.parametrize("action", ACTIONS)
def test_plain_patient_is_eligible(action):
    patient = make_patient()

    assert _reason(patient, action) == bulk.ELIGIBLE


@pytest.mark.parametrize("action", [bulk.INVITE])
def test_address_of_another_patient_is_shared(action):
    mother = make_patient(given="Ana", email="family@example.org")
    son = make_patient(given="Luis", email="  Family@Example.ORG ")

    assert _reason(mother, action) == "shared_email"
    assert _reason(son, action) == "shared_email"


@pytest.mark.parametrize("action", [bulk.INVITE])
def test_address_of_a_practitioner_is_shared(action):
    make_practitioner(email="Dr.Ruiz@Clinic.example ")
    patient = make_patient(email="dr.ruiz@clinic.example")

    assert _reason(patient, action) == "shared_email"


@pytest.mark.parametrize("action", [bulk.INVITE])
def test_recent_email_change_is_held(action, settings):
    settings.EMAIL_CHANGE_HOLD_DAYS = 14
    recent = make_patient(given="Recent", email_changed_at=NOW - datetime.timedelta(13))
    settled = make_patient(
        given="Settled", email_changed_at=NOW - datetime.timedelta(15)
    )

    assert _reason(recent, action) == "email_changed"
    assert _reason(settled, action) == bulk.ELIGIBLE


@pytest.mark.parametrize("action", [bulk.INVITE])
def test_failed_delivery_to_same_address(action):
    patient = make_patient(email="bounced@example.org")
    moved = make_patient(given="Moved", email="new@example.org")
    for owner, address in (
        (patient, "Bounced@example.org"),
        (moved, "old@example.org"),
    ):
        Invitation.objects.create(
            patient=owner,
            email=address,
            salt=Invitation.new_salt(),
            token_hash=f"hash-{owner.pk}",
            created_at=NOW - datetime.timedelta(days=30),
            expires_at=NOW - datetime.timedelta(days=16),
            status=Invitation.Status.PENDING,
            delivery_status=Invitation.Delivery.FAILED,
            delivery_error="550 5.1.1 Mailbox unavailable",
        )

    assert _reason(patient, action) == "delivery_failed"
    assert _reason(moved, action) == bulk.ELIGIBLE


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize(
    ("years", "days", "expected"),
    [
        (18, 0, bulk.ELIGIBLE),  # the 18th birthday is the day of the action
        (18, 1, "minor"),  # turns 18 tomorrow
        (12, 0, "minor"),
        (12, 1, "child"),
        (3, 0, "child"),
    ],
)
def test_age_on_day_of_action(action, years, days, expected):
    patient = make_patient(birth_date=_born_years_ago(years, days))

    assert _reason(patient, action) == expected


def test_minor_becomes_eligible_without_reimport():
    patient = make_patient(birth_date=_born_years_ago(18, 10))

    assert _reason(patient, bulk.INVITE) == "minor"
    later = NOW + datetime.timedelta(days=10)
    assert _reason(patient, bulk.INVITE, now=later) == bulk.ELIGIBLE


def test_age_policy_is_a_setting(settings):
    settings.AGE_OF_MAJORITY = 19
    settings.OWN_ACCOUNT_MIN_AGE = 14
    eighteen = make_patient(given="Eighteen", birth_date=_born_years_ago(18))
    thirteen = make_patient(given="Thirteen", birth_date=_born_years_ago(13))

    assert _reason(eighteen, bulk.ENABLE) == "minor"
    assert _reason(thirteen, bulk.ENABLE) == "child"


def test_february_29_birthday_counts_from_february_28():
    assert bulk.years_before(datetime.date(2028, 2, 29), 18) == datetime.date(
        2010, 2, 28
    )


@pytest.mark.parametrize("action", ACTIONS)
def test_same_name_and_birth_date_is_possible_duplicate(action):
    first = make_patient(family="Müller", given="Zoë")
    second = make_patient(family="MULLER", given="zoe")
    other_day = make_patient(
        family="Müller", given="Zoë", birth_date=datetime.date(1981, 5, 17)
    )

    assert _reason(first, action) == "possible_duplicate"
    assert _reason(second, action) == "possible_duplicate"
    assert _reason(other_day, action) == bulk.ELIGIBLE


@pytest.mark.parametrize("action", ACTIONS)
def test_missing_birth_date_is_skipped(action):
    patient = make_patient(birth_date=None)

    assert _reason(patient, action) == "no_birth_date"


@pytest.mark.parametrize(
    ("action", "fields", "expected"),
    [
        (bulk.ENABLE, {"deceased": True}, "deceased"),
        (bulk.INVITE, {"deceased": True}, "deceased"),
        (bulk.ENABLE, {"active": False}, "inactive"),
        (bulk.INVITE, {"active": False}, "inactive"),
        (bulk.INVITE, {"email": ""}, "no_email"),
        (bulk.INVITE, {"email": "not an address"}, "invalid_email"),
    ],
)
def test_record_facts_are_skipped(action, fields, expected):
    patient = make_patient(**fields)

    assert _reason(patient, action) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"email": ""},
        {"email": "not an address"},
        {"email_changed_at": NOW - datetime.timedelta(days=1)},
    ],
)
def test_enabling_access_does_not_check_address(fields):
    patient = make_patient(**fields)

    assert _reason(patient, bulk.ENABLE) == bulk.ELIGIBLE
    assert _reason(patient, bulk.INVITE) != bulk.ELIGIBLE


def test_plan_counts_each_safety_reason():
    make_patient(given="Shared1", email="home@example.org")
    make_patient(given="Shared2", email="home@example.org")
    make_patient(given="Child", birth_date=_born_years_ago(5))
    make_patient(given="Teen", birth_date=_born_years_ago(15))
    make_patient(given="Fine")

    enable = bulk.plan(Patient.objects.all(), bulk.ENABLE, NOW)
    Patient.objects.update(portal_access=True)
    invite = bulk.plan(Patient.objects.all(), bulk.INVITE, NOW)

    assert enable.eligible == 3
    assert enable.skipped == {"child": 1, "minor": 1}
    assert invite.eligible == 1
    assert invite.skipped == {"shared_email": 2, "child": 1, "minor": 1}


def test_overridable_reasons_are_known():
    assert set(bulk.SKIP_REASONS) >= bulk.OVERRIDABLE
    assert "child" not in bulk.OVERRIDABLE
    assert "deceased" not in bulk.OVERRIDABLE


def test_checks_use_the_current_day_by_default():
    patient = make_patient(birth_date=timezone.localdate() - datetime.timedelta(400))

    annotated = bulk.annotate_reason(Patient.objects.filter(pk=patient.pk), "enable")

    assert annotated.values_list("skip_reason", flat=True).get() == "child"


def test_every_overridable_check_is_listed():
    make_patient(given="Parent", email="family@example.org")
    teen = make_patient(
        given="Teen", email="family@example.org", birth_date=_born_years_ago(15)
    )
    Patient.objects.filter(pk=teen.pk).update(portal_access=True)

    reasons = bulk.failing_checks(teen.pk, bulk.INVITE, NOW)

    assert reasons == ["minor", "shared_email"]
