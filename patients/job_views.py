"""The progress and result page of a bulk action job."""

from urllib.parse import urlencode

from django.contrib import messages
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from patients import actions, bulk, jobs
from patients.models import BulkActionRequest
from patients.views import require_permission, staff_required

# Seconds between reloads of the page while the job runs.
REFRESH_SECONDS = 2


def _job_for(request, pk: int) -> BulkActionRequest:
    job = get_object_or_404(BulkActionRequest, pk=pk, chunked=True)
    require_permission(request, actions.PERMISSIONS[job.action])
    return job


def _list_url(job: BulkActionRequest) -> str:
    # Back to the list as it was filtered when the action was confirmed.
    query = urlencode(list(QueryDict(job.filter_query).lists()), doseq=True)
    return reverse("onboarding") + (f"?{query}" if query else "")


@staff_required
def bulk_job(request, pk: int):
    job = _job_for(request, pk)
    plan = jobs.result(job)
    total = job.total or 0
    finished = job.state == "finished"
    context = {
        "job": job,
        "action_label": bulk.ACTIONS[job.action],
        "plan": plan,
        "percent": 100 if not total else min(100, job.done * 100 // total),
        "stalled": job.state in ("running", "queued") and jobs.is_stalled(job),
        "result_message": actions.result_message(plan)
        if job.state == "finished"
        else "",
        "refresh_seconds": REFRESH_SECONDS
        if job.state in ("running", "queued")
        else None,
        "list_url": _list_url(job),
        # Patients counted when the action was confirmed who no longer
        # matched the filters when their turn came, changed meanwhile.
        "no_longer_matching": max(0, total - job.done) if finished else 0,
    }
    return render(request, "patients/bulk_job.html", context)


@staff_required
@require_POST
def bulk_job_resume(request, pk: int):
    job = _job_for(request, pk)
    if job.state == "finished":
        messages.info(request, "This action has already finished.")
    elif job.state == "stopped" or jobs.is_stalled(job):
        jobs.resume(job)
        messages.success(request, "The action was queued again.")
    else:
        messages.info(request, "The action is still running.")
    return redirect("bulk-job", pk=job.pk)
