"""Background tasks of the patients app, run by ``manage.py run_worker``."""

from django.tasks import task

from patients import jobs


@task
def run_bulk_job(job_id: int) -> dict:
    """Carry out a bulk action job chunk by chunk, from where it stopped.

    Safe to run again or twice at once: each chunk is committed together with
    the job's progress, under a lock on the job's row.
    """
    return jobs.counts(jobs.run(job_id))
