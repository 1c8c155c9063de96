"""The recovery sweep: put back what crashed processes left unfinished.

Every piece of background work is recorded in the product's own tables
(queued invitations with their claims, bulk jobs and uploaded imports with
their progress), so the sweep recovers the work from those rows, not from
the task queue. The task rows of a stopped worker are only tidied: marked
failed, so that they no longer look as if they were running.
"""

import datetime
import logging
from dataclasses import asdict, dataclass

from django.conf import settings
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from imports import uploads
from invitations import recovery
from patients import jobs

logger = logging.getLogger(__name__)


class WorkerLost(Exception):
    """Stored as the error of a task whose worker stopped while running it."""


@dataclass
class SweepReport:
    invitations_requeued: int = 0
    jobs_resumed: int = 0
    imports_requeued: int = 0
    tasks_marked_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep() -> SweepReport:
    report = SweepReport(
        invitations_requeued=recovery.requeue_left_behind(),
        jobs_resumed=jobs.resume_stalled(),
        imports_requeued=uploads.requeue_stalled(),
        tasks_marked_failed=mark_stale_tasks_failed(),
    )
    return report


def mark_stale_tasks_failed() -> int:
    """Mark failed the tasks running for longer than TASK_STALE_SECONDS."""
    now = timezone.now()
    stale = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING,
        started_at__lt=now - datetime.timedelta(seconds=settings.TASK_STALE_SECONDS),
    )
    count = stale.update(
        status=TaskResultStatus.FAILED,
        finished_at=now,
        exception_class_path=f"{__name__}.{WorkerLost.__qualname__}",
        traceback=(
            f"Still shown as running {settings.TASK_STALE_SECONDS} seconds after "
            "it started, so its worker is taken to have stopped. The recovery "
            "sweep queues its unfinished work again."
        ),
    )
    if count:
        logger.warning("Marked %d tasks failed whose worker stopped", count)
    return count
