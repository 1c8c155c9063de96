"""The demo mailbox: an SMTP server storing mail in a Maildir, and its staff pages."""

import smtplib
import socket
from email.message import EmailMessage

import pytest
from django.urls import reverse

from demo.mailbox import PortInUse, list_messages, read_message, start_server
from tests.conftest import PASSWORD
from tests.smtp import free_port

INVITE_URL = "http://portal.test/invite/abc123/"


def send(
    port,
    *,
    to="jane.doe@example.org",
    subject="Set up your portal account",
    link=INVITE_URL,
):
    message = EmailMessage()
    message["From"] = "portal@localhost"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"Open {link}. Or see https://elsewhere.example.com/x")
    message.add_alternative(
        f'<p><a href="{link}">Set up</a>'
        '<img src="http://203.0.113.9/pixel.png" alt=""></p>'
        "<script>document.title = 'ran'</script>",
        subtype="html",
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(message)


@pytest.fixture
def mailbox_server(tmp_path):
    folder = tmp_path / "mailbox"
    port = free_port()
    server = start_server(folder, port)
    yield folder, port
    server.stop()


@pytest.fixture
def delivered(mailbox_server, settings):
    folder, port = mailbox_server
    send(port)
    settings.DEMO_MAILBOX_DIR = str(folder)
    return folder


def test_mailbox_stores_smtp_message(mailbox_server):
    folder, port = mailbox_server

    send(port, to="zoe@example.net", subject="Hello Zoë")

    stored = list_messages(str(folder))
    assert len(stored) == 1
    assert stored[0].to == "zoe@example.net"
    assert stored[0].subject == "Hello Zoë"
    assert stored[0].date is not None
    shown = read_message(str(folder), stored[0].key)
    assert INVITE_URL in shown.text
    assert "<a href" in shown.html


def test_mailbox_keeps_every_message(mailbox_server):
    folder, port = mailbox_server

    for number in range(3):
        send(port, subject=f"Message {number}")

    assert len(list_messages(str(folder))) == 3


def test_mailbox_rejects_busy_port(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(PortInUse, match=f"Port {port} on 127.0.0.1"):
            start_server(tmp_path / "mailbox", port)


def test_read_message_rejects_unknown_keys(delivered):
    assert read_message(str(delivered), "../../etc/passwd") is None
    assert read_message(str(delivered), "nothing-here") is None


def test_mailbox_page_lists_messages(delivered, front_desk_client):
    response = front_desk_client.get(reverse("demo-mailbox"))

    assert response.status_code == 200
    assert "jane.doe@example.org" in response.text
    assert "Set up your portal account" in response.text


def test_mailbox_needs_permission_to_invite(delivered, read_only_client):
    response = read_only_client.get(reverse("demo-mailbox"))

    assert response.status_code == 403


def test_nav_links_mailbox_in_demo_only(delivered, front_desk_client, settings):
    page = front_desk_client.get(reverse("onboarding")).text
    settings.DEMO_MAILBOX_DIR = ""
    page_outside_demo = front_desk_client.get(reverse("onboarding")).text

    assert reverse("demo-mailbox") in page
    assert reverse("demo-mailbox") not in page_outside_demo


def test_message_page_links_only_portal_urls(delivered, front_desk_client):
    key = list_messages(str(delivered))[0].key

    response = front_desk_client.get(reverse("demo-mailbox-message", args=[key]))

    assert response.status_code == 200
    assert f'<a href="{INVITE_URL}">{INVITE_URL}</a>.' in response.text
    assert 'href="https://elsewhere.example.com' not in response.text
    assert "https://elsewhere.example.com/x" in response.text


def test_message_page_frames_html_in_a_sandbox(delivered, front_desk_client):
    key = list_messages(str(delivered))[0].key
    html_url = reverse("demo-mailbox-message-html", args=[key])

    response = front_desk_client.get(reverse("demo-mailbox-message", args=[key]))

    assert f'sandbox="allow-top-navigation-by-user-activation" src="{html_url}"' in (
        response.text
    )
    assert "<script>document.title" not in response.text
    assert "script-src 'none'" in response["Content-Security-Policy"]


def test_html_part_strict_policy(delivered, front_desk_client):
    key = list_messages(str(delivered))[0].key

    response = front_desk_client.get(reverse("demo-mailbox-message-html", args=[key]))
    policy = response["Content-Security-Policy"]

    assert response.status_code == 200
    assert response.text.startswith('<base target="_top">')
    assert "default-src 'none'" in policy
    assert "img-src data:" in policy
    assert "sandbox allow-top-navigation-by-user-activation" in policy
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_message_page_404s_for_unknown_key(delivered, front_desk_client):
    response = front_desk_client.get(reverse("demo-mailbox-message", args=["nope"]))

    assert response.status_code == 404


def test_mailbox_404s_outside_demo(front_desk_client, settings):
    settings.DEMO_MAILBOX_DIR = ""

    response = front_desk_client.get(reverse("demo-mailbox"))

    assert response.status_code == 404


def test_mailbox_redirects_anonymous_users(delivered, client):
    response = client.get(reverse("demo-mailbox"))
    key = list_messages(str(delivered))[0].key
    message_response = client.get(reverse("demo-mailbox-message", args=[key]))

    html_response = client.get(reverse("demo-mailbox-message-html", args=[key]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff-login"))
    assert message_response.status_code == 302
    assert html_response.status_code == 302


def test_mailbox_forbidden_to_patients(delivered, client, patient_with_account):
    client.force_login(patient_with_account.user)

    response = client.get(reverse("demo-mailbox"))

    assert response.status_code == 403
    assert "jane.doe@example.org" not in response.text


def test_browser_loads_nothing_remote(
    mailbox_server, settings, live_server, browser, front_desk
):
    folder, port = mailbox_server
    settings.DEMO_MAILBOX_DIR = str(folder)
    settings.PORTAL_BASE_URL = live_server.url
    login_url = f"{live_server.url}/portal/login/"
    send(port, link=login_url)
    key = list_messages(str(folder))[0].key
    context = browser.new_context()
    # A request that reaches the network layer passes through this route, but
    # one blocked by the Content-Security-Policy never does.
    fetched = []
    context.route(
        "http://203.0.113.9/**", lambda route: (fetched.append(1), route.abort())
    )
    blocked = []
    # Only the remote image counts: a page's own favicon request may be
    # aborted by the next navigation.
    context.on(
        "requestfailed",
        lambda r: blocked.append(r.failure) if "203.0.113.9" in r.url else None,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/staff/login/")
    page.fill("input[name=username]", "frontdesk")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(live_server.url + reverse("demo-mailbox-message", args=[key]))
    html_frame = page.frame_locator("iframe.mail-html")
    html_frame.locator("a", has_text="Set up").wait_for()

    for _ in range(50):
        if blocked:
            break
        page.wait_for_timeout(100)

    # The image was requested by the HTML part and stopped by the policy.
    assert blocked == ["csp"]
    assert fetched == []
    assert page.title() != "ran"
    page.click(f"pre.mail-text a[href='{login_url}']")
    page.wait_for_url(login_url)
    context.close()
