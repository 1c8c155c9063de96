"""The product's background worker: django-tasks-db's worker plus the sweep."""

import logging
import threading

from django.conf import settings
from django.db import connections
from django_tasks_db.management.commands import db_worker

from worker.sweep import sweep

logger = logging.getLogger("worker")


class Command(db_worker.Command):
    help = (
        "Run background tasks (sending invitations, bulk actions, imports), and "
        "every SWEEP_INTERVAL_SECONDS queue again what stopped processes left "
        "behind. Run several on one PostgreSQL database to share the work."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--no-sweep",
            action="store_false",
            dest="sweep",
            help="Do not run the recovery sweep in this worker.",
        )

    def handle(self, *args, **options):
        if options["sweep"]:
            if options["batch"]:
                # A batch run sweeps once, so that what it finds runs too.
                _sweep_once()
            else:
                stop = threading.Event()
                threading.Thread(
                    target=_sweep_every,
                    args=(settings.SWEEP_INTERVAL_SECONDS, stop),
                    name="recovery-sweep",
                    daemon=True,
                ).start()
        super().handle(*args, **options)


def _sweep_once() -> None:
    try:
        report = sweep()
    except Exception:
        # A failed sweep is tried again at the next interval; the worker
        # itself goes on running tasks.
        logger.exception("The recovery sweep failed")
    else:
        if any(report.as_dict().values()):
            logger.info("Recovery sweep: %s", report.as_dict())


def _sweep_every(interval: int, stop: threading.Event) -> None:
    while not stop.wait(interval):
        _sweep_once()
        # This thread's own connection is not kept between sweeps.
        connections.close_all()
