"""Bulk actions from the onboarding list: confirmation, scope, result, repeat."""

import datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from invitations.models import Invitation
from patients.models import BulkActionRequest, Patient, Tag
from tests.conftest import make_patient


def _post(client, data, follow=False):
    return client.post(reverse("bulk-action"), data, follow=follow)


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _confirm(client, data, key="key-1"):
    return _post(client, {**data, "confirm": "1", "idempotency_key": key})


# Confirmation page


def test_confirmation_counts_enable_by_reason(front_desk_client):
    ready = [make_patient(given=f"Ready{i}") for i in range(3)]
    enabled = make_patient(given="Enabled", portal_access=True)
    deceased = make_patient(given="Deceased", deceased=True)
    ids = [p.pk for p in [*ready, enabled, deceased]]

    response = _post(front_desk_client, {"action": "enable", "patient": ids})

    assert response.status_code == 200
    plan = response.context["plan"]
    assert plan.eligible == 3
    assert plan.skipped == {"deceased": 1, "already_enabled": 1}
    page = response.content.decode()
    assert '<strong id="plan-eligible">3</strong>' in page
    assert '<strong id="plan-skipped">2</strong>' in page
    assert "<td>Portal access already enabled</td><td>1</td>" in page
    assert "<td>Deceased</td><td>1</td>" in page
    assert "Enable portal access for 3 patients" in page
    assert Patient.objects.filter(portal_access=True).count() == 1


def test_confirmation_counts_invite_by_reason(front_desk_client):
    ready = make_patient(given="Ready", portal_access=True)
    no_email = make_patient(given="NoEmail", portal_access=True, email="")
    bad_email = make_patient(given="Bad", portal_access=True, email="nope")
    off = make_patient(given="Off")
    ids = [p.pk for p in [ready, no_email, bad_email, off]]

    response = _post(front_desk_client, {"action": "invite", "patient": ids})

    plan = response.context["plan"]
    assert plan.eligible == 1
    assert plan.skipped == {
        "access_not_enabled": 1,
        "no_email": 1,
        "invalid_email": 1,
    }
    assert "Send 1 invitation" in response.content.decode()
    assert Invitation.objects.count() == 0


def test_confirmation_carries_a_new_key_each_time(front_desk_client):
    patient = make_patient()
    data = {"action": "enable", "patient": [patient.pk]}

    first = _post(front_desk_client, data).context["idempotency_key"]
    second = _post(front_desk_client, data).context["idempotency_key"]

    assert first != second
    assert len(first) >= 32


def test_confirmation_without_eligible_patients_offers_no_button(front_desk_client):
    patient = make_patient(portal_access=True)

    response = _post(front_desk_client, {"action": "enable", "patient": [patient.pk]})

    page = response.content.decode()
    assert "Nothing to do" in page
    assert 'name="confirm"' not in page


# Carrying out


def test_enable_acts_on_ticked_patients(front_desk_client, front_desk):
    ticked = [make_patient(given=f"T{i}") for i in range(2)]
    untouched = make_patient(given="Other")
    deceased = make_patient(given="Dead", deceased=True)

    response = _confirm(
        front_desk_client,
        {"action": "enable", "patient": [p.pk for p in [*ticked, deceased]]},
    )

    assert response.status_code == 302
    assert _messages(response) == [
        "Portal access enabled for 2 patients, 1 skipped (Deceased: 1)."
    ]
    for patient in ticked:
        patient.refresh_from_db()
        assert patient.portal_access is True
    untouched.refresh_from_db()
    assert untouched.portal_access is False
    events = AuditEvent.objects.filter(action=AuditEvent.Action.ENABLE_ACCESS)
    assert sorted(events.values_list("patient_id", flat=True)) == sorted(
        p.pk for p in ticked
    )
    assert {event.actor for event in events} == {front_desk}


def test_invite_queues_invitations_and_delivery(front_desk_client):
    ready = [make_patient(given=f"R{i}", portal_access=True) for i in range(3)]
    no_email = make_patient(given="NoEmail", portal_access=True, email="")

    response = _confirm(
        front_desk_client,
        {"action": "invite", "patient": [p.pk for p in [*ready, no_email]]},
    )

    assert _messages(response) == [
        "3 invitations queued, 1 skipped (No email address: 1)."
    ]
    assert Invitation.objects.count() == 3
    assert not Invitation.objects.filter(patient=no_email).exists()
    tasks = DBTaskResult.objects.filter(
        task_path="invitations.tasks.deliver_invitations"
    )
    queued_ids = sorted(i for task in tasks for i in task.args_kwargs["args"][0])
    assert queued_ids == sorted(Invitation.objects.values_list("pk", flat=True))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.INVITE).count() == 3


def test_result_message_names_singular(front_desk_client):
    patient = make_patient(portal_access=True)

    response = _confirm(
        front_desk_client, {"action": "invite", "patient": [patient.pk]}
    )

    assert _messages(response) == ["1 invitation queued, 0 skipped."]


def test_result_is_shown_on_the_list(front_desk_client):
    patient = make_patient()

    response = front_desk_client.post(
        reverse("bulk-action"),
        {
            "action": "enable",
            "patient": [patient.pk],
            "confirm": "1",
            "idempotency_key": "key-shown",
        },
        follow=True,
    )

    assert response.request["PATH_INFO"] == reverse("onboarding")
    assert "Portal access enabled for 1 patient, 0 skipped." in (
        response.content.decode()
    )


def test_redirect_keeps_filters(front_desk_client):
    patient = make_patient(tags=["Heart"])
    heart = Tag.objects.get(name="Heart")

    response = _confirm(
        front_desk_client,
        {"action": "enable", "patient": [patient.pk], "tags": [heart.pk]},
    )

    assert response.url == f"{reverse('onboarding')}?tags={heart.pk}"


# Scope: all matching the filters


def test_select_all_ignores_posted_ids(front_desk_client):
    inside = [make_patient(given=f"In{i}", tags=["Heart"]) for i in range(3)]
    outside = make_patient(given="Out", tags=["Other"])
    heart = Tag.objects.get(name="Heart")

    response = _confirm(
        front_desk_client,
        {
            "action": "enable",
            "scope": "all",
            "tags": [heart.pk],
            # A browser could post any ids; with scope=all they are ignored.
            "patient": [outside.pk],
        },
    )

    assert _messages(response) == ["Portal access enabled for 3 patients, 0 skipped."]
    for patient in inside:
        patient.refresh_from_db()
        assert patient.portal_access is True
    outside.refresh_from_db()
    assert outside.portal_access is False


def test_select_all_matching_confirmation_counts_filter(front_desk_client):
    for index in range(4):
        make_patient(given=f"In{index}", portal_access=True, tags=["Heart"])
    make_patient(given="Out", portal_access=True)
    heart = Tag.objects.get(name="Heart")

    response = _post(
        front_desk_client,
        {"action": "invite", "scope": "all", "tags": [heart.pk]},
    )

    page = response.content.decode()
    assert response.context["plan"].eligible == 4
    assert "every patient matching the list" in page
    assert f'<input type="hidden" name="tags" value="{heart.pk}">' in page
    assert '<input type="hidden" name="scope" value="all">' in page


def test_select_all_with_search_acts_on_search(front_desk_client):
    jane = make_patient(family="Doe", given="Jane")
    other = make_patient(family="Roe", given="Rich")

    _confirm(front_desk_client, {"action": "enable", "scope": "all", "q": "doe"})

    jane.refresh_from_db()
    other.refresh_from_db()
    assert jane.portal_access is True
    assert other.portal_access is False


def test_select_all_with_invalid_filter_does_nothing(front_desk_client):
    patient = make_patient()

    response = _confirm(
        front_desk_client,
        {"action": "enable", "scope": "all", "q": "13/45/1980"},
    )

    assert "The filters have errors" in _messages(response)[0]
    patient.refresh_from_db()
    assert patient.portal_access is False


# Bad selections


def test_action_without_selection_says_so(front_desk_client):
    make_patient()

    response = _post(front_desk_client, {"action": "enable"})

    assert response.status_code == 302
    assert _messages(response) == ["Select at least one patient first."]


def test_unknown_action_says_so(front_desk_client):
    patient = make_patient()

    response = _post(front_desk_client, {"action": "delete", "patient": [patient.pk]})

    assert _messages(response) == [
        "Choose Enable Portal Access or Send Portal Invite(s)."
    ]


def test_invalid_patient_id_is_named(front_desk_client):
    response = _post(front_desk_client, {"action": "enable", "patient": ["12x"]})

    assert _messages(response) == ["'12x' is not a patient id."]


@pytest.mark.parametrize("value", ["99999999999999999999", "²", "١٢", "0"])
def test_out_of_range_patient_id_is_named(front_desk_client, value):
    make_patient(family="Twelve")

    response = _post(front_desk_client, {"action": "enable", "patient": [value]})

    assert response.status_code == 302
    assert _messages(response) == [f"{value!r} is not a patient id."]
    assert not Patient.objects.filter(portal_access=True).exists()


def test_unknown_scope_is_rejected(front_desk_client):
    patient = make_patient()

    response = _confirm(
        front_desk_client,
        {"action": "enable", "scope": "everything", "patient": [patient.pk]},
    )

    assert "Unknown selection 'everything'" in _messages(response)[0]
    patient.refresh_from_db()
    assert patient.portal_access is False


def test_confirm_without_key_does_nothing(front_desk_client):
    patient = make_patient()

    response = _post(
        front_desk_client,
        {"action": "enable", "patient": [patient.pk], "confirm": "1"},
    )

    assert "Start the action again" in _messages(response)[0]
    patient.refresh_from_db()
    assert patient.portal_access is False


# Repeats


def test_double_submit_invites_once(front_desk_client):
    patients = [make_patient(given=f"P{i}", portal_access=True) for i in range(2)]
    data = {"action": "invite", "patient": [p.pk for p in patients]}

    first = _confirm(front_desk_client, data, key="same-key")
    second = _confirm(front_desk_client, data, key="same-key")

    assert _messages(first) == ["2 invitations queued, 0 skipped."]
    # Messages not yet shown on a page pile up, so the newest is last.
    assert _messages(second)[-1] == (
        "This confirmation was already carried out, so nothing was done again: "
        "2 invitations queued, 0 skipped."
    )
    assert Invitation.objects.count() == 2
    assert DBTaskResult.objects.count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.INVITE).count() == 2


def test_double_submit_enables_once(front_desk_client):
    patient = make_patient()
    data = {"action": "enable", "patient": [patient.pk]}

    _confirm(front_desk_client, data, key="enable-key")
    _confirm(front_desk_client, data, key="enable-key")

    events = AuditEvent.objects.filter(action=AuditEvent.Action.ENABLE_ACCESS)
    assert events.count() == 1
    assert BulkActionRequest.objects.get().eligible == 1


def test_repeat_while_first_is_running_does_nothing(front_desk_client, front_desk):
    patient = make_patient(portal_access=True)
    BulkActionRequest.objects.create(
        idempotency_key="running-key", user=front_desk, action="invite"
    )

    response = _confirm(
        front_desk_client,
        {"action": "invite", "patient": [patient.pk]},
        key="running-key",
    )

    assert "already being carried out" in _messages(response)[0]
    assert Invitation.objects.count() == 0


@pytest.mark.parametrize("action", ["enable", "invite"])
def test_new_key_skips_done_patients(front_desk_client, action):
    patient = make_patient(portal_access=action == "invite")
    data = {"action": action, "patient": [patient.pk]}

    _confirm(front_desk_client, data, key="first")
    response = _confirm(front_desk_client, data, key="second")

    assert ", 1 skipped" in _messages(response)[-1]


def test_failed_action_releases_key_for_retry(front_desk_client, monkeypatch):
    patient = make_patient()
    data = {"action": "enable", "patient": [patient.pk]}

    def fail(patients, *, actor):
        raise RuntimeError("database went away")

    with monkeypatch.context() as patched:
        patched.setattr("patients.actions.enable_access", fail)
        with pytest.raises(RuntimeError):
            _confirm(front_desk_client, data, key="retry-key")
    assert not BulkActionRequest.objects.exists()

    response = _confirm(front_desk_client, data, key="retry-key")

    assert _messages(response)[-1] == "Portal access enabled for 1 patient, 0 skipped."
    patient.refresh_from_db()
    assert patient.portal_access is True


def test_more_ids_than_a_page_are_rejected(front_desk_client, settings):
    settings.ONBOARDING_PAGE_SIZE = 2
    patients = [make_patient(given=f"P{i}") for i in range(3)]

    response = _confirm(
        front_desk_client, {"action": "enable", "patient": [p.pk for p in patients]}
    )

    assert _messages(response) == [
        "3 patients were ticked, more than one page of 2. "
        "Use “Select all patients matching the filters” instead."
    ]
    assert not Patient.objects.filter(portal_access=True).exists()


def test_old_finished_keys_are_deleted(front_desk_client, front_desk):
    patient = make_patient(portal_access=True, email="old@example.org")
    old = BulkActionRequest.objects.create(
        idempotency_key="old-key",
        user=front_desk,
        action="enable",
        created_at=timezone.now() - datetime.timedelta(days=8),
        finished_at=timezone.now() - datetime.timedelta(days=8),
    )
    recent = BulkActionRequest.objects.create(
        idempotency_key="recent-key",
        user=front_desk,
        action="enable",
        finished_at=timezone.now(),
    )

    _confirm(front_desk_client, {"action": "invite", "patient": [patient.pk]})

    assert not BulkActionRequest.objects.filter(pk=old.pk).exists()
    assert BulkActionRequest.objects.filter(pk=recent.pk).exists()
    assert BulkActionRequest.objects.filter(idempotency_key="key-1").exists()
