"""Invitation delivery by the product's worker processes, against plain smtplib.

Both send the same number of text and HTML messages of the same size to an
SMTP sink on 127.0.0.1 in its own process. The floor is one loop that builds
each message with the standard email package and sends it with smtplib over
one connection. The product's run queues invitations with send_invitations(),
then starts one or more worker processes in batch mode and times them from
start until they exit. The report then compares the invitations' delivery
status in the database and the sink's count per recipient with the number
queued, and reports whether each invitation was sent exactly once.
"""

import os
import secrets
import smtplib
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands
from django.utils import timezone

from benchmarks.sink import HOST, Sink
from invitations import emails
from invitations.models import Invitation
from invitations.services import send_invitations
from patients import bulk
from patients.models import Patient


@dataclass
class DeliveryRun:
    label: str
    workers: int
    messages: int
    seconds: float
    sink: dict
    sent_in_database: int
    attempts_over_one: int

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "per_second": self.per_second}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def worker_command() -> list[str]:
    """Return the command of one worker that runs every queued task, then exits."""
    # run_worker is the product's worker (db_worker with a recovery sweep).
    command = "run_worker" if "run_worker" in get_commands() else "db_worker"
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), command,
            "--batch", "--no-startup-delay", "--no-reload", "--interval=0"]  # fmt: skip


def invitable_patients(count: int) -> list[int]:
    """Return the ids of COUNT patients with access whom an invitation would reach."""
    candidates = Patient.objects.filter(portal_access=True, user__isnull=True)
    return list(bulk.eligible_ids(candidates, bulk.INVITE)[:count])


def _sample_bodies() -> tuple[str, str, str]:
    """Render the invitation email once, with a link of the real length."""
    token = Invitation.token_for_salt(Invitation.new_salt())
    context = {
        "practice_name": settings.PRACTICE_NAME,
        "link": f"{settings.PORTAL_BASE_URL}/invite/{token}/",
        "expires_at": timezone.now(),
    }
    message = emails.build_email("invitation", context, "someone@example.org")
    html, _ = message.alternatives[0]
    return message.subject, message.body, html


def send_plainly(addresses: list[str], work_dir: Path) -> DeliveryRun:
    """Send one message per address with smtplib over one connection, timed."""
    subject, text, html = _sample_bodies()
    link = text.split("/invite/")[1].split("/")[0]
    port = free_port()
    with Sink(port, work_dir / "sink-plain.json") as sink:
        started = time.perf_counter()
        with smtplib.SMTP(HOST, port) as connection:
            for address in addresses:
                # A link of the same length, different in each message.
                token = secrets.token_urlsafe(len(link))[: len(link)]
                message = EmailMessage()
                message["Subject"] = subject
                message["From"] = settings.DEFAULT_FROM_EMAIL
                message["To"] = address
                message["Date"] = formatdate(localtime=True)
                message["Message-ID"] = make_msgid()
                message["Auto-Submitted"] = "auto-generated"
                message.set_content(text.replace(link, token))
                message.add_alternative(html.replace(link, token), subtype="html")
                connection.send_message(message)
        seconds = time.perf_counter() - started
        counts = sink.stop()
    return DeliveryRun(
        label="smtplib, one connection",
        workers=0,
        messages=len(addresses),
        seconds=seconds,
        sink=counts,
        sent_in_database=0,
        attempts_over_one=0,
    )


def run_workers(
    patient_ids: list[int], workers: int, *, actor, work_dir: Path
) -> DeliveryRun:
    """Queue invitations for PATIENT_IDS, then time WORKERS processes sending them."""
    plan = send_invitations(Patient.objects.filter(pk__in=patient_ids), actor=actor)
    if plan.eligible != len(patient_ids):
        raise RuntimeError(
            f"Only {plan.eligible} of {len(patient_ids)} chosen patients were "
            f"invited (skipped: {plan.skipped})."
        )
    invitations = Invitation.objects.filter(
        patient_id__in=patient_ids, delivery_status=Invitation.Delivery.QUEUED
    )
    invitation_ids = list(invitations.values_list("pk", flat=True))

    port = free_port()
    env = {**os.environ, "EMAIL_URL": f"smtp://{HOST}:{port}"}
    log_path = work_dir / f"worker-{workers}.log"
    with (
        Sink(port, work_dir / f"sink-{workers}.json") as sink,
        log_path.open("w") as log,
    ):
        started = time.perf_counter()
        processes = [
            subprocess.Popen(worker_command(), env=env, stdout=log, stderr=log)  # noqa: S603
            for _ in range(workers)
        ]
        codes = [process.wait() for process in processes]
        seconds = time.perf_counter() - started
        counts = sink.stop()
    if any(codes):
        raise RuntimeError(f"A worker exited with {codes}; see {log_path}.")

    sent = Invitation.objects.filter(
        pk__in=invitation_ids, delivery_status=Invitation.Delivery.SENT
    )
    return DeliveryRun(
        label=f"{workers} worker process{'es' if workers > 1 else ''}",
        workers=workers,
        messages=len(invitation_ids),
        seconds=seconds,
        sink=counts,
        sent_in_database=sent.count(),
        attempts_over_one=sent.filter(delivery_attempts__gt=1).count(),
    )


def worker_start_seconds() -> float:
    """Time one worker that finds the queue empty: the start-up cost of a run."""
    started = time.perf_counter()
    subprocess.run(worker_command(), check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - started


def measure(count: int, *, actor, work_dir: Path) -> dict:
    """Run the floor and the product with one and with two workers."""
    patient_ids = invitable_patients(2 * count)
    count = len(patient_ids) // 2
    if count == 0:
        raise RuntimeError("No patient can be invited, so delivery cannot be timed.")
    addresses = list(
        Patient.objects.filter(pk__in=patient_ids[:count]).values_list(
            "email", flat=True
        )
    )

    plain = send_plainly(addresses, work_dir)
    one = run_workers(patient_ids[:count], 1, actor=actor, work_dir=work_dir)
    two = run_workers(patient_ids[count:], 2, actor=actor, work_dir=work_dir)
    return {
        "messages": count,
        "worker_command": " ".join(Path(part).name for part in worker_command()),
        "worker_start_seconds": worker_start_seconds(),
        "runs": [plain.as_dict(), one.as_dict(), two.as_dict()],
    }
