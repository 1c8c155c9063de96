"""The health check at /healthz: 200 while the database responds, 503 when not."""

import json
import shutil

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from config.health import health_check
from tests.production import (
    free_port,
    get,
    json_lines,
    production_env,
    run_python,
    running_gunicorn,
)

pytestmark = pytest.mark.django_db


def test_health_check_returns_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"


def test_health_check_only_reads(client, django_user_model):
    user = django_user_model.objects.create_user("frontdesk", is_staff=True)
    client.force_login(user)
    session = Session.objects.get()

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/healthz")

    assert response.status_code == 200
    assert [query["sql"] for query in queries] == ["SELECT 1"]
    assert response.cookies == {}
    # The idle clock of the logged-in session did not move.
    assert Session.objects.get().session_data == session.session_data
    # Any other request of that session moves it.
    client.get("/")
    assert Session.objects.get().session_data != session.session_data


def test_health_check_needs_no_allowed_host(client):
    # Load balancers probe a backend by its address, not the site's name.
    response = client.get("/healthz", headers={"host": "10.1.2.3:8000"})

    assert response.status_code == 200


def test_health_check_head_has_no_body(db):
    # Called directly: the test client would drop the body of a HEAD
    # response itself, and gunicorn does not.
    response = health_check(RequestFactory().head("/healthz"))

    assert response.status_code == 200
    assert response.content == b""


def test_health_check_rejects_post(client):
    response = client.post("/healthz")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_health_check_fails_without_database(tmp_path):
    # Nothing listens on that port, so every connection is refused.
    env = production_env(f"postgres://postgres@127.0.0.1:{free_port()}/portal")
    script = (
        "from django.test import Client\n"
        "import json\n"
        "client = Client()\n"
        "answers = [client.get('/healthz') for _ in range(3)]\n"
        "print(json.dumps([[a.status_code, a.json(), dict(a.cookies)] "
        "for a in answers]))\n"
    )

    completed = run_python(script, env, tmp_path)

    assert completed.returncode == 0, completed.stderr
    answers = json.loads(completed.stdout)
    assert answers == [[503, {"status": "unavailable"}, {}]] * 3
    records = json_lines(completed.stderr)
    failures = [r for r in records if r["logger"] == "config.health"]
    # One line for the outage, not one for each probe.
    assert len(failures) == 1
    assert failures[0]["level"] == "ERROR"
    assert "Connection refused" in failures[0]["message"]
    assert not [r for r in records if r["logger"] == "django.request"]


def test_health_check_in_gunicorn_follows_database(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    # One worker: each remembers its own last check, and logs the recovery
    # only if it saw the failure itself.
    env = production_env(f"sqlite:///{folder / 'portal.sqlite3'}", GUNICORN_WORKERS="1")
    with running_gunicorn(env, tmp_path) as server:
        _probe_through_outage(server, folder)

    records = json_lines(server.output())
    messages = [r["message"] for r in records if r["logger"] == "config.health"]
    assert any("the database query failed" in m for m in messages)
    assert any("succeeded again" in m for m in messages)
    # Probes leave no request line.
    assert not [r for r in records if r["logger"] == "config.request_log"]


def _unless_gone(function, path, error):
    """Raise ERROR of rmtree, unless the file was deleted meanwhile.

    The server's SQLite removes its -wal file when its connection closes,
    which may happen while the folder is being removed.
    """
    if not isinstance(error, FileNotFoundError):
        raise error


def _probe_through_outage(server, folder):
    status, headers, body = get(server.port, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert "Set-Cookie" not in headers
    # Not redirected to HTTPS, although SECURE_SSL_REDIRECT is on.
    assert "Location" not in headers

    # The folder of the SQLite file disappears, as an unmounted disk would.
    # Each request opens a new connection, which then fails.
    shutil.rmtree(folder, onexc=_unless_gone)
    assert not folder.exists()
    statuses = [get(server.port, "/healthz")[0] for _ in range(4)]

    assert statuses == [503, 503, 503, 503]

    folder.mkdir()
    assert get(server.port, "/healthz")[0] == 200
