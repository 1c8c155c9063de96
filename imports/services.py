"""The one entry point for importing patients, from the command line or the web."""

import logging
import traceback
from collections.abc import Iterable

from django.conf import settings
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

    An unexpected error stops the run. The chunks saved before it stay saved
    and the run is finished all the same: ``summary.failed`` says why it
    stopped, the summary counts what was done, and the audit record is a
    failure.
    """
    paths = list(paths)
    run = ImportRun.objects.create(
        started_at=timezone.now(), started_by=actor, source=(source or "")[:100]
    )
    logger.info("Import run %s started on %d path(s)", run.pk, len(paths))

    importer = Importer(source=source, run_id=run.pk)
    try:
        summary = importer.run(paths)
    except Exception as error:
        summary = importer.summary
        summary.source = importer.source_name()
        summary.failed = (
            f"an unexpected error ({type(error).__name__}) while {importer.stage}. "
            "What was saved before it is kept"
        )
        # The exception's message may quote patient data, so only its type
        # and the place in the code are logged.
        logger.error(
            "Import run %s stopped: %s at %s",
            run.pk,
            type(error).__name__,
            _place_in_code(error),
        )

    with transaction.atomic():
        run.finished_at = timezone.now()
        run.source = summary.source[:100]
        run.summary = summary.as_dict()
        run.save(update_fields=["finished_at", "source", "summary"])
        record(
            AuditEvent.Action.IMPORT,
            actor=actor,
            actor_label=ACTOR_LABEL if actor is None else None,
            outcome=(
                AuditEvent.Outcome.FAILURE
                if summary.failed
                else AuditEvent.Outcome.SUCCESS
            ),
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


def _place_in_code(error: Exception) -> str:
    """Return the file and line of the project's innermost frame in a traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    base = str(settings.BASE_DIR)
    ours = [
        frame
        for frame in frames
        if frame.filename.startswith(base) and "site-packages" not in frame.filename
    ]
    frame = (ours or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"
