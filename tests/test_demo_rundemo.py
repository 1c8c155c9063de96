"""rundemo as `make demo` runs it: three processes that start and stop together."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "Press Ctrl-C to stop them all."


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def status_of(url: str) -> int:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def demo(tmp_path):
    """Start rundemo on free ports and a new SQLite file, and wait until it is ready."""
    port, mailbox_port = free_port(), free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "DEMO_MAILBOX_DIR": str(tmp_path / "mailbox"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rundemo",
            "--patients",
            "30",
            "--port",
            str(port),
            "--mailbox-port",
            str(mailbox_port),
            "--export-dir",
            str(tmp_path / "export"),
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        lines.append(line)
        if READY_LINE in line or time.monotonic() > deadline:
            break
    output = "".join(lines)
    if READY_LINE not in output:
        stop(process)
        pytest.fail(f"rundemo did not start:\n{output}")

    pids = dict(re.findall(r"(demo mailbox|worker|web server) (\d+)", output))
    yield process, port, mailbox_port, {name: int(pid) for name, pid in pids.items()}
    stop(process)


def stop(process) -> None:
    """Stop rundemo as a process manager does, so that it stops its children."""
    if process.poll() is None:
        process.terminate()
        process.communicate(timeout=30)


def finish(process) -> str:
    output, _ = process.communicate(timeout=30)
    return output


def test_rundemo_serves_the_demo(demo):
    process, port, mailbox_port, _ = demo
    base = f"http://127.0.0.1:{port}"

    assert status_of(f"{base}/portal/login/") == 200
    assert status_of(f"{base}/staff/login/") == 200
    assert status_of(f"{base}/demo/mailbox/") == 302
    assert is_listening(mailbox_port)


def test_rundemo_stops_all_on_interrupt(demo):
    process, port, mailbox_port, pids = demo

    process.send_signal(signal.SIGINT)
    output = finish(process)

    assert process.returncode == 0
    assert "Stopping the web server, the worker and the mailbox" in output
    assert not is_listening(port)
    assert not is_listening(mailbox_port)
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_rundemo_stops_all_when_one_dies(demo):
    process, port, mailbox_port, pids = demo

    os.kill(pids["demo mailbox"], signal.SIGKILL)
    output = finish(process)

    assert process.returncode != 0
    assert "The demo mailbox stopped" in output
    assert not is_listening(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pids["worker"], 0)


def test_rundemo_stops_all_on_sigterm(demo):
    process, port, mailbox_port, pids = demo

    process.terminate()
    finish(process)

    assert process.returncode == 0
    assert not is_listening(port)
    assert not is_listening(mailbox_port)
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
