"""Background tasks of the imports app, run by ``manage.py run_worker``."""

from django.tasks import task

from imports import uploads


@task
def import_upload(import_run_id: int) -> dict:
    """Import the file uploaded for a queued ImportRun, then delete the file.

    Returns the run's counts, which the worker stores as the task's result.
    """
    return uploads.import_upload(import_run_id)
