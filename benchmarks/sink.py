"""An SMTP server on 127.0.0.1 that accepts every message and keeps only counts.

It runs in a process of its own (``python -m benchmarks sink``), so that its
work is not timed as the sender's. It prints "ready" once it listens, and on
SIGTERM writes the number of messages per recipient to the counts file and
exits. Nothing is stored or sent on.
"""

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


class _CountingHandler:
    def __init__(self):
        self.per_recipient: Counter[str] = Counter()
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        for recipient in envelope.rcpt_tos:
            self.per_recipient[recipient.lower()] += 1
        return "250 OK"


def serve(port: int, counts_path: Path) -> None:
    """Listen on HOST:PORT until SIGTERM, then write the counts to COUNTS_PATH."""
    handler = _CountingHandler()
    controller = Controller(handler, hostname=HOST, port=port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    controller.start()
    print("ready", flush=True)
    stop.wait()
    controller.stop()
    counts = {
        "messages": handler.messages,
        "bytes": handler.bytes,
        "recipients": len(handler.per_recipient),
        "repeated": sum(1 for count in handler.per_recipient.values() if count > 1),
    }
    counts_path.write_text(json.dumps(counts))


class Sink:
    """Start and stop the sink process, and read what it counted."""

    def __init__(self, port: int, counts_path: Path):
        self.port = port
        self.counts_path = counts_path
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Sink":
        self.counts_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "benchmarks", "sink", "--port", str(self.port),
             "--counts", str(self.counts_path)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"The SMTP sink did not start on port {self.port}.")
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> dict:
        """Stop the process once and return its counts."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
        return json.loads(self.counts_path.read_text())
