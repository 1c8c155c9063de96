"""Twenty simultaneous sign-ups from one invitation create exactly one account.

The site runs as its own process on a file SQLite database, as in a real
installation, and twenty clients submit the sign-up form at the same moment.
"""

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = 20
PASSWORD = "quiet-lantern-meadow-river"

CREATE_INVITATION = """
import datetime, json
from patients.models import Patient
from invitations.services import send_invitation
patient = Patient(source="test", source_id="solo", portal_access=True,
                  birth_date=datetime.date(1975, 8, 9))
patient.set_name("Solo", "Sam")
patient.set_email("solo@example.org")
patient.save()
print(json.dumps({"token": send_invitation(patient, actor=None).token}))
"""

COUNT_ACCOUNTS = """
import json
from django.contrib.auth import get_user_model
from audit.models import AuditEvent
from invitations.models import Invitation
from patients.models import Patient
print(json.dumps({
    "users": get_user_model().objects.filter(username__startswith="solo").count(),
    "linked": Patient.objects.exclude(user=None).count(),
    "accepted": Invitation.objects.filter(status="accepted").count(),
    "audited": AuditEvent.objects.filter(action="accept").count(),
}))
"""


@pytest.fixture
def site(tmp_path):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "EMAIL_URL": "memory://",
        "ALLOWED_HOSTS": "127.0.0.1",
    }

    def manage(*arguments):
        completed = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    manage("migrate", "--no-input")
    token = json.loads(manage("shell", "--no-imports", "-c", CREATE_INVITATION))[
        "token"
    ]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/portal/login/", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                server.kill()
                pytest.fail("The web server did not start within 30 seconds.")
            time.sleep(0.2)
    yield base, token, manage
    server.terminate()
    server.wait(timeout=10)


class _Browser:
    """One patient's browser: its own cookies, and the CSRF token of its last form."""

    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path):
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.read().decode()

    def post(self, path, fields, page):
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        data = urllib.parse.urlencode(
            {**fields, "csrfmiddlewaretoken": token.group(1)}
        ).encode()
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Origin": self.base}
        )
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.geturl()
        except urllib.error.HTTPError as error:
            return error.code, error.geturl()


def test_simultaneous_signups_make_one_account(site):
    base, token, manage = site
    browsers = []
    for _ in range(SUBMISSIONS):
        browser = _Browser(base)
        page = browser.get(f"/invite/{token}/")
        browser.post("/invite/", {"month": "8", "day": "9", "year": "1975"}, page)
        browsers.append((browser, browser.get("/invite/account/")))
    start = threading.Barrier(SUBMISSIONS)
    landed = [None] * SUBMISSIONS

    def submit(number):
        browser, page = browsers[number]
        fields = {
            "username": f"solo{number}",
            "password1": PASSWORD,
            "password2": PASSWORD,
        }
        start.wait()
        landed[number] = browser.post("/invite/account/", fields, page)

    threads = [
        threading.Thread(target=submit, args=(number,)) for number in range(SUBMISSIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    counts = json.loads(manage("shell", "--no-imports", "-c", COUNT_ACCOUNTS))
    assert counts == {"users": 1, "linked": 1, "accepted": 1, "audited": 1}
    ready = [url for status, url in landed if url.endswith("/invite/ready/")]
    assert len(ready) == 1, landed
    assert all(status < 500 for status, _ in landed), landed
