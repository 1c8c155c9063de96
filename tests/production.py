"""Running the product with config.settings.production in a process of its own.

Each process gets only the variables a real deployment sets, runs from a
folder without a .env file, and logs to its own standard error, so that
neither the test settings nor a developer's .env change the outcome.
"""

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"

# An invitation link's token has the form of a real one (43 characters of
# base64url) but opens nothing.
TOKEN = "Qm9ndXNUb2tlbkZvckxvZ2dpbmdUZXN0c09ubHkwMTIz"
INVITATION_PATH = f"/invite/{TOKEN}/"
# The query string carries an address, as a mangled link could.
PATIENT_EMAIL = "ada.lovelace@example.org"


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "EMAIL_URL": "smtp://127.0.0.1:2525",
        "DATABASE_URL": database_url,
        **extra,
    }


def run_python(
    script: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess:
    """Run SCRIPT after django.setup() in a new Python process."""
    return subprocess.run(
        [sys.executable, "-c", f"import django\ndjango.setup()\n{script}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def manage(env: dict[str, str], cwd: Path, *arguments: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "django", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr


def prepare_site(env: dict[str, str], cwd: Path) -> None:
    """Migrate the database and collect the static files into STATIC_ROOT."""
    assert "STATIC_ROOT" in env, "Give the site a STATIC_ROOT of the test's own."
    manage(env, cwd, "migrate", "--no-input", "-v0")
    manage(env, cwd, "collectstatic", "--no-input", "-v0")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def json_lines(text: str) -> list[dict]:
    """Parse every line of TEXT as one JSON object, and fail on any other line."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"Log line is not JSON: {line!r}")
    return records


def get(port: int, path: str, headers: dict | None = None):
    """Send one GET to 127.0.0.1:PORT and return (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class Gunicorn:
    """A gunicorn started with config/gunicorn.conf.py, logging to files."""

    def __init__(self, env: dict[str, str], folder: Path):
        self.port = free_port()
        self.stdout_path = folder / "gunicorn.out"
        self.stderr_path = folder / "gunicorn.err"
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        env.setdefault("GUNICORN_WORKERS", "2")
        with (
            open(self.stdout_path, "w") as stdout,
            open(self.stderr_path, "w") as stderr,
        ):
            self.process = subprocess.Popen(
                [str(GUNICORN), "--config", str(ROOT / "config" / "gunicorn.conf.py")],
                cwd=folder,
                env=env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"gunicorn exited with {self.process.returncode}: "
                    f"{self.stderr_path.read_text()}"
                )
            with contextlib.suppress(OSError):
                get(self.port, "/healthz")
                return
            time.sleep(0.2)
        pytest.fail(f"gunicorn did not answer within {timeout} s")

    def stop(self) -> None:
        """Stop gunicorn as systemd does: TERM, then KILL after a wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()


@contextlib.contextmanager
def running_gunicorn(env: dict[str, str], folder: Path):
    """Start gunicorn with ENV, wait until it serves, and stop it at the end."""
    server = Gunicorn(env, folder)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


def postgres_server_url() -> str:
    """The PostgreSQL server of TEST_DATABASE_URL, through its postgres database."""
    url = os.environ.get(
        "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
    )
    return urlunsplit(urlsplit(url)._replace(path="/postgres", query=""))


def skip_or_fail(reason: str) -> None:
    """Skip a test whose server is missing, unless CI is set, then fail it."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_database():
    """Create a database of the test's own, return its URL, and drop it after."""
    psycopg = pytest.importorskip("psycopg")
    server = postgres_server_url()
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        skip_or_fail(f"No PostgreSQL server at {server}: {error}")
    name = f"portal_production_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
