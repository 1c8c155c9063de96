"""The one entry point for importing patients, from the command line or the web."""

import contextlib
import logging
import time
import traceback
from collections.abc import Iterable

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from imports.importer import Importer
from imports.models import ImportRun
from imports.progress import ImportProgress, ProgressListener
from imports.summary import Summary

logger = logging.getLogger(__name__)

ACTOR_LABEL = "import"
# The key of PostgreSQL's advisory lock that one import run holds at a time.
IMPORT_LOCK = 74_616_901
# Seconds between attempts to take it while another import runs.
LOCK_POLL_SECONDS = 2.0


def import_patients(
    paths: Iterable[str],
    *,
    source: str | None = None,
    actor=None,
    progress: ProgressListener | None = None,
    progress_interval: float = 1.0,
) -> tuple[ImportRun, Summary]:
    """Import FHIR and CSV files or folders, and return the ImportRun and summary.

    The ImportRun row is created first, so a run that crashes stays visible
    with no finished_at. Records are saved in chunks as the files are read;
    the run's summary and its audit record are written together at the end.
    PROGRESS, if given, is called at most once per PROGRESS_INTERVAL seconds
    and once more at the end.

    An unexpected error stops the run. The chunks saved before it stay saved
    and the run is finished all the same: ``summary.failed`` says why it
    stopped, the summary counts what was done, and the audit record is a
    failure.
    """
    run = ImportRun.objects.create(
        started_at=timezone.now(),
        started_by=actor,
        source=(source or "")[:100],
        status=ImportRun.Status.RUNNING,
    )
    summary = run_import(
        run,
        paths,
        source=source,
        actor=actor,
        progress=progress,
        progress_interval=progress_interval,
    )
    return run, summary


def run_import(
    run: ImportRun,
    paths: Iterable[str],
    *,
    source: str | None = None,
    actor=None,
    progress: ProgressListener | None = None,
    progress_interval: float = 1.0,
    file_labels: dict[str, str] | None = None,
) -> Summary:
    """Import PATHS as the running RUN, and finish the run with its summary.

    FILE_LABELS maps paths as read to the names shown in the summary, such
    as an uploaded file's own name in place of the path it is kept under.
    """
    paths = list(paths)
    logger.info("Import run %s started on %d path(s)", run.pk, len(paths))

    recorder = _ProgressRecorder(run.pk, progress, progress_interval)
    interval = settings.IMPORT_PROGRESS_SECONDS
    if progress is not None:
        interval = min(interval, progress_interval)
    with _one_run_at_a_time(run.pk):
        importer = Importer(
            source=source, run_id=run.pk, progress=recorder, progress_interval=interval
        )
        summary = _run_importer(importer, run, paths)
    if file_labels:
        relabel_files(summary, file_labels)

    _finish_run(run, summary, importer.progress.snapshot(), actor)
    logger.info(
        "Import run %s finished: %d records read, %d skipped, patients %s",
        run.pk,
        summary.records_read,
        summary.skipped_count,
        summary.patients.as_dict(),
    )
    return summary


@contextlib.contextmanager
def _one_run_at_a_time(run_id: int):
    """Wait, on PostgreSQL, until no other import runs, and hold that until done.

    Two runs of one export at once would each look for the other's new
    patients before it committed them, then fail to save them as duplicates.
    SQLite needs no lock: each chunk holds its only write lock from its
    first lookup to its commit.
    """
    if connection.vendor != "postgresql":
        yield
        return
    waiting = False
    while not _take_import_lock():
        if not waiting:
            logger.info("Import run %s waits for another import to finish", run_id)
            waiting = True
        # Shows the run alive meanwhile, so the recovery sweep does not take
        # a waiting upload for one whose worker died.
        ImportRun.objects.filter(pk=run_id).update(progress_at=timezone.now())
        time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK])
        except DatabaseError as error:
            logger.warning(
                "Import run %s could not release its lock (%s); it is released "
                "when the database connection closes",
                run_id,
                type(error).__name__,
            )


def _take_import_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [IMPORT_LOCK])
        return cursor.fetchone()[0]


def _run_importer(importer: Importer, run: ImportRun, paths: list[str]) -> Summary:
    """Run IMPORTER; after an unexpected error, return what it did until then."""
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
    return summary


def _finish_run(run: ImportRun, summary: Summary, last: ImportProgress, actor):
    with transaction.atomic():
        run.finished_at = timezone.now()
        run.source = summary.source[:100]
        run.summary = summary.as_dict()
        run.error = failure_message(summary)
        run.status = ImportRun.Status.FAILED if run.error else ImportRun.Status.FINISHED
        run.bytes_total = last.bytes_total
        run.bytes_done = last.bytes_done
        run.records_done = summary.records_read
        run.patients_done = last.patients_done
        run.progress_at = run.finished_at
        run.save(
            update_fields=[
                "finished_at",
                "source",
                "summary",
                "error",
                "status",
                "bytes_total",
                "bytes_done",
                "records_done",
                "patients_done",
                "progress_at",
            ]
        )
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


def failure_message(summary: Summary) -> str:
    """Return why a run failed, in words for the practice's staff; empty if it did not.

    A run fails when it stopped early, or when no file yielded a record.
    """
    if summary.failed:
        return (
            f"The import stopped early after {summary.failed}. Ask the person "
            "who looks after this system to check the worker's log, then import "
            "the file again: patients imported twice are updated, not doubled."
        )
    if not summary.nothing_read:
        return ""
    reasons = [
        f"{item['file']}: {item['reason']}" for item in summary.files_not_imported
    ]
    if reasons:
        return (
            "Nothing was imported. "
            + " ".join(f"{reason.rstrip('.')}." for reason in reasons)
            + " Check that the file is the patient export from your EHR, saved "
            "as FHIR JSON, NDJSON or CSV, and import it again."
        )
    return (
        "Nothing was imported: the file contains no records. Check that it is "
        "the patient export from your EHR and not an empty file."
    )


def relabel_files(summary: Summary, labels: dict[str, str]) -> None:
    """Replace file paths in the summary by the names people know them by."""

    def label(path: str) -> str:
        return labels.get(path, path)

    for items in (
        summary.files_not_imported,
        summary.skipped,
        summary.warnings,
        summary.dangling,
    ):
        for item in items:
            if "file" in item:
                item["file"] = label(item["file"])
    for path, name in labels.items():
        summary.failed = summary.failed.replace(path, name)


class _ProgressRecorder:
    """Write a run's progress to the database every IMPORT_PROGRESS_SECONDS.

    Each write is a transaction of its own, so the run's page can read it
    while the import goes on. A LISTENER, such as the command's progress bar,
    gets a snapshot every LISTENER_INTERVAL seconds and the final one.
    """

    def __init__(
        self, run_id: int, listener: ProgressListener | None, listener_interval: float
    ):
        self.run_id = run_id
        self.listener = listener
        self.listener_interval = listener_interval
        self.next_write = 0.0
        self.next_listener_call = 0.0

    def __call__(self, progress: ImportProgress) -> None:
        now = time.monotonic()
        if self.listener is not None and (
            now >= self.next_listener_call or progress.final
        ):
            self.next_listener_call = now + self.listener_interval
            self.listener(progress)
        if now < self.next_write or progress.final:
            # The final numbers are saved with the summary.
            return
        self.next_write = now + settings.IMPORT_PROGRESS_SECONDS
        with transaction.atomic():
            ImportRun.objects.filter(pk=self.run_id).update(
                bytes_total=progress.bytes_total,
                bytes_done=progress.bytes_done,
                records_done=progress.records_done,
                patients_done=progress.patients_done,
                progress_at=timezone.now(),
            )


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
