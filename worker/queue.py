"""The runs of a task still waiting in the queue, for the sweep and job pages."""

from django_tasks_db.models import DBTaskResult


def runs_due(task):
    """Return TASK's queued runs that no worker has started yet, as a queryset."""
    return DBTaskResult.objects.ready().filter(task_path=task.module_path)


def first_arguments_due(task) -> set:
    """Return the first argument of each of TASK's runs that is still waiting."""
    return {run.args_kwargs["args"][0] for run in runs_due(task)}
