"""Staff pages of imports: recent runs, the upload form and a run's progress.

Every page needs a logged-in staff user with the imports.run_import
permission, checked and audited as every staff action is.
"""

import logging

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from imports.forms import ImportUploadForm
from imports.models import ImportRun
from imports.summary import place_text
from imports.uploads import (
    ImportUploadHandler,
    max_upload_bytes,
    queue_upload,
    record_rejected_upload,
)
from patients.views import require_permission, staff_required

logger = logging.getLogger(__name__)

PERMISSION = "imports.run_import"
RUNS_SHOWN = 50
# Milliseconds between two requests for a running import's progress.
POLL_MILLISECONDS = 1500


def _get_run_for_user(request, pk: int) -> ImportRun:
    require_permission(request, PERMISSION)
    return get_object_or_404(ImportRun.objects.select_related("started_by"), pk=pk)


@staff_required
@require_GET
def import_list(request):
    require_permission(request, PERMISSION)
    runs = ImportRun.objects.select_related("started_by")[:RUNS_SHOWN]
    return render(request, "imports/list.html", {"runs": runs})


# The upload handlers must be set before anything reads the request body,
# so the CSRF check runs inside, once login and permission have been checked:
# only staff allowed to import can make the page write a file to disk.
@csrf_exempt
@staff_required
@require_http_methods(["GET", "POST"])
def import_new(request):
    require_permission(request, PERMISSION)
    handler = ImportUploadHandler(request)
    if request.method == "POST":
        request.upload_handlers = [handler]
    return _import_new(request, handler)


@csrf_protect
def _import_new(request, handler: ImportUploadHandler):
    if request.method == "GET":
        return _render_form(request, ImportUploadForm())

    # Reading the files runs the upload handler, which sets its rejection.
    files = request.FILES
    form = ImportUploadForm(request.POST, files, rejection=handler.rejection)
    if not form.is_valid():
        sent_name = getattr(handler, "file_name", None)
        if sent_name and "file" in form.errors:
            record_rejected_upload(request.user, sent_name, form.errors["file"][0])
        return _render_form(request, form, status=400)

    run = queue_upload(
        request.user, form.cleaned_data["file"], source=form.cleaned_data["source"]
    )
    messages.success(
        request,
        f"{run.upload_name} was uploaded. The import runs in the background, "
        "and this page shows how far it has got.",
    )
    return redirect("import-run", pk=run.pk)


def _render_form(request, form: ImportUploadForm, status: int = 200):
    sources = (
        ImportRun.objects.exclude(source="")
        .exclude(source__contains=",")
        .order_by()
        .values_list("source", flat=True)
        .distinct()[:20]
    )
    context = {
        "form": form,
        "max_bytes": max_upload_bytes(),
        "sources": sorted(sources),
    }
    return render(request, "imports/new.html", context, status=status)


@staff_required
@require_GET
def import_run(request, pk: int):
    run = _get_run_for_user(request, pk)
    context = {
        "run": run,
        "summary": run.summary,
        "sections": _problem_sections(run.summary) if run.is_done else [],
        "poll_milliseconds": POLL_MILLISECONDS,
    }
    return render(request, "imports/run.html", context)


# The lists of a summary shown on a run's page: title, element id, the key of
# the list and the key of its full count (lists stop at MAX_LISTED_PER_FILE).
PROBLEM_LISTS = [
    ("Files not imported", "files-not-imported", "files_not_imported_list", None),
    ("Skipped records", "skipped-records", "skipped_records", "skipped"),
    ("Warnings", "warnings", "warning_list", "warnings"),
    (
        "Dangling references",
        "dangling-references",
        "dangling_reference_list",
        "dangling_references",
    ),
]


def _problem_sections(summary: dict) -> list[dict]:
    sections = []
    for title, element_id, list_key, count_key in PROBLEM_LISTS:
        items = summary.get(list_key) or []
        if not items:
            continue
        total = summary.get(count_key, len(items)) if count_key else len(items)
        sections.append(
            {
                "title": title,
                "id": element_id,
                "items": [
                    {"place": place_text(item), "text": _problem_text(item)}
                    for item in items
                ],
                "more": max(0, total - len(items)),
            }
        )
    return sections


def _problem_text(item: dict) -> str:
    if "reference" in item:
        return f"{item['reference']} ({item['context']})"
    return item.get("reason", "")


@staff_required
@require_GET
def import_run_progress(request, pk: int):
    run = _get_run_for_user(request, pk)
    return JsonResponse(progress_data(run))


def progress_data(run: ImportRun) -> dict:
    """Return a run's status and progress counts, as the run's page shows them."""
    return {
        "status": run.status,
        "status_label": run.get_status_display(),
        "done": run.is_done,
        "percent": run.percent_done,
        "bytes_done": run.bytes_done,
        "bytes_total": run.bytes_total,
        "bytes_text": (
            f"{filesizeformat(run.bytes_done)} of {filesizeformat(run.bytes_total)}"
        ),
        "records_done": run.records_done,
        "patients_done": run.patients_done,
    }
