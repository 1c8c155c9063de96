"""The staff audit log: a filtered, paged list of events and its exports.

Every page needs a logged-in staff user with the audit.view_auditevent
permission. Each export is itself recorded in the audit log.
"""

import logging
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.exports import csv_chunks, detail_pairs, fhir_ndjson_chunks
from audit.forms import AuditFilterForm, filter_events
from audit.models import AuditEvent
from audit.services import record
from patients.views import require_permission, staff_required

logger = logging.getLogger(__name__)

PERMISSION = "audit.view_auditevent"
PAGE_SIZE = 50

# Export format name (as kept in the export's audit record), content type
# and file extension.
EXPORTS = {
    "csv": ("text/csv; charset=utf-8", "csv", csv_chunks),
    "fhir-ndjson": ("application/fhir+ndjson", "ndjson", fhir_ndjson_chunks),
}


def _require_view_permission(request) -> None:
    # The same check as every staff action, so that a refusal is audited too.
    require_permission(request, PERMISSION)


def _render_log(request, form: AuditFilterForm, status: int = 200):
    # With an invalid filter the list stays empty rather than showing events
    # chosen by only the valid part of the filters.
    if form.is_valid():
        events = filter_events(form.cleaned_data)
    else:
        events = AuditEvent.objects.none()
    paginator = Paginator(events.select_related("patient"), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    for event in page:
        event.detail_pairs = detail_pairs(event.detail)

    context = {
        "form": form,
        "page": page,
        "export_query": urlencode(form.active_params()),
    }
    return render(request, "audit/log.html", context, status=status)


@staff_required
@require_GET
def audit_log(request):
    _require_view_permission(request)
    return _render_log(request, AuditFilterForm(request.GET))


def _export(request, export_format: str):
    _require_view_permission(request)
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _render_log(request, form, status=400)

    content_type, extension, chunks = EXPORTS[export_format]
    events = filter_events(form.cleaned_data)
    with transaction.atomic():
        event_count = events.count()
        export_event = record(
            AuditEvent.Action.EXPORT,
            actor=request.user,
            format=export_format,
            filters=dict(form.active_params()),
            events=event_count,
        )
    # The export contains the events recorded before its own record.
    events = events.filter(pk__lt=export_event.pk).select_related("patient")

    response = StreamingHttpResponse(chunks(events), content_type=content_type)
    stamp = timezone.localtime(export_event.created_at).strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-log-{stamp}.{extension}"'
    )
    logger.info(
        "User %s exported %d audit events as %s",
        request.user.pk,
        event_count,
        export_format,
    )
    return response


@staff_required
@require_GET
def export_csv(request):
    return _export(request, "csv")


@staff_required
@require_GET
def export_fhir(request):
    return _export(request, "fhir-ndjson")
