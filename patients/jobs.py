"""Bulk actions on every patient matching the filters, carried out as jobs.

A job is a BulkActionRequest with ``chunked`` set. A small one runs inside the
request; a large one runs in a worker while staff watch its progress page.
Either takes the matching patients in chunks ordered by id. Each chunk is
one transaction: it locks the job's row, acts on the patients after the
job's cursor, and moves the cursor and the counts on. A process killed in the
middle therefore leaves whole chunks done and the rest untouched, and a
resumed job starts after the last committed chunk. Two runs of
one job take turns on the lock, so no patient is acted on twice.
"""

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.http import QueryDict
from django.utils import timezone

from invitations.services import send_invitations
from patients import bulk
from patients.filters import PatientFilterForm, filter_patients
from patients.models import BulkActionRequest
from patients.services import enable_access
from worker.queue import first_arguments_due

logger = logging.getLogger(__name__)

ACTIONS = {bulk.ENABLE: enable_access, bulk.INVITE: send_invitations}


def start(
    request_row: BulkActionRequest, filter_query: str, total: int, *, queue: bool
) -> None:
    """Make a claimed request a job; with QUEUE, queue its task in the same commit."""
    from patients.tasks import run_bulk_job

    with transaction.atomic():
        request_row.chunked = True
        request_row.filter_query = filter_query
        request_row.total = total
        request_row.eligible = 0
        request_row.save(update_fields=["chunked", "filter_query", "total", "eligible"])
        if queue:
            run_bulk_job.enqueue(request_row.pk)
    logger.info(
        "Bulk action job %s (%s) %s for %d patients",
        request_row.pk,
        request_row.action,
        "queued" if queue else "started",
        total,
    )


def result(job: BulkActionRequest) -> bulk.Plan:
    return bulk.Plan(
        action=job.action, eligible=job.eligible or 0, skipped=dict(job.skipped)
    )


def resume(job: BulkActionRequest) -> bool:
    """Queue a stopped or stalled job again; return False if nothing was queued.

    Nothing is queued for a finished job, or when a run of the job is
    already due, so that repeated clicks add no work for the workers.
    """
    from patients.tasks import run_bulk_job

    with transaction.atomic():
        updated = BulkActionRequest.objects.filter(
            pk=job.pk, chunked=True, finished_at__isnull=True
        ).update(error="")
        if not updated or job.pk in _jobs_with_a_task_due():
            return False
        run_bulk_job.enqueue(job.pk)
    return True


def is_stalled(job: BulkActionRequest, due: set[int] | None = None) -> bool:
    """Return whether an unfinished job made no progress for BULK_JOB_STALE_SECONDS.

    A job that has not started yet and whose task is still due is waiting
    for a free worker, not stalled. DUE, when given, is the ids of the jobs
    with a task due, from _jobs_with_a_task_due().
    """
    if job.finished_at is not None:
        return False
    last = job.heartbeat_at or job.created_at
    quiet = timezone.now() - last > datetime.timedelta(
        seconds=settings.BULK_JOB_STALE_SECONDS
    )
    if not quiet or job.heartbeat_at is not None:
        return quiet
    if due is None:
        due = _jobs_with_a_task_due()
    return job.pk not in due


def _jobs_with_a_task_due() -> set[int]:
    from patients.tasks import run_bulk_job

    return first_arguments_due(run_bulk_job)


def run(job_id: int) -> BulkActionRequest:
    """Act on the job's remaining patients; return the job as it is afterwards."""
    job = BulkActionRequest.objects.get(pk=job_id)
    if job.finished_at is not None:
        return job
    form = PatientFilterForm(QueryDict(job.filter_query))
    if not form.is_valid():
        return _stop(job_id, "The saved filters are no longer valid. Start again.")
    patients = filter_patients(form.cleaned_data).order_by("pk")
    act = ACTIONS[job.action]

    while True:
        try:
            with transaction.atomic():
                job = BulkActionRequest.objects.select_for_update().get(pk=job_id)
                if job.finished_at is not None or job.error:
                    return job
                chunk = list(
                    patients.filter(pk__gt=job.cursor).values_list("pk", flat=True)[
                        : settings.BULK_JOB_CHUNK_SIZE
                    ]
                )
                now = timezone.now()
                job.heartbeat_at = now
                if not chunk:
                    job.finished_at = now
                    job.save(update_fields=["heartbeat_at", "finished_at"])
                    break
                # The range contains the same patients as CHUNK, and is
                # cheaper to send than two thousand ids.
                result = act(
                    patients.filter(pk__gt=job.cursor, pk__lte=chunk[-1]),
                    actor=job.user,
                )
                job.cursor = chunk[-1]
                job.done += len(chunk)
                job.eligible = (job.eligible or 0) + result.eligible
                for reason, count in result.skipped.items():
                    job.skipped[reason] = job.skipped.get(reason, 0) + count
                job.save(
                    update_fields=[
                        "cursor",
                        "done",
                        "eligible",
                        "skipped",
                        "heartbeat_at",
                    ]
                )
        except Exception as error:
            # Only the error's type is logged: database errors can quote values.
            logger.error(
                "Bulk action job %s stopped by an unexpected error (%s)",
                job_id,
                type(error).__name__,
            )
            return _stop(
                job_id,
                f"The action stopped because of an unexpected error "
                f"({type(error).__name__}). What was done before it is kept; "
                "resume the action to carry out the rest.",
            )
    logger.info(
        "Bulk action job %s finished: %d patients acted on, %d skipped",
        job.pk,
        job.eligible,
        sum(job.skipped.values()),
    )
    return job


def _stop(job_id: int, error: str) -> BulkActionRequest:
    BulkActionRequest.objects.filter(pk=job_id, finished_at__isnull=True).update(
        error=error
    )
    return BulkActionRequest.objects.get(pk=job_id)


def counts(job: BulkActionRequest) -> dict:
    """Return the job's progress and result, as the task stores them."""
    return {
        "done": job.done,
        "total": job.total,
        "eligible": job.eligible,
        "skipped": job.skipped,
    }


def resume_stalled() -> int:
    """Queue again the jobs that stopped without an error; return how many.

    A job stalls when the worker running it is killed. While a run of the
    job's task is still due, it is left to that run.
    """
    from patients.tasks import run_bulk_job

    candidates = BulkActionRequest.objects.filter(
        chunked=True, finished_at__isnull=True, error=""
    )
    # Read once for all candidates rather than once per job.
    waiting = _jobs_with_a_task_due()
    resumed = 0
    for job in candidates:
        if is_stalled(job, waiting) and job.pk not in waiting:
            run_bulk_job.enqueue(job.pk)
            resumed += 1
    if resumed:
        logger.warning("Resumed %d bulk action jobs left unfinished", resumed)
    return resumed
