"""gunicorn started with config/gunicorn.conf.py, as the systemd unit starts it."""

import json
import subprocess

import pytest

from tests.production import (
    GUNICORN,
    INVITATION_PATH,
    PATIENT_EMAIL,
    ROOT,
    TOKEN,
    get,
    json_lines,
    prepare_site,
    production_env,
    running_gunicorn,
)

HTTPS = {"X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A migrated site with collected static files, shared by this module's tests."""
    folder = tmp_path_factory.mktemp("gunicorn-site")
    prepare_site(site_env(folder), folder)
    return folder


def site_env(folder, **extra):
    return production_env(
        f"sqlite:///{folder / 'portal.sqlite3'}",
        STATIC_ROOT=str(folder / "static"),
        **extra,
    )


def test_gunicorn_serves_health_check(site, tmp_path):
    env = site_env(site, GUNICORN_WORKERS="3")

    with running_gunicorn(env, tmp_path) as server:
        status, headers, body = get(server.port, "/healthz")

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}
    records = json_lines(server.output())
    messages = [r["message"] for r in records if r["logger"] == "gunicorn.error"]
    assert f"Listening at: http://127.0.0.1:{server.port}" in " ".join(messages)
    assert len([m for m in messages if m.startswith("Booting worker")]) == 3


def test_gunicorn_log_holds_no_token(site, tmp_path):
    env = site_env(site)
    link = f"{INVITATION_PATH}?email={PATIENT_EMAIL}"

    with running_gunicorn(env, tmp_path) as server:
        status, headers, _ = get(server.port, link, HTTPS)
        plain_status, plain_headers, _ = get(server.port, link)
        css_status, _, _ = get(server.port, "/static/css/portal.css", HTTPS)

    assert status == 302
    assert plain_status == 301
    assert css_status == 200
    output = server.output()
    assert TOKEN not in output
    assert PATIENT_EMAIL not in output
    records = json_lines(output)
    requests = [r for r in records if r["logger"] == "config.request_log"]
    assert [(r["route"], r["status"]) for r in requests] == [
        ("/invite/<str:token>/", 302),
        ("/invite/<str:token>/", 301),
        ("/static/css/portal.css", 200),
    ]
    assert requests[0]["request_id"] == headers["X-Request-ID"]
    assert requests[1]["request_id"] == plain_headers["X-Request-ID"]


def test_gunicorn_logs_text_when_asked(site, tmp_path):
    env = site_env(site, LOG_FORMAT="text")

    with running_gunicorn(env, tmp_path) as server:
        status, _, _ = get(server.port, INVITATION_PATH, HTTPS)

    assert status == 302
    output = server.output()
    assert " INFO gunicorn.error Listening at: http://127.0.0.1:" in output
    assert " INFO config.request_log GET /invite/<str:token>/ 302 " in output
    assert TOKEN not in output


def test_gunicorn_rejects_bad_worker_count(tmp_path):
    env = production_env(
        f"sqlite:///{tmp_path / 'portal.sqlite3'}", GUNICORN_WORKERS="many"
    )

    completed = subprocess.run(
        [str(GUNICORN), "--config", str(ROOT / "config" / "gunicorn.conf.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode != 0
    assert "GUNICORN_WORKERS='many' is not a whole number" in completed.stderr
