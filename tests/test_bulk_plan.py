from patients import bulk
from patients.models import Patient
from tests.conftest import make_patient


def test_plan_groups_skips_by_reason(db):
    make_patient(given="A", email="", portal_access=True)
    make_patient(given="B", email="not-an-address", portal_access=True)
    make_patient(given="C", deceased=True, portal_access=True)
    make_patient(given="D", portal_access=False)
    make_patient(given="E", portal_access=True)

    result = bulk.plan(Patient.objects.all(), bulk.INVITE)

    assert result.eligible == 1
    assert result.skipped == {
        "deceased": 1,
        "access_not_enabled": 1,
        "no_email": 1,
        "invalid_email": 1,
    }


def test_plan_for_enable_skips_enabled_and_deceased(db):
    make_patient(given="A", portal_access=True)
    make_patient(given="B", deceased=True)
    make_patient(given="C")

    result = bulk.plan(Patient.objects.all(), bulk.ENABLE)

    assert result.eligible == 1
    assert result.skipped == {"deceased": 1, "already_enabled": 1}


def test_skipped_reasons_listed_in_checking_order():
    plan = bulk.Plan(
        action=bulk.INVITE,
        skipped={"shared_email": 1, "deceased": 2, "no_email": 3},
    )

    reasons = [reason for reason, _, _ in plan.skipped_with_labels()]

    assert reasons == ["deceased", "no_email", "shared_email"]
