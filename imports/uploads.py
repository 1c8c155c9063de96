"""Import files uploaded on the imports page, in the worker.

The upload handler streams the file into IMPORT_UPLOAD_DIR, checks its name
before it writes anything, and stops at IMPORT_UPLOAD_MAX_MB. The page then
checks what the file contains, queues an ImportRun and its task, and audits
the upload. The task runs the same importer as ``import_patients`` and
deletes the file, and the folder a .zip was unpacked into, when it ends.
"""

import datetime
import logging
import secrets
import shutil
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import (
    FileUploadHandler,
    SkipFile,
    StopFutureHandlers,
)
from django.db import transaction
from django.db.models import Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from imports.models import ImportRun
from imports.services import run_import

logger = logging.getLogger(__name__)

UPLOAD_FIELD = "file"
FHIR_SUFFIXES = (".json", ".ndjson", ".jsonl")
CSV_SUFFIX = ".csv"
ZIP_SUFFIX = ".zip"
ACCEPTED_SUFFIXES = (*FHIR_SUFFIXES, CSV_SUFFIX, ZIP_SUFFIX)
ZIP_MEMBER_SUFFIXES = (".ndjson", ".jsonl")
# Entries that macOS archivers add beside the files, which are not unpacked.
ZIP_EXTRAS = ("__MACOSX/", ".DS_Store")
# The unpacked files of a .zip may be this many times larger than its limit,
# because NDJSON compresses about tenfold.
UNZIPPED_SIZE_FACTOR = 10

WHAT_TO_UPLOAD = (
    "Upload a FHIR export (.json or .ndjson), a spreadsheet saved as CSV (.csv), "
    "or a .zip of .ndjson files."
)
# Suffixes and first bytes of files people upload by mistake, with what to do.
KNOWN_WRONG_SUFFIXES = {
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".ods": "a spreadsheet",
    ".numbers": "a Numbers spreadsheet",
}
SPREADSHEET_ADVICE = (
    "Open it in your spreadsheet program, save it as CSV UTF-8 (.csv) and "
    "upload that file."
)
SIGNATURES = [
    (b"PK\x03\x04", "a zip archive or an Excel workbook"),
    (b"\xd0\xcf\x11\xe0", "an Excel workbook or another Office document"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
]
SNIFF_BYTES = 4096


class UploadRejected(Exception):
    """The uploaded file cannot be imported, for the reason in the message."""


def max_upload_bytes() -> int:
    return settings.IMPORT_UPLOAD_MAX_MB * 1024 * 1024


def upload_dir() -> Path:
    folder = Path(settings.IMPORT_UPLOAD_DIR)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def suffix_problem(name: str) -> str | None:
    """Return why a file of this name is not accepted, or None if it is."""
    suffix = Path(name).suffix.lower()
    if suffix in ACCEPTED_SUFFIXES:
        return None
    if suffix in KNOWN_WRONG_SUFFIXES:
        return f"{name} is {KNOWN_WRONG_SUFFIXES[suffix]}. {SPREADSHEET_ADVICE}"
    return f"{name} is not a file the import can read. {WHAT_TO_UPLOAD}"


def too_large_message(name: str) -> str:
    limit = filesizeformat(max_upload_bytes())
    return (
        f"{name} is larger than {limit}, the largest file this page accepts. "
        "NDJSON files can be uploaded in a .zip. Otherwise ask the person who "
        "looks after this system to import it with the import_patients command."
    )


class ImportUploadHandler(FileUploadHandler):
    """Write the uploaded file into IMPORT_UPLOAD_DIR, up to IMPORT_UPLOAD_MAX_MB.

    A file with a name the import cannot read, or one over the limit, is
    skipped: nothing of it stays on disk, and ``rejection`` contains the
    reason. The temporary file is deleted when it is closed, unless the page
    has moved it to its final name first.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.rejection: str | None = None
        self.limit = max_upload_bytes()

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        if field_name != UPLOAD_FIELD:
            raise SkipFile
        self.rejection = suffix_problem(file_name)
        if self.rejection:
            raise SkipFile
        self.size = 0
        # Left open for the page, which moves it to its final name; closing
        # it deletes it otherwise.
        self.file = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=upload_dir(), prefix=".upload-", suffix=".part"
        )
        raise StopFutureHandlers

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        if self.size > self.limit:
            self.rejection = too_large_message(self.file_name)
            self.file.close()
            raise SkipFile
        self.file.write(raw_data)
        return None

    def file_complete(self, file_size):
        if not hasattr(self, "file") or self.file.closed:
            return None
        self.file.flush()
        self.file.seek(0)
        return UploadedFile(
            file=self.file,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
        )

    def upload_interrupted(self):
        if hasattr(self, "file"):
            self.file.close()


# --- Checks of the content ---


def check_upload(uploaded: UploadedFile) -> None:
    """Raise UploadRejected when the file is plainly not an export the import reads.

    Only the first bytes and a .zip's list of files are checked here. The
    import itself reports invalid JSON or CSV with its line.
    """
    name = uploaded.name
    if uploaded.size == 0:
        raise UploadRejected(
            f"{name} is empty. Export it from your EHR again and upload the new file."
        )
    uploaded.seek(0)
    head = uploaded.read(SNIFF_BYTES)
    uploaded.seek(0)
    suffix = Path(name).suffix.lower()
    if suffix == ZIP_SUFFIX:
        _check_zip(uploaded, name)
        return
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            advice = SPREADSHEET_ADVICE if suffix == CSV_SUFFIX else WHAT_TO_UPLOAD
            raise UploadRejected(
                f"{name} is {kind}, not a {suffix} text file. {advice}"
            )
    if b"\x00" in head:
        raise UploadRejected(
            f"{name} is not a text file. It may be saved as UTF-16 or be a "
            f"program's own format. {WHAT_TO_UPLOAD} Text files must be UTF-8."
        )


def _zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [
        info
        for info in archive.infolist()
        if not info.is_dir() and not any(extra in info.filename for extra in ZIP_EXTRAS)
    ]


def _check_zip(uploaded: UploadedFile, name: str) -> None:
    try:
        with zipfile.ZipFile(uploaded) as archive:
            members = _zip_members(archive)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise UploadRejected(
            f"{name} is not a valid .zip file; it may be damaged or incomplete. "
            "Make the .zip again and upload it."
        ) from None
    finally:
        uploaded.seek(0)

    others = [
        info.filename
        for info in members
        if not info.filename.lower().endswith(ZIP_MEMBER_SUFFIXES)
    ]
    if others:
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        raise UploadRejected(
            f"{name} contains files other than .ndjson: {shown}. A .zip may hold "
            "only the .ndjson files of a FHIR Bulk Data export. Upload a JSON "
            "bundle or a CSV file on its own."
        )
    if not members:
        raise UploadRejected(f"{name} contains no .ndjson files.")
    if any(info.flag_bits & 0x1 for info in members):
        raise UploadRejected(
            f"{name} is protected by a password. Make the .zip again without "
            "a password and upload it."
        )
    names = [Path(info.filename).name for info in members]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UploadRejected(
            f"{name} contains more than one file named {repeated[0]}. Put each "
            "export in a .zip of its own."
        )
    unpacked = sum(info.file_size for info in members)
    if unpacked > max_upload_bytes() * UNZIPPED_SIZE_FACTOR:
        raise UploadRejected(
            f"{name} unpacks to {filesizeformat(unpacked)}, more than "
            f"{filesizeformat(max_upload_bytes() * UNZIPPED_SIZE_FACTOR)}. Ask "
            "the person who looks after this system to import it with the "
            "import_patients command."
        )


# --- Queueing ---


def queue_upload(user, uploaded: UploadedFile, source: str = "") -> ImportRun:
    """Keep a checked upload, queue its import, and audit the upload.

    The file is moved to its final name in IMPORT_UPLOAD_DIR, and the run,
    its task and the audit record are written in one transaction.
    """
    from imports.tasks import import_upload

    suffix = Path(uploaded.name).suffix.lower()
    temporary = Path(uploaded.file.name)
    kept = None
    try:
        with transaction.atomic():
            run = ImportRun.objects.create(
                started_at=timezone.now(),
                started_by=user,
                status=ImportRun.Status.QUEUED,
                source=source[:100],
                upload_name=uploaded.name[:255],
                bytes_total=uploaded.size,
            )
            kept = temporary.with_name(f"run-{run.pk}-{secrets.token_hex(8)}{suffix}")
            temporary.replace(kept)
            run.upload_path = str(kept)
            run.save(update_fields=["upload_path"])
            record(
                AuditEvent.Action.IMPORT_UPLOAD,
                actor=user,
                import_run=run.pk,
                file=uploaded.name[:255],
                bytes=uploaded.size,
            )
            import_upload.enqueue(run.pk)
    except BaseException:
        if kept is not None:
            kept.unlink(missing_ok=True)
        raise
    logger.info(
        "User %s uploaded %d bytes for import run %s", user.pk, uploaded.size, run.pk
    )
    return run


def record_rejected_upload(user, name: str, reason: str) -> None:
    """Audit an upload that was not accepted, in a transaction of its own."""
    with transaction.atomic():
        record(
            AuditEvent.Action.IMPORT_UPLOAD,
            actor=user,
            outcome=AuditEvent.Outcome.FAILURE,
            file=name[:255],
            reason=reason,
        )
    logger.info("User %s uploaded a file that was not accepted", user.pk)


# --- The worker's part ---


def import_upload(run_id: int) -> dict:
    """Import the file of a queued run, then delete it. Returns the run's counts.

    Safe to run twice for one run: only the first call finds it queued. A
    worker killed during the import leaves the run "Importing" and its file
    in place, and requeue_stalled() queues it again.
    """
    started = ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED)
    if not started.update(status=ImportRun.Status.RUNNING, started_at=timezone.now()):
        logger.warning("Import run %s is not queued; it is not started again", run_id)
        return {}
    run = ImportRun.objects.select_related("started_by").get(pk=run_id)
    upload = Path(run.upload_path)
    unpacked = upload.with_name(upload.name + ".unpacked")
    try:
        if not upload.is_file():
            raise FileNotFoundError(f"import run {run_id}: the upload is missing")
        paths, labels = _paths_to_import(run, upload, unpacked)
        summary = run_import(
            run,
            paths,
            source=run.source or None,
            actor=run.started_by,
            file_labels=labels,
        )
        return summary.counts()
    except Exception as error:
        logger.error(
            "Import run %s failed before its import ended: %s",
            run_id,
            type(error).__name__,
        )
        _fail(run, error)
        raise
    finally:
        upload.unlink(missing_ok=True)
        shutil.rmtree(unpacked, ignore_errors=True)
        ImportRun.objects.filter(pk=run_id).update(upload_path="")
        logger.info("Import run %s: the uploaded file was deleted", run_id)


def _paths_to_import(
    run: ImportRun, upload: Path, unpacked: Path
) -> tuple[list[str], dict[str, str]]:
    """Return the paths to import and the names to show for them.

    A .zip is unpacked into the folder UNPACKED first.
    """
    if upload.suffix.lower() != ZIP_SUFFIX:
        return [str(upload)], {str(upload): run.upload_name}
    # Left behind by an earlier attempt whose worker was killed.
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir(mode=0o700)
    labels = {}
    with zipfile.ZipFile(upload) as archive:
        for info in _zip_members(archive):
            # Only the file's own name, so no entry can point outside the folder.
            target = unpacked / Path(info.filename).name
            with archive.open(info) as member, target.open("xb") as out:
                shutil.copyfileobj(member, out)
            labels[str(target)] = f"{run.upload_name}: {info.filename}"
    return [str(unpacked)], labels


def _fail(run: ImportRun, error: Exception) -> None:
    if isinstance(error, zipfile.BadZipFile | OSError):
        message = (
            f"The import could not read {run.upload_name}: it may have been "
            "damaged or removed on the server. Upload it again."
        )
    else:
        message = (
            f"The import of {run.upload_name} stopped because of an unexpected "
            "error. Ask the person who looks after this system to check the "
            "worker's log, then upload the file again."
        )
    with transaction.atomic():
        ImportRun.objects.filter(pk=run.pk).exclude(
            status=ImportRun.Status.FINISHED
        ).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error=message,
        )


def requeue_stalled() -> int:
    """Queue again the uploaded imports that a stopped worker left; return how many.

    A running import writes its progress every IMPORT_PROGRESS_SECONDS, so
    one silent for IMPORT_STALE_SECONDS lost its worker. A queued one whose
    task no worker will run (its worker stopped before starting it) is found
    after SWEEP_GRACE_SECONDS. Importing the file again is safe: records
    already imported are matched by source and id and left unchanged.
    """
    from imports.tasks import import_upload as import_task
    from worker.queue import first_arguments_due

    now = timezone.now()
    uploads = ImportRun.objects.exclude(upload_path="")
    silent = now - datetime.timedelta(seconds=settings.IMPORT_STALE_SECONDS)
    stalled = list(
        uploads.filter(status=ImportRun.Status.RUNNING)
        .filter(
            Q(progress_at__lt=silent)
            | Q(progress_at__isnull=True, started_at__lt=silent)
        )
        .values_list("pk", flat=True)
    )
    waiting = set(
        uploads.filter(
            status=ImportRun.Status.QUEUED,
            started_at__lt=now
            - datetime.timedelta(seconds=settings.SWEEP_GRACE_SECONDS),
        ).values_list("pk", flat=True)
    )
    if waiting:
        waiting -= first_arguments_due(import_task)

    requeued = 0
    for run_id in [*stalled, *sorted(waiting)]:
        with transaction.atomic():
            if run_id in stalled:
                ImportRun.objects.filter(
                    pk=run_id, status=ImportRun.Status.RUNNING
                ).update(status=ImportRun.Status.QUEUED)
            import_task.enqueue(run_id)
        requeued += 1
    if requeued:
        logger.warning(
            "Queued again %d uploaded imports left by a stopped worker (runs %s)",
            requeued,
            [*stalled, *sorted(waiting)],
        )
    return requeued
