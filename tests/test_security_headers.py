"""Security headers: the content policy, framing, sniffing and caching.

Every response of the app carries a Content-Security-Policy that allows no
inline script or style, forbids framing and content sniffing, and, unless it
is a static file, carries Cache-Control: no-store.
"""

import datetime
import smtplib
from email.message import EmailMessage

import pytest
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from config.security import NoStoreMiddleware
from demo.mailbox import list_messages, start_server
from demo.views import HTML_PART_POLICY, MESSAGE_POLICY
from portal.emails import password_reset_link
from tests.browser import local_page, log_in_staff
from tests.conftest import PASSWORD, make_invitation, make_patient
from tests.smtp import free_port

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# The test settings' PORTAL_BASE_URL, which starts every emailed link.
PORTAL_BASE_URL = "http://portal.test"
BIRTH_DATE = datetime.date(1980, 5, 17)
NEW_PASSWORD = "willow-lantern-harbor-58"


def cache_directives(response) -> set[str]:
    header = response.get("Cache-Control", "")
    return {part.strip() for part in header.split(",") if part.strip()}


def assert_protected(response, policy=POLICY, frame_options="DENY"):
    """Assert the headers every response of the app must carry."""
    assert response["Content-Security-Policy"] == policy
    assert "Content-Security-Policy-Report-Only" not in response
    assert response["X-Frame-Options"] == frame_options
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in cache_directives(response)
    assert "Strict-Transport-Security" not in response


@pytest.fixture(autouse=True)
def _fresh_counters(clear_attempt_counters):
    pass


@pytest.fixture
def invitee(db):
    patient = make_patient(
        family="Lindqvist",
        given="Maren",
        email="maren.lindqvist@example.org",
        birth_date=BIRTH_DATE,
        portal_access=True,
    )
    return patient, make_invitation(patient)


@pytest.fixture
def mailbox(tmp_path, settings):
    """A demo mailbox server holding one message, shown at /demo/mailbox/."""
    folder = tmp_path / "mailbox"
    port = free_port()
    server = start_server(folder, port)
    message = EmailMessage()
    message["From"] = "portal@localhost"
    message["To"] = "maren.lindqvist@example.org"
    message["Subject"] = "Set up your portal account"
    message.set_content(f"Open {settings.PORTAL_BASE_URL}/portal/login/ to log in.")
    message.add_alternative(
        '<p style="color: #123456">Open the portal to log in.</p>', subtype="html"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(message)
    settings.DEMO_MAILBOX_DIR = str(folder)
    yield list_messages(str(folder))[0].key
    server.stop()


# Staff pages


def test_staff_login_page(client, db):
    assert_protected(client.get(reverse("staff-login")))


def test_onboarding_list(front_desk_client):
    make_patient()

    response = front_desk_client.get(reverse("onboarding"))

    assert response.status_code == 200
    assert_protected(response)
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "same-origin"


def test_confirmation_page(front_desk_client):
    patient = make_patient()

    response = front_desk_client.post(
        reverse("bulk-action"), {"action": "enable", "patient": [patient.pk]}
    )

    assert response.status_code == 200
    assert_protected(response)
    assert response["Cache-Control"] == "no-store"


def test_action_result_redirect(front_desk_client):
    patient = make_patient()
    confirmation = front_desk_client.post(
        reverse("bulk-action"), {"action": "enable", "patient": [patient.pk]}
    )

    response = front_desk_client.post(
        reverse("bulk-action"),
        {
            "action": "enable",
            "patient": [patient.pk],
            "confirm": "1",
            "idempotency_key": confirmation.context["idempotency_key"],
        },
    )

    assert response.status_code == 302
    assert_protected(response)


def test_patient_portal_page(front_desk_client, patient_with_account):
    response = front_desk_client.get(
        reverse("patient-portal", args=[patient_with_account.pk])
    )

    assert response.status_code == 200
    assert_protected(response)
    assert response["Cache-Control"] == "no-store"


def test_not_found_page(front_desk_client):
    response = front_desk_client.get(reverse("patient-portal", args=[999999]))

    assert response.status_code == 404
    assert_protected(response)


# Invitation and patient pages


def test_every_invitation_page(client, invitee):
    _, invitation = invitee

    link = client.get(reverse("invitation-link", args=[invitation.token]))
    verify = client.get(reverse("invitation-verify"))
    verified = client.post(
        reverse("invitation-verify"), {"month": "5", "day": "17", "year": "1980"}
    )
    signup = client.get(reverse("invitation-signup"))
    created = client.post(
        reverse("invitation-signup"),
        {"username": "maren", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    done = client.get(reverse("invitation-done"))
    dead = Client().get(reverse("invitation-link", args=["not-a-token"]))
    not_usable = Client().get(reverse("invitation-verify"))

    assert [link.status_code, verified.status_code, created.status_code] == [302] * 3
    assert created.url == reverse("invitation-done")
    for response in (link, verify, verified, signup, created, done, dead, not_usable):
        assert_protected(response)
    # The invitation pages' own referrer policies are left as they set them.
    assert link["Referrer-Policy"] == "no-referrer"
    assert verify["Referrer-Policy"] == "same-origin"
    assert signup["Referrer-Policy"] == "same-origin"


def test_portal_login_and_home(client, patient_with_account):
    login = client.get(reverse("portal-login"))
    logged_in = client.post(
        reverse("portal-login"), {"username": "chidi", "password": PASSWORD}
    )
    home = client.get(reverse("portal-home"))

    assert logged_in.url == reverse("portal-home")
    assert home.status_code == 200
    assert "You are signed up with" in home.text
    for response in (login, logged_in, home):
        assert_protected(response)


def test_password_reset_pages(client, patient_with_account):
    form = client.get(reverse("portal-password-reset"))
    requested = client.post(reverse("portal-password-reset"), {"identifier": "chidi"})
    sent = client.get(requested.url)
    link = password_reset_link(patient_with_account.user).removeprefix(PORTAL_BASE_URL)
    opened = client.get(link)
    choose = client.get(opened.url)
    chosen = client.post(
        opened.url,
        {
            "month": "5",
            "day": "17",
            "year": "1980",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    complete = client.get(chosen.url)

    assert chosen.url == reverse("portal-password-reset-complete")
    assert "Choose a new password" in choose.text
    for response in (form, requested, sent, opened, choose, chosen, complete):
        assert_protected(response)


def test_forgot_username_pages(client, patient_with_account):
    form = client.get(reverse("portal-forgot-username"))
    requested = client.post(
        reverse("portal-forgot-username"), {"email": "chidi@example.org"}
    )
    sent = client.get(requested.url)

    assert requested.url == reverse("portal-forgot-username-sent")
    for response in (form, requested, sent):
        assert_protected(response)


# The demo mailbox keeps its own, stricter policies.


def test_demo_mailbox_pages(front_desk_client, mailbox):
    listing = front_desk_client.get(reverse("demo-mailbox"))
    message = front_desk_client.get(reverse("demo-mailbox-message", args=[mailbox]))
    html_part = front_desk_client.get(
        reverse("demo-mailbox-message-html", args=[mailbox])
    )

    assert [listing.status_code, message.status_code, html_part.status_code] == [
        200,
        200,
        200,
    ]
    assert_protected(listing)
    assert_protected(message, policy=MESSAGE_POLICY)
    assert_protected(html_part, policy=HTML_PART_POLICY, frame_options="SAMEORIGIN")


# Static files and the middleware itself


def test_static_file_stays_cacheable(client):
    response = client.get("/static/css/site.css")

    assert response.status_code == 200
    directives = cache_directives(response)
    assert "no-store" not in directives
    assert any(directive.startswith("max-age=") for directive in directives)
    assert response["X-Content-Type-Options"] == "nosniff"


def test_no_store_added_by_default():
    middleware = NoStoreMiddleware(lambda request: HttpResponse("page"))

    response = middleware(RequestFactory().get("/"))

    assert response["Cache-Control"] == "no-store"


def test_view_cache_control_is_kept():
    def view(request):
        response = HttpResponse("page")
        response["Cache-Control"] = "private, max-age=30"
        return response

    response = NoStoreMiddleware(view)(RequestFactory().get("/"))

    assert response["Cache-Control"] == "private, max-age=30"


def test_no_hsts_outside_production(client, db):
    response = client.get(reverse("staff-login"), secure=True)

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response


# In Chromium: no page breaks the policy.


def _watch_policy_violations(tab) -> list[str]:
    violations = []

    def check(message):
        if "Content Security Policy" in message.text:
            violations.append(f"{tab.url}: {message.text}")

    tab.on("console", check)
    return violations


@pytest.fixture
def browser_world(transactional_db, settings, live_server, front_desk, mailbox):
    from django.core.cache import cache

    cache.clear()
    patient = make_patient(
        family="Lindqvist",
        given="Maren",
        email="maren.lindqvist@example.org",
        birth_date=BIRTH_DATE,
        portal_access=True,
    )
    make_patient(family="Okafor", given="Chidi", email="chidi@example.org")
    return live_server.url, patient, make_invitation(patient), mailbox


def test_staff_pages_break_no_policy_in_browser(browser, browser_world):
    base_url, patient, _, message_key = browser_world

    with local_page(browser) as tab:
        violations = _watch_policy_violations(tab)
        tab.goto(f"{base_url}/staff/login/")
        log_in_staff(tab, base_url)
        tab.click("#select-all")
        tab.click("button[value=enable]")
        tab.wait_for_selector("#plan-eligible")
        tab.click("button[name=confirm]")
        tab.wait_for_selector(".messages")
        tab.goto(f"{base_url}/patients/{patient.pk}/")
        tab.wait_for_selector("#portal-state")
        tab.goto(f"{base_url}/demo/mailbox/")
        tab.goto(f"{base_url}/demo/mailbox/{message_key}/")
        tab.frame_locator("iframe.mail-html").locator("p").wait_for()

    assert violations == []


def test_patient_pages_break_no_policy_in_browser(browser, browser_world):
    base_url, _, invitation, _ = browser_world

    with local_page(browser) as tab:
        violations = _watch_policy_violations(tab)
        tab.goto(f"{base_url}/invite/{invitation.token}/")
        tab.fill("input[name=month]", "May")
        tab.fill("input[name=day]", "17")
        tab.fill("input[name=year]", "1980")
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/invite/account/")
        tab.fill("input[name=username]", "maren")
        tab.fill("input[name=password1]", NEW_PASSWORD)
        tab.fill("input[name=password2]", NEW_PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/invite/ready/")
        tab.get_by_role("link", name="Log in").click()
        tab.wait_for_url(f"{base_url}/portal/login/")
        tab.fill("input[name=username]", "maren")
        tab.fill("input[name=password]", NEW_PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/portal/")
        tab.get_by_role("button", name="Log out").click()
        tab.wait_for_url(f"{base_url}/portal/login/")

        account = get_user_model().objects.get(username="maren")
        reset_path = password_reset_link(account).removeprefix(PORTAL_BASE_URL)
        tab.goto(base_url + reset_path)
        tab.wait_for_url(f"{base_url}/portal/password-reset/*/set-password/")
        tab.fill("input[name=month]", str(BIRTH_DATE.month))
        tab.fill("input[name=day]", str(BIRTH_DATE.day))
        tab.fill("input[name=year]", str(BIRTH_DATE.year))
        tab.fill("input[name=new_password1]", NEW_PASSWORD + "x")
        tab.fill("input[name=new_password2]", NEW_PASSWORD + "x")
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/portal/password-reset/done/")
        tab.goto(f"{base_url}/portal/password-reset/")
        tab.fill("input[name=identifier]", "maren")
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/portal/password-reset/sent/")
        tab.goto(f"{base_url}/portal/forgot-username/")
        tab.fill("input[name=email]", "maren.lindqvist@example.org")
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/portal/forgot-username/sent/")
        tab.goto(f"{base_url}/invite/not-a-token/")

    assert violations == []


def test_browser_reports_inline_style_as_violation(
    browser, live_server, transactional_db
):
    # The checks above pass only if Chromium logs violations at all, so an
    # inline style attribute set on a page must be logged as one.
    with local_page(browser) as tab:
        violations = _watch_policy_violations(tab)
        tab.goto(f"{live_server.url}/portal/login/")
        tab.evaluate("document.body.setAttribute('style', 'color: red')")
        tab.wait_for_timeout(200)

    assert len(violations) == 1
    assert "style-src 'self'" in violations[0]
