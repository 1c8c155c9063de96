"""Who may open the staff pages and who may act on them."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from patients.models import Patient
from tests.conftest import PASSWORD, make_patient

STAFF_PAGES = ["onboarding", "patient-portal"]

STAFF_POSTS = [
    ("bulk-action", {"action": "enable", "scope": "page"}),
    ("bulk-action", {"action": "invite", "scope": "page"}),
    ("patient-access", {"enabled": "true"}),
    ("patient-invite", {}),
    ("patient-username", {"username": "newname"}),
]


def _url(name, patient):
    if name.startswith("patient-"):
        return reverse(name, args=[patient.pk])
    return reverse(name)


@pytest.fixture
def patient(db):
    return make_patient(portal_access=True)


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_anonymous_user_is_sent_to_staff_login(client, patient, name):
    url = _url(name, patient)

    response = client.get(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('staff-login')}?next={url}"


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_patient_user_gets_403_on_staff_pages(client, patient_with_account, name):
    client.force_login(patient_with_account.user)

    response = client.get(_url(name, patient_with_account))

    assert response.status_code == 403


@pytest.mark.parametrize(("name", "data"), STAFF_POSTS)
def test_patient_user_gets_403_on_staff_actions(
    client, patient_with_account, name, data
):
    client.force_login(patient_with_account.user)

    response = client.post(
        _url(name, patient_with_account),
        {**data, "patient": [patient_with_account.pk]},
    )

    assert response.status_code == 403


@pytest.mark.parametrize(("name", "data"), STAFF_POSTS)
def test_read_only_staff_gets_403_on_every_action(
    read_only_client, patient_with_account, name, data
):
    response = read_only_client.post(
        _url(name, patient_with_account),
        {**data, "patient": [patient_with_account.pk], "confirm": "1"},
    )

    assert response.status_code == 403
    patient_with_account.refresh_from_db()
    assert patient_with_account.user.username == "chidi"
    assert patient_with_account.invitations.count() == 0
    assert not AuditEvent.objects.filter(patient=patient_with_account).exists()


def test_read_only_staff_cannot_enable_access_in_bulk(read_only_client):
    patient = make_patient()

    response = read_only_client.post(
        reverse("bulk-action"),
        {
            "action": "enable",
            "scope": "all",
            "confirm": "1",
            "idempotency_key": "k1",
        },
    )

    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.portal_access is False


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_read_only_staff_can_view(read_only_client, patient, name):
    response = read_only_client.get(_url(name, patient))

    assert response.status_code == 200


def test_read_only_staff_sees_disabled_buttons(read_only_client, patient):
    page = read_only_client.get(reverse("onboarding")).content.decode()

    assert 'value="enable" disabled' in page
    assert 'value="invite" disabled' in page
    assert "but not change portal access or send invitations" in page


def test_front_desk_sees_enabled_buttons(front_desk_client, patient):
    page = front_desk_client.get(reverse("onboarding")).content.decode()

    assert 'value="enable">' in page
    assert 'value="invite">' in page


def test_staff_login_records_audit_event(client, front_desk):
    response = client.post(
        reverse("staff-login"), {"username": "frontdesk", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response.url == reverse("onboarding")
    event = AuditEvent.objects.get(action=AuditEvent.Action.STAFF_LOGIN)
    assert event.actor == front_desk
    assert event.patient is None


def test_staff_login_follows_safe_next(client, front_desk, patient):
    target = reverse("patient-portal", args=[patient.pk])

    response = client.post(
        reverse("staff-login"),
        {"username": "frontdesk", "password": PASSWORD, "next": target},
    )

    assert response.url == target


def test_staff_login_ignores_next_to_other_site(client, front_desk):
    response = client.post(
        reverse("staff-login"),
        {
            "username": "frontdesk",
            "password": PASSWORD,
            "next": "https://elsewhere.example/",
        },
    )

    assert response.url == reverse("onboarding")


def test_staff_login_rejects_wrong_password(client, front_desk):
    response = client.post(
        reverse("staff-login"), {"username": "frontdesk", "password": "wrong"}
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_LOGIN).exists()


def test_staff_login_rejects_patient_account(client, patient_with_account):
    response = client.post(
        reverse("staff-login"), {"username": "chidi", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "This login is for practice staff" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_staff_logout_needs_post(front_desk_client):
    response = front_desk_client.get(reverse("staff-logout"))

    assert response.status_code == 405
    assert "_auth_user_id" in front_desk_client.session


def test_staff_logout_ends_session(front_desk_client):
    response = front_desk_client.post(reverse("staff-logout"))

    assert response.status_code == 302
    assert response.url == reverse("staff-login")
    assert "_auth_user_id" not in front_desk_client.session


def test_actions_need_csrf_token(front_desk):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(front_desk)
    patient = make_patient()

    response = client.post(
        reverse("patient-access", args=[patient.pk]), {"enabled": "true"}
    )

    assert response.status_code == 403
    assert Patient.objects.get(pk=patient.pk).portal_access is False


@pytest.mark.parametrize(
    "name", ["patient-portal", "patient-access", "patient-invite", "patient-username"]
)
def test_unknown_patient_is_not_found(admin_user, client, name):
    client.force_login(admin_user)
    url = reverse(name, args=[999999])

    response = client.get(url) if name == "patient-portal" else client.post(url)

    assert response.status_code == 404
