"""Running queued background tasks in a test with the real ``db_worker`` command."""

import io
from unittest import mock

from django.core.management import call_command
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult


def run_worker() -> str:
    """Run every task that is due, in this process, then return the worker's output.

    Tasks whose run_after is still in the future stay queued, as they would
    for a worker polling in production.
    """
    output = io.StringIO()
    # The worker closes its database connection between tasks, which would end
    # the test's transaction on PostgreSQL. SQLite's in-memory database ignores
    # the close, so only the connection handling differs from production.
    with mock.patch(
        "django_tasks_db.management.commands.db_worker.close_old_connections"
    ):
        call_command(
            "db_worker",
            "--batch",
            "--no-startup-delay",
            "--no-reload",
            "--interval=0",
            stdout=output,
        )
    return output.getvalue()


def queued_tasks(task):
    """Return the queued runs of TASK, due now or later, oldest first."""
    return DBTaskResult.objects.filter(
        status=TaskResultStatus.READY, task_path=task.module_path
    ).order_by("enqueued_at")
