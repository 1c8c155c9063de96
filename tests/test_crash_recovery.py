"""Real worker processes on PostgreSQL, killed with SIGKILL, lose and repeat nothing.

Each test gets its own database on the server of the suite's PostgreSQL pass,
copied from a migrated template, and runs `manage.py run_worker` processes
against it with mail going to the test's SMTP server on 127.0.0.1. After the
processes are killed and replaced, the test checks the invariants the
product promises:

- every queued invitation ends sent, and none stays queued;
- every sent invitation has exactly one audit record of its delivery;
- a patient gets one message per send, or two carrying the same link when a
  worker died between the server accepting it and the database recording it
  (which a worker does for RECORD_EVERY messages at a time);
- a bulk action acts on each patient once, whatever happened to its worker.

The suite's SQLite pass skips this module: several processes sharing work
under row locks is what PostgreSQL is for.
"""

import contextlib
import http.cookiejar
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from invitations.delivery import RECORD_EVERY
from tests.smtp import free_port

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="runs in the PostgreSQL pass of `make test` (TEST_DATABASE_URL)",
)

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "crash-test-secret-key-" + "x" * 40
PORTAL = "http://portal.test"
LINK = re.compile(re.escape(PORTAL) + r"/invite/[^\s\"<]+")

CREATE_INVITED_PATIENTS = """
import datetime
from patients.models import Patient
from invitations.services import send_invitations
patients = []
for number in range({count}):
    patient = Patient(
        source="crash",
        source_id=str(number),
        portal_access=True,
        # A birth date of their own keeps patients from looking like duplicates.
        birth_date=datetime.date(1940, 1, 1) + datetime.timedelta(days=number),
    )
    patient.set_name("Moreau", "Aline")
    patient.set_email(f"patient{{number}}@example.org")
    patients.append(patient)
Patient.objects.bulk_create(patients)
{after}
"""

SEND_TO_ALL = "send_invitations(Patient.objects.all(), actor=None)"

# Every delivery task queued a second time, as a retrying client or a
# sweep on another machine might, so that workers compete for the same ids.
SEND_TO_ALL_TWICE = """
send_invitations(Patient.objects.all(), actor=None)
from django_tasks_db.models import DBTaskResult
from invitations.tasks import deliver_invitations
for task in list(DBTaskResult.objects.all()):
    deliver_invitations.enqueue(*task.args_kwargs["args"])
"""

START_INVITE_JOB = """
from django.contrib.auth import get_user_model
from patients import jobs
from patients.models import BulkActionRequest
user = get_user_model().objects.create_user("desk", password="x" * 20, is_staff=True)
job = BulkActionRequest.objects.create(idempotency_key="k", user=user, action="invite")
jobs.start(job, "", Patient.objects.count(), queue=True)
"""


INVITATION_STATES = (
    "SELECT delivery_status, claimed_until IS NOT NULL, count(*) "
    "FROM invitations_invitation GROUP BY 1, 2"
)
TASK_STATES = (
    "SELECT task_path, status, count(*) FROM django_tasks_database_dbtaskresult "
    "GROUP BY 1, 2"
)


def _server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(_server_url())._replace(path=f"/{name}"))


def _connect(url: str, **options):
    return psycopg.connect(url.replace("postgres://", "postgresql://"), **options)


def _environment(database_url: str, smtp_server, **overrides) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}?timeout=5",
        "PORTAL_BASE_URL": PORTAL,
        "DELIVERY_BATCH_SIZE": "25",
        "DELIVERY_LEASE_SECONDS": "3",
        "DELIVERY_RETRY_BASE_SECONDS": "1",
        "DELIVERY_RETRY_MAX_SECONDS": "2",
        "SWEEP_INTERVAL_SECONDS": "1",
        "SWEEP_GRACE_SECONDS": "2",
        "BULK_JOB_CHUNK_SIZE": "50",
        "BULK_JOB_STALE_SECONDS": "2",
        **overrides,
    }


def _manage(environment: dict, *arguments: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture(scope="module")
def template_database():
    """A migrated database that each test copies, so that it migrates once."""
    name = f"portal_crash_template_{secrets.token_hex(4)}"
    with _connect(_server_url(), autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{name}"')
    try:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",
            "DEBUG": "false",
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": _database_url(name),
        }
        _manage(environment, "migrate", "--no-input")
        yield name
    finally:
        with _connect(_server_url(), autocommit=True) as server:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Practice:
    """One test's database, its worker processes and queries on it."""

    def __init__(self, database_url: str, smtp_server):
        self.url = database_url
        self.smtp_server = smtp_server
        self.environment = _environment(database_url, smtp_server)
        self.workers: list[subprocess.Popen] = []

    def shell(self, code: str) -> str:
        return _manage(self.environment, "shell", "--no-imports", "-c", code)

    def start_worker(self) -> subprocess.Popen:
        worker = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval=0.2",
            ],
            cwd=ROOT,
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen) -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)

    def query(self, sql: str, *parameters):
        with _connect(self.url) as connection:
            return connection.execute(sql, parameters).fetchall()

    def value(self, sql: str, *parameters):
        return self.query(sql, *parameters)[0][0]

    def wait_until(self, condition, *, timeout: float = 180, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for worker in self.workers:
                if worker.poll() not in (None, -signal.SIGKILL):
                    pytest.fail(f"A worker stopped on its own:\n{worker.stderr.read()}")
            time.sleep(0.05)
        pytest.fail(
            f"Timed out after {timeout} s waiting until {what}. "
            f"Invitations: {self.query(INVITATION_STATES)}. "
            f"Tasks: {self.query(TASK_STATES)}"
        )

    def queued(self) -> int:
        return self.value(
            "SELECT count(*) FROM invitations_invitation "
            "WHERE delivery_status = 'queued'"
        )

    def check_deliveries(self, expected: int) -> Counter:
        """Check the delivery invariants; return the messages per address."""
        assert self.queued() == 0
        statuses = dict(
            self.query(
                "SELECT delivery_status, count(*) FROM invitations_invitation "
                "GROUP BY delivery_status"
            )
        )
        sent = statuses.pop("sent", 0)
        assert statuses == {}, f"invitations not sent: {statuses}"
        assert sent == expected

        # Exactly one successful delivery record per sent invitation.
        recorded = self.query(
            "SELECT (detail->>'invitation_id')::bigint, count(*) "
            "FROM audit_auditevent WHERE action = 'delivery' AND outcome = 'success' "
            "GROUP BY 1"
        )
        assert len(recorded) == sent
        assert {count for _, count in recorded} == {1}

        assert (
            self.value(
                "SELECT count(*) FROM invitations_invitation "
                "WHERE status = 'accepted' AND delivery_status = 'queued'"
            )
            == 0
        )

        links_by_address: dict[str, set[str]] = {}
        for message in self.smtp_server.messages:
            [link] = set(LINK.findall(message.get_body(("plain",)).get_content()))
            links_by_address.setdefault(message["To"], set()).add(link)
        # No patient got two different links from one send.
        assert {len(links) for links in links_by_address.values()} == {1}
        assert len(links_by_address) == sent
        return Counter(message["To"] for message in self.smtp_server.messages)


@pytest.fixture
def practice(template_database, smtp_server):
    name = f"portal_crash_{secrets.token_hex(4)}"
    with _connect(_server_url(), autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    practice = Practice(_database_url(name), smtp_server)
    try:
        yield practice
    finally:
        practice.stop_all()
        with _connect(_server_url(), autocommit=True) as server:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_worker_killed_mid_batch_loses_nothing(practice, smtp_server):
    smtp_server.data_delay = 0.01
    practice.shell(CREATE_INVITED_PATIENTS.format(count=200, after=SEND_TO_ALL))
    first = practice.start_worker()
    practice.wait_until(
        lambda: len(smtp_server.messages) >= 40, what="40 messages were sent"
    )

    practice.kill(first)
    sent_before_kill = len(smtp_server.messages)
    assert practice.queued() > 0
    practice.start_worker()
    practice.start_worker()
    practice.wait_until(lambda: practice.queued() == 0, what="nothing is queued")

    per_address = practice.check_deliveries(200)
    assert sent_before_kill < 200
    # Only the messages accepted since the worker last recorded its sends
    # may arrive twice.
    assert sum(count - 1 for count in per_address.values()) <= RECORD_EVERY


def test_several_workers_share_the_work_without_sending_twice(practice, smtp_server):
    practice.shell(CREATE_INVITED_PATIENTS.format(count=400, after=SEND_TO_ALL_TWICE))
    for _ in range(3):
        practice.start_worker()

    practice.wait_until(lambda: practice.queued() == 0, what="nothing is queued")

    per_address = practice.check_deliveries(400)
    assert set(per_address.values()) == {1}
    assert smtp_server.connections > 1


def test_mail_server_outage_delivers_once(practice, smtp_server):
    smtp_server.stop()
    practice.shell(CREATE_INVITED_PATIENTS.format(count=300, after=SEND_TO_ALL))
    practice.start_worker()
    practice.start_worker()
    practice.wait_until(
        lambda: (
            practice.value(
                "SELECT count(*) FROM invitations_invitation "
                "WHERE delivery_attempts >= 2"
            )
            == 300
        ),
        what="every invitation was tried twice",
    )

    smtp_server.start()
    practice.wait_until(lambda: practice.queued() == 0, what="nothing is queued")

    per_address = practice.check_deliveries(300)
    assert set(per_address.values()) == {1}


def test_killed_bulk_job_resumes_once(practice, smtp_server):
    practice.shell(CREATE_INVITED_PATIENTS.format(count=1000, after=START_INVITE_JOB))
    first = practice.start_worker()
    practice.wait_until(
        lambda: practice.value("SELECT done FROM patients_bulkactionrequest") >= 100,
        what="the job committed two chunks",
    )

    practice.kill(first)
    done, cursor = practice.query(
        "SELECT done, cursor FROM patients_bulkactionrequest"
    )[0]
    assert 0 < done < 1000
    # Committed chunks are whole, and nothing after the last one was touched.
    assert done % 50 == 0
    invited = practice.query("SELECT DISTINCT patient_id FROM invitations_invitation")
    assert len(invited) == done
    assert max(patient_id for (patient_id,) in invited) == cursor

    practice.start_worker()
    practice.wait_until(
        lambda: practice.value(
            "SELECT finished_at IS NOT NULL FROM patients_bulkactionrequest"
        ),
        what="the job finished",
    )
    practice.wait_until(lambda: practice.queued() == 0, what="nothing is queued")

    assert practice.query("SELECT done, eligible FROM patients_bulkactionrequest") == [
        (1000, 1000)
    ]
    per_patient = practice.query(
        "SELECT patient_id, count(*) FROM invitations_invitation GROUP BY 1"
    )
    assert len(per_patient) == 1000
    assert {count for _, count in per_patient} == {1}
    assert (
        practice.value("SELECT count(*) FROM audit_auditevent WHERE action = 'invite'")
        == 1000
    )
    practice.check_deliveries(1000)


CREATE_PATIENTS_AND_CLERK = """
import datetime
from django.contrib.auth import get_user_model
from patients.models import Patient
patients = []
for number in range({count}):
    patient = Patient(
        source="crash",
        source_id=str(number),
        birth_date=datetime.date(1940, 1, 1) + datetime.timedelta(days=number),
    )
    patient.set_name("Moreau", "Aline")
    patient.set_email(f"patient{{number}}@example.org")
    patients.append(patient)
Patient.objects.bulk_create(patients)
get_user_model().objects.create_superuser("clerk", password="{password}")
"""


class WebSession:
    """A staff member's browser session against a real web process, over HTTP."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def _csrf(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=30) as response:
            html = response.read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]

    def post(self, path: str, form_path: str, data: dict, timeout: float = 30):
        data = {**data, "csrfmiddlewaretoken": self._csrf(form_path)}
        request = urllib.request.Request(
            self.base_url + path, data=urllib.parse.urlencode(data).encode()
        )
        with self.opener.open(request, timeout=timeout) as response:
            return response.geturl(), response.read().decode()


def _start_web(practice: Practice, port: int) -> subprocess.Popen:
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
        cwd=ROOT,
        env={
            **practice.environment,
            "DEBUG": "true",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_TIMEOUT": "300",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own process group, so that SIGKILL reaches gunicorn's worker too.
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/staff/login/", timeout=2)
            return web
        except OSError:
            time.sleep(0.1)
    os.killpg(web.pid, signal.SIGKILL)
    pytest.fail("The web process did not answer within 30 s")


def test_killed_web_action_resumes_once(practice):
    password = secrets.token_urlsafe(16)
    practice.environment["BULK_BACKGROUND_THRESHOLD"] = "100000"
    practice.shell(CREATE_PATIENTS_AND_CLERK.format(count=2000, password=password))
    port = free_port()
    web = _start_web(practice, port)
    session = WebSession(f"http://127.0.0.1:{port}")
    session.post(
        "/staff/login/",
        "/staff/login/",
        {"username": "clerk", "password": password},
    )
    confirm = {
        "action": "enable",
        "scope": "all",
        "confirm": "1",
        "idempotency_key": "one-click",
    }
    # The action runs inside this request, which gets no response.
    request = threading.Thread(
        target=_post_without_answer, args=(session, confirm), daemon=True
    )
    request.start()
    practice.wait_until(
        lambda: (
            practice.query("SELECT done FROM patients_bulkactionrequest")
            and practice.value("SELECT done FROM patients_bulkactionrequest") >= 100
        ),
        what="the action committed two chunks",
    )

    os.killpg(web.pid, signal.SIGKILL)
    web.wait(timeout=10)
    done, cursor = practice.query(
        "SELECT done, cursor FROM patients_bulkactionrequest"
    )[0]
    assert 0 < done < 2000
    assert done % 50 == 0
    enabled = practice.query(
        "SELECT id FROM patients_patient WHERE portal_access ORDER BY id"
    )
    assert len(enabled) == done
    assert enabled[-1][0] == cursor

    # The same confirmation sent again, to a new web process, acts no more.
    web = _start_web(practice, port)
    try:
        url, _ = session.post("/actions/", "/", confirm)
        job_id = practice.value("SELECT id FROM patients_bulkactionrequest")
        assert url.endswith(f"/actions/{job_id}/")
        assert (
            practice.value("SELECT count(*) FROM patients_patient WHERE portal_access")
            == done
        )

        # The recovery sweep of a worker resumes the job after the last chunk.
        practice.start_worker()
        practice.wait_until(
            lambda: practice.value(
                "SELECT finished_at IS NOT NULL FROM patients_bulkactionrequest"
            ),
            what="the action finished",
        )
    finally:
        os.killpg(web.pid, signal.SIGKILL)
        web.wait(timeout=10)

    assert practice.query("SELECT done, eligible FROM patients_bulkactionrequest") == [
        (2000, 2000)
    ]
    per_patient = practice.query(
        "SELECT patient_id, count(*) FROM audit_auditevent "
        "WHERE action = 'enable_access' GROUP BY 1"
    )
    assert len(per_patient) == 2000
    assert {count for _, count in per_patient} == {1}


def _post_without_answer(session: WebSession, confirm: dict) -> None:
    # The connection breaks when the web process is killed.
    with contextlib.suppress(OSError):
        session.post("/actions/", "/", confirm, timeout=120)
