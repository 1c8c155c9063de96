"""The Importer: reads every file, saves what it finds, and links it up.

It works in two passes over the files so that a reference may point to a
resource in a file read later:

1. Every file, NDJSON files of Practitioners first: save Practitioners and
   Patients, remember PractitionerRoles, and keep, per patient, only the
   best Encounters for choosing a primary provider (the latest check-up's
   primary performer and the latest participant of any encounter). Note
   which files hold Appointments or Groups.
2. Only the files that hold them: save Appointments (FHIR or CSV) and add
   Group tags, now that every patient exists.

Then each patient's primary provider is set from Patient.generalPractitioner,
else from the Encounters. What that needs per patient waits in a Scratch
database on disk, so memory does not grow with the export.

Saves run in transactions of CHUNK_SIZE records. A chunk of new records is
first inserted at once in a savepoint; if that fails, it is rolled back and
saved with a savepoint per record, so a failing record is skipped whole and
never undoes the others.

Progress (bytes read of the files, records and patients done) goes to an
optional listener at most once per ``progress_interval`` seconds, and once
more at the end. It is never sent from inside a chunk's transaction.
"""

import errno
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from django.db import DatabaseError, transaction
from django.utils import timezone

from imports import csv_format
from imports.fhir import (
    JSON_SUFFIXES,
    NDJSON_SUFFIXES,
    Entry,
    FileRejected,
    Location,
    Problems,
    describe_outcome,
    local_key,
    read_fhir_file,
)
from imports.linking import resolve_patients
from imports.progress import ProgressListener, ProgressTracker
from imports.records import (
    RecordError,
    appointment_record,
    encounter_facts,
    group_members,
    identifiers,
    patient_record,
    practitioner_record,
    role_practitioner,
)
from imports.rows import sqlite_pragmas
from imports.scratch import Candidate, Scratch
from imports.store import Store
from imports.summary import Summary, Tally
from portal.bulk_writes import commit_without_waiting_for_disk

logger = logging.getLogger(__name__)

CHUNK_SIZE = 5000
FHIR_SOURCE = "fhir"
CSV_SOURCE = "csv"
CSV_SUFFIX = ".csv"
SECOND_PASS_TYPES = {"Appointment", "Group"}
# Bytes of a file's first line read to see whether it is a Practitioner.
PEEK_BYTES = 64 * 1024
# SQLite's page cache for the run, in KiB. Its default of 2 MB fits a small
# part of the patient table's indexes, so each chunk's inserts read and write
# the same pages again and again.
SQLITE_CACHE_KIB = 64 * 1024
# Pages written to SQLite's write-ahead log before it is copied into the
# database. Each chunk writes thousands, and SQLite's default of 1,000 made
# nearly every commit a checkpoint that writes and syncs the database file.
# NOTE: the log file keeps its largest size, about 40 MB with 4 kB pages,
# until the last connection to the database closes.
SQLITE_CHECKPOINT_PAGES = 10_000
# Exceptions raised by reading a resource of an unexpected shape, such as a
# number where FHIR has a list. Such a resource is skipped and the run goes on.
SHAPE_ERRORS = (TypeError, AttributeError, ValueError, KeyError)


class Importer(Problems):
    def __init__(
        self,
        *,
        source: str | None = None,
        run_id: int | None = None,
        progress: ProgressListener | None = None,
        progress_interval: float = 1.0,
    ):
        self.source_override = source
        self.run_id = run_id
        self.summary = Summary()
        self.progress = ProgressTracker(
            progress, progress_interval, self._progress_counts
        )
        self.store = Store(self.summary, run_id, timezone.now())
        self.sources_used: set[str] = set()
        # What the run is doing, for the summary of a run that stops early.
        self.stage = "starting"
        # Each patient's generalPractitioner reference and best Encounters,
        # resolved once every file is read.
        self.scratch = Scratch()
        self.patients = []
        self.practitioners = []
        self.appointments = []
        self.members = []

    # --- Problems, as called by the readers ---

    def skip(self, location: Location, reason: str) -> None:
        self.summary.skip(location, reason)

    def warn(self, location: Location, reason: str) -> None:
        self.summary.warn(location, reason)

    def file_version(self, label: str) -> None:
        self.summary.fhir_versions[label] += 1

    def record_read(self) -> None:
        self.summary.records_read += 1
        self.progress.tick()

    def open_file(self, path: Path) -> BinaryIO:
        return self.progress.open(path)

    def _progress_counts(self) -> tuple[int, int]:
        patients = self.summary.patients
        done = patients.created + patients.updated + patients.unchanged
        return self.summary.records_read, done

    # --- The run ---

    def run(self, paths: Iterable[str]) -> Summary:
        """Import every file under ``paths`` and return the summary.

        An unexpected exception propagates. ``self.stage`` then names the step
        that failed and ``self.summary`` counts what was done before it. The
        records saved in committed chunks stay saved.
        """
        try:
            # A negative cache_size is in KiB. wal_autocheckpoint is in pages.
            with sqlite_pragmas(
                cache_size=-SQLITE_CACHE_KIB, wal_autocheckpoint=SQLITE_CHECKPOINT_PAGES
            ):
                return self._run(paths)
        finally:
            self.scratch.close()

    def _run(self, paths: Iterable[str]) -> Summary:
        self.stage = "looking for files"
        second_pass = []
        found = _practitioners_first(self._discover(paths))
        self.progress.plan(found)
        for path in found:
            self.stage = f"reading {path}"
            self.progress.start_file(path)
            if path.suffix.lower() == CSV_SUFFIX:
                needs_second_pass = self._read_csv(path)
            else:
                needs_second_pass = self._read_fhir(path)
            if needs_second_pass:
                second_pass.append(path)
                # A file read again counts again, so the total grows as soon
                # as the first pass has found that it must be.
                self.progress.plan([path])
        self.stage = "saving patients and practitioners"
        self._flush_practitioners()
        self._flush_patients()

        for path in second_pass:
            self.stage = f"reading {path} for appointments and groups"
            self.progress.start_file(path)
            if path.suffix.lower() == CSV_SUFFIX:
                self._read_csv_appointments(path)
            else:
                self._read_second_pass(path)
        self.stage = "saving appointments and group tags"
        self._flush_appointments()
        self._flush_members()

        self.stage = "setting primary providers"
        self._assign_providers()
        self.summary.source = self.source_name()
        self.progress.finish()
        return self.summary

    def source_name(self) -> str:
        return self.source_override or ", ".join(sorted(self.sources_used))

    def _discover(self, paths: Iterable[str]) -> list[Path]:
        found = []
        for name in paths:
            path = Path(name)
            problem = _link_problem(path)
            if problem:
                self.summary.file_not_imported(name, problem)
            elif path.is_dir():
                inside = sorted(self._files_under(path))
                found += [p for p in inside if self._importable(p)]
            elif path.is_file():
                if self._importable(path):
                    found.append(path)
            elif path.exists():
                self.summary.file_not_imported(name, "not a regular file or folder")
            else:
                self.summary.file_not_imported(
                    name, "no such file or folder; check the path"
                )
        return found

    def _files_under(self, folder: Path) -> list[Path]:
        """Return the files in a folder and its subfolders, following links.

        Broken links and link loops are reported. Each folder is read once,
        however many links lead to it, so a loop cannot make the walk endless.
        Folders reached without a link are read first, so that the report
        names the links.
        """
        files = []
        # (st_dev, st_ino) of every folder read -> the path it was read under.
        read: dict[tuple[int, int], Path] = {}
        folders, linked = [folder], []
        while folders or linked:
            directory = folders.pop() if folders else linked.pop()
            try:
                info = directory.stat()
                children = sorted(directory.iterdir())
            except OSError as error:
                self.summary.file_not_imported(
                    str(directory), f"folder could not be read: {error.strerror}"
                )
                continue
            key = (info.st_dev, info.st_ino)
            if key in read:
                self.summary.file_not_imported(
                    str(directory), _repeated_folder(directory, read[key])
                )
                continue
            read[key] = directory
            subfolders = []
            for child in children:
                problem = _link_problem(child)
                if problem:
                    self.summary.file_not_imported(str(child), problem)
                    continue
                try:
                    if child.is_dir():
                        subfolders.append(child)
                    elif child.is_file():
                        files.append(child)
                    else:
                        self.summary.file_not_imported(
                            str(child), "not a regular file or folder"
                        )
                except OSError as error:
                    self.summary.file_not_imported(
                        str(child), f"could not be read: {error.strerror}"
                    )
            for child in reversed(subfolders):
                (linked if child.is_symlink() else folders).append(child)
        return files

    def _importable(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if suffix in JSON_SUFFIXES + NDJSON_SUFFIXES + (CSV_SUFFIX,):
            return True
        self.summary.file_not_imported(
            str(path), "not a .json, .ndjson or .csv file; ignored"
        )
        return False

    def _source(self, default: str) -> str:
        source = self.source_override or default
        self.sources_used.add(source)
        return source

    # --- First pass ---

    def _read_fhir(self, path: Path) -> bool:
        """Read one FHIR file; return whether it needs the second pass."""
        source = self._source(FHIR_SOURCE)
        needs_second_pass = False
        try:
            for entry in read_fhir_file(path, self):
                self.summary.records_used += 1
                if entry.resource["resourceType"] in SECOND_PASS_TYPES:
                    needs_second_pass = True
                    continue
                try:
                    self._take_resource(source, entry)
                except RecordError as error:
                    self.skip(entry.location, str(error))
                except SHAPE_ERRORS as error:
                    self._shape_error(entry, error)
                self._flush_full_chunks()
        except FileRejected as error:
            self.summary.file_not_imported(str(path), str(error))
            return False
        except OSError as error:
            self.summary.file_not_imported(
                str(path), f"could not be read: {error.strerror}"
            )
            return False
        self.summary.files_read += 1
        return needs_second_pass

    def _take_resource(self, source: str, entry: Entry) -> None:
        resource = entry.resource
        kind = resource["resourceType"]
        now = self.store.now
        if kind == "Patient":
            record = patient_record(resource, entry.location, entry.full_url, now)
            if record.general_practitioner is not None:
                record.general_practitioner = local_key(
                    record.general_practitioner, entry.bundle_urls
                )
            self.patients.append((source, record))
        elif kind == "Practitioner":
            self.practitioners.append(
                practitioner_record(resource, entry.location, entry.full_url, now)
            )
        elif kind == "PractitionerRole":
            self._remember_role(entry)
        elif kind == "Encounter":
            self._remember_encounter(source, entry)
        elif kind == "OperationOutcome":
            self.skip(entry.location, describe_outcome(resource))
        else:
            self.summary.other_resources[kind] += 1

    def _shape_error(self, entry: Entry, error: Exception) -> None:
        kind = entry.resource["resourceType"]
        logger.warning(
            "Import run %s: skipped a resource of type %s with an unexpected "
            "shape (%s)",
            self.run_id,
            kind,
            type(error).__name__,
        )
        self.skip(
            entry.location,
            f"{kind} has an element of an unexpected type or shape "
            f"({type(error).__name__}); check it against the FHIR R4 {kind}",
        )

    def _flush_full_chunks(self) -> None:
        if len(self.patients) >= CHUNK_SIZE:
            # Practitioners first, so a chunk's CSV names find them.
            self._flush_practitioners()
            self._flush_patients()
        if len(self.practitioners) >= CHUNK_SIZE:
            self._flush_practitioners()
        if len(self.appointments) >= CHUNK_SIZE:
            self._flush_appointments()
        if len(self.members) >= CHUNK_SIZE:
            self._flush_members()

    def _remember_role(self, entry: Entry) -> None:
        practitioner = role_practitioner(entry.resource)
        if practitioner is None:
            raise RecordError("PractitionerRole.practitioner is missing")
        self.store.practitioners.remember_role(
            local_key(practitioner, entry.bundle_urls),
            role_id=str(entry.resource.get("id") or ""),
            full_url=entry.full_url,
            identifiers=identifiers(entry.resource),
        )

    def _remember_encounter(self, source: str, entry: Entry) -> None:
        facts = encounter_facts(entry.resource)
        if facts is None:
            raise RecordError("Encounter.subject is missing")
        key = (source, local_key(facts.patient, entry.bundle_urls))
        candidate = self.scratch.encounter_candidate(key)

        if (
            facts.is_checkup
            and facts.performer is not None
            and facts.started >= candidate.checkup_started
        ):
            candidate.checkup_started = facts.started
            candidate.checkup_performer = local_key(facts.performer, entry.bundle_urls)
            candidate.checkup_location = entry.location
        if facts.participant is not None and facts.started >= candidate.latest_started:
            candidate.latest_started = facts.started
            candidate.latest_participant = local_key(
                facts.participant, entry.bundle_urls
            )
            candidate.latest_location = entry.location

    def _read_csv(self, path: Path) -> bool:
        """Read a patient CSV; return True for an appointment CSV, read later."""
        source = self._source(CSV_SOURCE)
        try:
            if csv_format.csv_kind(path) == "appointments":
                self.summary.files_read += 1
                return True
            for record in self._csv_records(path, csv_format.patient_record):
                self.patients.append((source, record))
                if len(self.patients) >= CHUNK_SIZE:
                    self._flush_patients()
        except FileRejected as error:
            self.summary.file_not_imported(str(path), str(error))
            return False
        except OSError as error:
            self.summary.file_not_imported(
                str(path), f"could not be read: {error.strerror}"
            )
            return False
        self.summary.files_read += 1
        return False

    def _csv_records(self, path: Path, build) -> Iterable:
        """Yield BUILD(row, location) for each row of a CSV file.

        A row BUILD rejects, or one that repeats an earlier row's identifier,
        is reported and skipped.
        """
        _, rows = csv_format.read_csv(path, self)
        first_lines = {}
        for location, row in rows:
            self.summary.records_used += 1
            try:
                record = build(row, location)
            except RecordError as error:
                self.skip(location, str(error))
                continue
            if self._repeated_in_file(record.source_id, location, first_lines):
                continue
            yield record

    def _read_csv_appointments(self, path: Path) -> None:
        """Read an appointment CSV in the second pass, once every patient is saved."""
        source = self._source(CSV_SOURCE)
        try:
            for record in self._csv_records(path, csv_format.appointment_record):
                self.appointments.append((source, record))
                if len(self.appointments) >= CHUNK_SIZE:
                    self._flush_appointments()
        except (FileRejected, OSError) as error:
            self.summary.file_not_imported(
                str(path), f"changed or vanished between the two passes: {error}"
            )

    def _repeated_in_file(
        self, identifier: str, location: Location, first_lines: dict[str, int]
    ) -> bool:
        """Skip a spreadsheet row whose identifier an earlier row already used.

        Taking the later row would silently replace the earlier one, and
        neither is known to be the right one. ``first_lines`` maps the
        identifiers of the file's rows taken so far to their lines.
        NOTE: it grows with the file's rows, about a hundred bytes each.
        """
        first = first_lines.setdefault(identifier, location.line)
        if first == location.line:
            return False
        self.skip(
            location,
            f"identifier '{identifier}' is already used on line {first} of this "
            "file; this row is skipped. Give each row its own identifier",
        )
        return True

    # --- Second pass ---

    def _read_second_pass(self, path: Path) -> None:
        source = self._source(FHIR_SOURCE)
        try:
            # The first pass reported this file's reading problems already.
            for entry in read_fhir_file(path, _SecondPassProblems(self.progress)):
                kind = entry.resource["resourceType"]
                try:
                    if kind == "Appointment":
                        self._take_appointment(source, entry)
                    elif kind == "Group":
                        self._take_group(source, entry)
                except RecordError as error:
                    self.skip(entry.location, str(error))
                except SHAPE_ERRORS as error:
                    self._shape_error(entry, error)
                self._flush_full_chunks()
        except (FileRejected, OSError) as error:
            self.summary.file_not_imported(
                str(path), f"changed or vanished between the two passes: {error}"
            )

    def _take_appointment(self, source: str, entry: Entry) -> None:
        record = appointment_record(entry.resource, entry.location, entry.full_url)
        record.patient = local_key(record.patient, entry.bundle_urls)
        if record.practitioner is not None:
            record.practitioner = local_key(record.practitioner, entry.bundle_urls)
        self.appointments.append((source, record))

    def _take_group(self, source: str, entry: Entry) -> None:
        name, members = group_members(entry.resource)
        for reference in members:
            if reference.resource_type not in ("Patient", ""):
                continue
            local = local_key(reference, entry.bundle_urls)
            self.members.append((source, name, local, entry.location))

    # --- Saving in chunks ---

    def _run_chunk(
        self,
        items: list,
        save: Callable,
        tally: Tally | None,
        label: str,
        prepare: Callable | None = None,
        save_all: Callable | None = None,
    ) -> bool:
        """Save items in one transaction, each in a savepoint of its own.

        SAVE_ALL, when given, first tries to save the whole chunk at once in
        one savepoint. It returns None for a chunk it cannot take, and a chunk
        it fails on is rolled back to that savepoint and saved item by item.
        Returns False when the whole chunk was rolled back.
        """
        # Counted once the chunk has committed, so a chunk rolled back by an
        # error counts nothing.
        outcomes = Counter()
        try:
            with transaction.atomic():
                context = prepare(items) if prepare else None
                saved_together = self._save_together(items, save_all, context)
                if saved_together is not None:
                    # These chunks write rows and queue no email, so one lost to a
                    # crash of the database server is imported again by the next
                    # run. _finish_run()'s ordinary commit makes it durable before
                    # the summary reports it. A chunk saved record by record may
                    # queue an email-change notice, so its commit waits.
                    commit_without_waiting_for_disk()
                    outcomes.update(outcome for outcome in saved_together if outcome)
                    items = []
                elif save_all is not None:
                    # The attempt may have changed what prepare() loaded.
                    context = prepare(items) if prepare else None
                for item in items:
                    try:
                        with transaction.atomic():
                            outcome = save(item, context)
                    except DatabaseError as error:
                        self._record_not_saved(item, label, error)
                        continue
                    if outcome:
                        outcomes[outcome] += 1
        except DatabaseError as error:
            logger.error(
                "Import run %s: a chunk of %d %s records was rolled back (%s)",
                self.run_id,
                len(items),
                label,
                type(error).__name__,
            )
            for item in items:
                self.skip(_location_of(item), f"{label} not saved: its chunk failed")
            self.store.forget_run_keys()
            return False
        if tally is not None:
            for outcome, count in outcomes.items():
                setattr(tally, outcome, getattr(tally, outcome) + count)
        self.progress.tick()
        return True

    def _save_together(
        self, items: list, save_all: Callable | None, context
    ) -> list[str | None] | None:
        """Return the outcomes of saving ITEMS at once, or None to save each alone."""
        if save_all is None:
            return None
        try:
            with transaction.atomic():
                return save_all(items, context)
        except DatabaseError as error:
            logger.info(
                "Import run %s: saving %d records at once failed (%s), so each "
                "is saved alone",
                self.run_id,
                len(items),
                type(error).__name__,
            )
            return None

    def _record_not_saved(self, item, label: str, error: DatabaseError) -> None:
        logger.warning(
            "Import run %s: a %s record was not saved (%s)",
            self.run_id,
            label,
            type(error).__name__,
        )
        self.skip(
            _location_of(item),
            f"{label} could not be saved ({type(error).__name__}); nothing of it "
            "was stored",
        )

    def _flush_practitioners(self) -> None:
        items, self.practitioners = self.practitioners, []
        if items:
            self._run_chunk(
                items,
                self.store.save_practitioner,
                self.summary.practitioners,
                "Practitioner",
            )

    def _flush_patients(self) -> None:
        items, self.patients = self.patients, []
        if not items:
            return
        saved = self._run_chunk(
            items,
            self.store.save_patient,
            self.summary.patients,
            "Patient",
            self.store.prepare_patients,
            self.store.save_new_patients,
        )
        if not saved:
            return
        self.scratch.save_general_practitioners(
            [
                (
                    record.pk,
                    record.general_practitioner,
                    record.location,
                    record.provider_at_insert,
                )
                for _, record in items
                if record.pk is not None and record.general_practitioner is not None
            ]
        )

    def _flush_appointments(self) -> None:
        items, self.appointments = self.appointments, []
        if items:
            self._run_chunk(
                items,
                self.store.save_appointment,
                self.summary.appointments,
                "Appointment",
                self.store.prepare_appointments,
                self.store.save_appointments_together,
            )

    def _flush_members(self) -> None:
        items, self.members = self.members, []
        if not items:
            return
        try:
            with transaction.atomic():
                self.store.add_group_tags(items)
        except DatabaseError as error:
            logger.error(
                "Import run %s: Group tags were not saved (%s)",
                self.run_id,
                type(error).__name__,
            )
            for _, _, _, location in items:
                self.skip(location, "Group tag not saved: its chunk failed")
            self.store.forget_run_keys()
        self.progress.tick()

    # --- Primary providers ---

    def _assign_providers(self) -> None:
        """Set primary providers: generalPractitioner first, else Encounters."""
        resolve = self.store.practitioners.resolve
        for chunk in self.scratch.general_practitioners(CHUNK_SIZE):
            # Patient pk -> its provider, or None to take away the one that
            # the patient was inserted with.
            wanted, at_insert = {}, {}
            for pk, reference, location, provider_at_insert in chunk:
                practitioner = resolve(reference)
                if practitioner is None:
                    self.summary.dangle(
                        location,
                        str(reference),
                        "Patient.generalPractitioner not found",
                    )
                if practitioner is not None or provider_at_insert is not None:
                    wanted[pk] = practitioner
                if provider_at_insert is not None:
                    at_insert[pk] = provider_at_insert
            self.scratch.mark_chosen(
                [pk for pk, practitioner in wanted.items() if practitioner is not None]
            )
            self._save_providers(wanted, at_insert)

        for chunk in self.scratch.encounter_candidates(CHUNK_SIZE):
            patients = resolve_patients(
                (key for key, _ in chunk), self.store.patient_aliases
            )
            chosen = self.scratch.chosen_among(list(patients.values()))
            from_encounters = {}
            for key, candidate in chunk:
                pk = patients.get(key)
                if pk is None:
                    location = candidate.latest_location or candidate.checkup_location
                    self.summary.dangle(location, str(key[1]), "Encounter.subject")
                elif pk not in chosen:
                    practitioner = self._provider_from(candidate)
                    if practitioner is not None:
                        from_encounters[pk] = practitioner
            self._save_providers(from_encounters)

    def _provider_from(self, candidate: Candidate) -> int | None:
        resolve = self.store.practitioners.resolve
        if candidate.checkup_performer is not None:
            practitioner = resolve(candidate.checkup_performer)
            if practitioner is not None:
                return practitioner
            self.summary.dangle(
                candidate.checkup_location,
                str(candidate.checkup_performer),
                "Encounter.participant of the latest check-up",
            )
        if candidate.latest_participant in (None, candidate.checkup_performer):
            return None
        practitioner = resolve(candidate.latest_participant)
        if practitioner is None:
            self.summary.dangle(
                candidate.latest_location,
                str(candidate.latest_participant),
                "Encounter.participant of the latest encounter",
            )
        return practitioner

    def _save_providers(
        self, chosen: dict[int, int | None], at_insert: dict[int, int] | None = None
    ) -> None:
        items = list(chosen.items())
        for start in range(0, len(items), CHUNK_SIZE):
            with transaction.atomic():
                self.store.set_providers(
                    dict(items[start : start + CHUNK_SIZE]), at_insert
                )
            self.progress.tick()


class _SecondPassProblems(Problems):
    """Discards reading problems, which the first pass reported, but counts bytes."""

    def __init__(self, progress: ProgressTracker):
        self.progress = progress

    def open_file(self, path: Path) -> BinaryIO:
        return self.progress.open(path)

    def record_read(self) -> None:
        self.progress.tick()


def _link_problem(path: Path) -> str | None:
    """Return why a symbolic link cannot be followed.

    Return None for a link that can be followed and for a path that is no link.
    """
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as error:
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if error.errno == errno.ELOOP:
            return (
                f"is a link loop: it points to {target}, which leads back to it; "
                "fix or remove the link"
            )
        if error.errno == errno.ENOENT:
            return f"is a broken link: its target {target} does not exist"
        return f"is a link that cannot be followed ({error.strerror})"
    return None


def _practitioners_first(paths: list[Path]) -> list[Path]:
    """Move the NDJSON files that start with a Practitioner to the front.

    Bulk Data exports put each resource type in its own file, and
    Patient.ndjson sorts before Practitioner.ndjson. Read the other way
    round, most generalPractitioner references resolve when the patient is
    inserted, so the end of the run need not update every patient again.
    The files keep their order otherwise.
    """
    practitioners = {path for path in paths if _starts_with_practitioner(path)}
    return [path for path in paths if path in practitioners] + [
        path for path in paths if path not in practitioners
    ]


def _starts_with_practitioner(path: Path) -> bool:
    if path.suffix.lower() not in NDJSON_SUFFIXES:
        return False
    try:
        with path.open("rb") as handle:
            # A longer first line is left to the first pass to read.
            line = handle.readline(PEEK_BYTES)
    except OSError:
        # The first pass reports the file.
        return False
    try:
        resource = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(resource, dict) and resource.get("resourceType") in (
        "Practitioner",
        "PractitionerRole",
    )


def _repeated_folder(directory: Path, first: Path) -> str:
    if first == directory or first in directory.parents:
        return (
            f"is a link loop: it leads back to {first}, a folder above it, "
            "which is read already; not read again"
        )
    return f"is a link to the same folder as {first}, which is read already"


def _location_of(item) -> Location:
    record = item[-1] if isinstance(item, tuple) else item
    return record.location
