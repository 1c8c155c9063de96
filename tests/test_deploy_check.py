"""The production settings pass Django's deployment checks and send HSTS.

Each test starts a fresh Python process with config.settings.production and only
the variables a real deployment sets, from a folder without a .env file, so that
neither the test settings nor a developer's .env can change the outcome.
"""

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = "portal.example.org"

# Requests the onboarding screen over HTTPS and plain HTTP through Django's
# test client, and prints the headers that matter as JSON. Without a login the
# screen is a redirect, which renders no template and so needs no collected
# static files.
HEADERS_SCRIPT = f"""
import json
import django
from django.test import Client

django.setup()
secure = Client().get("/", secure=True, headers={{"host": "{HOST}"}})
plain = Client().get("/", headers={{"host": "{HOST}"}})
print(json.dumps({{
    "status": secure.status_code,
    "location": secure.get("Location"),
    "hsts": secure.get("Strict-Transport-Security"),
    "csp": secure.get("Content-Security-Policy"),
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location"),
    "plain_hsts": plain.get("Strict-Transport-Security"),
}}))
"""


@pytest.fixture
def project(tmp_path):
    """A folder with the project's manage.py and no .env file."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "manage.py").write_text((ROOT / "manage.py").read_text())
    return folder


def production_env(tmp_path, **extra) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": HOST,
        "EMAIL_URL": "smtp://127.0.0.1:2525",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
        **extra,
    }


def run_deploy_check(project, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_headers(project, env) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", HEADERS_SCRIPT],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_deploy_check_reports_nothing(project, tmp_path):
    completed = run_deploy_check(project, production_env(tmp_path))
    output = completed.stdout + completed.stderr

    assert completed.returncode == 0, output
    assert "WARNINGS" not in output
    assert "System check identified some issues" not in output
    assert "System check identified no issues" in output


def test_deploy_check_reports_nothing_with_preload(project, tmp_path):
    env = production_env(tmp_path, SECURE_HSTS_PRELOAD="true")

    completed = run_deploy_check(project, env)
    output = completed.stdout + completed.stderr

    assert completed.returncode == 0, output
    assert "System check identified no issues (0 silenced)" in output


def test_deploy_check_still_warns_about_weak_settings(project, tmp_path):
    # Silencing the preload warning must not hide the other HSTS checks.
    env = production_env(tmp_path, SECURE_HSTS_SECONDS="0")

    completed = run_deploy_check(project, env)

    assert "security.W004" in completed.stderr


def test_deploy_check_warns_without_staff_two_factor(project, tmp_path):
    env = production_env(tmp_path, STAFF_TWO_FACTOR="false")

    completed = run_deploy_check(project, env)

    assert "patients.W001" in completed.stderr
    assert "a staff password alone opens every" in completed.stderr


def test_production_sends_hsts_over_https_only(project, tmp_path):
    headers = production_headers(project, production_env(tmp_path))

    assert headers["status"] == 302
    assert headers["location"] == "/staff/login/?next=/"
    assert headers["hsts"] == "max-age=31536000; includeSubDomains"
    assert headers["csp"].startswith("default-src 'self'; script-src 'self';")
    assert headers["plain_status"] == 301
    assert headers["plain_location"] == f"https://{HOST}/"
    assert headers["plain_hsts"] is None


def test_production_preload_is_opt_in(project, tmp_path):
    env = production_env(tmp_path, SECURE_HSTS_PRELOAD="true")

    headers = production_headers(project, env)

    assert headers["hsts"] == "max-age=31536000; includeSubDomains; preload"


def test_bad_preload_value_is_named(project, tmp_path):
    env = production_env(tmp_path, SECURE_HSTS_PRELOAD="sometimes")

    completed = run_deploy_check(project, env)

    assert completed.returncode != 0
    assert "SECURE_HSTS_PRELOAD='sometimes' is not a boolean" in completed.stderr
