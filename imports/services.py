"""The one entry point for importing patients, from the command line or the web."""

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from imports.importer import Importer
from imports.models import ImportRun
from imports.summary import Summary

logger = logging.getLogger(__name__)

ACTOR_LABEL = "import"


def import_patients(
    paths: Iterable[str], *, source: str | None = None, actor=None
) -> tuple[ImportRun, Summary]:
    """Import FHIR and CSV files or folders, and return the ImportRun and summary.

    The ImportRun row is created first, so a run that crashes stays visible
    with no finished_at. Records are saved in chunks as the files are read;
    the run's summary and its audit record are written together at the end.
    """
    paths = list(paths)
    run = ImportRun.objects.create(
        started_at=timezone.now(), started_by=actor, source=(source or "")[:100]
    )
    logger.info("Import run %s started on %d path(s)", run.pk, len(paths))

    summary = Importer(source=source, run_id=run.pk).run(paths)

    with transaction.atomic():
        run.finished_at = timezone.now()
        run.source = summary.source[:100]
        run.summary = summary.as_dict()
        run.save(update_fields=["finished_at", "source", "summary"])
        record(
            AuditEvent.Action.IMPORT,
            actor=actor,
            actor_label=ACTOR_LABEL if actor is None else None,
            import_run=run.pk,
            **summary.counts(),
        )
    logger.info(
        "Import run %s finished: %d records read, %d skipped, patients %s",
        run.pk,
        summary.records_read,
        summary.skipped_count,
        summary.patients.as_dict(),
    )
    return run, summary
