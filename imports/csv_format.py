"""Read patient and appointment spreadsheets (CSV with a header row).

Which of the two a file is follows from its header: a patient_identifier
column means appointments, a family_name column means patients. Column names
are matched without regard to case, surrounding spaces, or spaces and hyphens
in place of underscores. Files are read as UTF-8, with or without the byte
order mark that spreadsheet programs write.
"""

import csv
from collections.abc import Iterator
from pathlib import Path

from imports.fhir import FileRejected, Location, Problems
from imports.records import (
    APPOINTMENT_STATUSES,
    AppointmentRecord,
    PatientRecord,
    RecordError,
    check_names,
    parse_date,
    parse_datetime,
    read_birth_date,
)

PATIENT_REQUIRED = ("identifier", "family_name", "given_names", "birth_date")
PATIENT_OPTIONAL = (
    "identifier_system",
    "email",
    "primary_provider",
    "primary_provider_npi",
    "tags",
    "deceased_date",
    "active",
)
APPOINTMENT_REQUIRED = ("identifier", "patient_identifier", "status", "start")
APPOINTMENT_OPTIONAL = ("end", "practitioner", "practitioner_npi")

TAG_SEPARATOR = ";"
# A quoted field may contain line breaks, but a row that runs over more lines
# than this is taken for a quote that was never closed.
MAX_LINES_PER_ROW = 100
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def _column_name(header: str) -> str:
    return header.strip().lower().replace(" ", "_").replace("-", "_")


def _kind_of(columns: list[str]) -> str:
    if "patient_identifier" in columns:
        kind, required = "appointments", APPOINTMENT_REQUIRED
    elif "family_name" in columns:
        kind, required = "patients", PATIENT_REQUIRED
    else:
        raise FileRejected(
            "the header matches neither CSV format. A patient file needs "
            f"the columns {', '.join(PATIENT_REQUIRED)}; an appointment file needs "
            f"{', '.join(APPOINTMENT_REQUIRED)}."
        )
    missing = [name for name in required if name not in columns]
    if missing:
        raise FileRejected(
            f"the {kind} header lacks the column(s) {', '.join(missing)}."
        )
    return kind


def _flag(value: str, column: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE or text == "":
        return True
    if text in _FALSE:
        return False
    raise RecordError(f"{column} '{value}' is not true or false")


def patient_record(row: dict, location: Location) -> PatientRecord:
    identifier = row.get("identifier", "").strip()
    if not identifier:
        raise RecordError("identifier is missing; every row needs one")
    record = PatientRecord(source_id=identifier[:200], location=location)
    record.family_name = row.get("family_name", "").strip()
    record.given_names = row.get("given_names", "").strip()
    check_names(record, "family_name", "given_names")
    read_birth_date(row.get("birth_date", ""), "birth_date", record)

    record.email = row.get("email", "").strip()
    record.active = _flag(row.get("active", ""), "active")
    died = row.get("deceased_date", "").strip()
    if died:
        record.deceased = True
        parsed = parse_date(died, "deceased_date")
        if parsed.is_full:
            record.deceased_at = parse_datetime(died, "deceased_date")

    system = row.get("identifier_system", "").strip()
    if system:
        record.identifiers = [(system[:300], identifier[:200])]
    record.tags = [
        tag.strip()[:200]
        for tag in row.get("tags", "").split(TAG_SEPARATOR)
        if tag.strip()
    ]
    record.provider_name = row.get("primary_provider", "").strip()
    record.provider_npi = row.get("primary_provider_npi", "").strip()
    return record


def appointment_record(row: dict, location: Location) -> AppointmentRecord:
    identifier = row.get("identifier", "").strip()
    if not identifier:
        raise RecordError("identifier is missing; every row needs one")
    patient = row.get("patient_identifier", "").strip()
    if not patient:
        raise RecordError("patient_identifier is missing; every row needs one")
    status = row.get("status", "").strip().lower() or "booked"
    if status not in APPOINTMENT_STATUSES:
        raise RecordError(
            f"status '{status}' is not one of {', '.join(sorted(APPOINTMENT_STATUSES))}"
        )

    record = AppointmentRecord(
        source_id=identifier[:200],
        location=location,
        status=status,
        patient_identifier=patient,
        practitioner_npi=row.get("practitioner_npi", "").strip(),
        practitioner_name=row.get("practitioner", "").strip(),
    )
    if row.get("start", "").strip():
        record.start = parse_datetime(row["start"], "start")
    if row.get("end", "").strip():
        record.end = parse_datetime(row["end"], "end")
    return record


class _RowTooLong(Exception):
    """A row runs over more than MAX_LINES_PER_ROW lines."""


class _Utf8Lines:
    """Decode a file line by line, so one bad line does not lose the others.

    Lines that are not UTF-8 go to ``problems.skip``. ``first_of_row`` is the
    number of the first line handed out since it was last reset, which is
    where the csv module's next row starts. ``after_first`` is the byte offset
    just after that line, where ``restart_after_first`` goes back to when the
    row turns out to be broken.
    """

    def __init__(self, handle, path: Path, problems: Problems):
        self.handle = handle
        self.path = str(path)
        self.problems = problems
        self.number = 0
        self.first_of_row: int | None = None
        self.after_first = 0
        # Bad lines already reported, which a restart may read again.
        self.reported: set[int] = set()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while True:
            if (
                self.first_of_row is not None
                and self.number - self.first_of_row + 1 >= MAX_LINES_PER_ROW
            ):
                raise _RowTooLong
            raw = next(self.handle)
            self.number += 1
            try:
                text = raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
            except UnicodeDecodeError:
                if self.number == 1:
                    raise FileRejected(
                        "the header is not valid UTF-8; save the file as CSV UTF-8."
                    ) from None
                if self.number not in self.reported:
                    self.reported.add(self.number)
                    self.problems.record_read()
                    self.problems.skip(
                        Location(self.path, line=self.number),
                        "line is not valid UTF-8; save the file as CSV UTF-8",
                    )
                continue
            if self.first_of_row is None:
                self.first_of_row = self.number
                self.after_first = self.handle.tell()
            return text

    def restart_after_first(self) -> None:
        """Read on from the line after the current row's first line."""
        self.handle.seek(self.after_first)
        self.number = self.first_of_row


def _read_header(reader) -> list[str]:
    """Return the normalized column names, or raise FileRejected."""
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise FileRejected(f"the header is not valid CSV ({error}).") from None
    except _RowTooLong:
        raise FileRejected(
            f"the header is not valid CSV: a quote in it is not closed within "
            f"{MAX_LINES_PER_ROW} lines."
        ) from None
    if not header:
        raise FileRejected("empty file, no header row.")
    return [_column_name(name) for name in header]


def csv_kind(path: Path) -> str:
    """Return "patients" or "appointments" from the header, or raise FileRejected."""
    with path.open("rb") as handle:
        lines = _Utf8Lines(handle, path, Problems())
        return _kind_of(_read_header(csv.reader(lines, strict=True)))


def read_csv(
    path: Path, problems: Problems
) -> tuple[str, Iterator[tuple[Location, dict]]]:
    """Return the file's kind ("patients" or "appointments") and its rows.

    Each row is a dict keyed by normalized column name, for patient_record or
    appointment_record. Raises FileRejected when the header is missing or
    matches neither format. Rows that cannot be read go to ``problems.skip``
    with their line number: rows that are not valid CSV, and rows with more or
    fewer fields than the header.
    """
    handle = problems.open_file(path)
    try:
        lines = _Utf8Lines(handle, path, problems)
        reader = csv.reader(lines, strict=True)
        columns = _read_header(reader)
        kind = _kind_of(columns)
    except FileRejected:
        handle.close()
        raise

    known = set(PATIENT_REQUIRED + PATIENT_OPTIONAL)
    if kind == "appointments":
        known = set(APPOINTMENT_REQUIRED + APPOINTMENT_OPTIONAL)
    unused = [name for name in columns if name and name not in known]
    if unused:
        problems.warn(Location(str(path), line=1), f"columns not used: {unused}")
    return kind, _rows(handle, lines, reader, columns, str(path), problems)


def _rows(handle, lines, reader, columns, path, problems) -> Iterator:
    with handle:
        while True:
            lines.first_of_row = None
            try:
                values = next(reader)
            except StopIteration:
                return
            except (csv.Error, _RowTooLong) as error:
                reader = _skip_broken_row(lines, error, path, problems)
                continue
            location = Location(path, line=lines.first_of_row or lines.number)
            if not any(value.strip() for value in values):
                continue
            problems.record_read()
            if len(values) != len(columns):
                problems.skip(
                    location,
                    f"row has {len(values)} fields but the header has {len(columns)}",
                )
                continue
            yield location, dict(zip(columns, values, strict=True))


def _skip_broken_row(lines, error, path, problems):
    """Report a row the csv module could not read, and return a reader to go on.

    A row that ran over several lines before it failed most likely has a
    quote that is never closed. The lines after its first line are then read
    again as rows of their own, so one stray quote loses only one row.
    """
    first = lines.first_of_row or lines.number
    if isinstance(error, _RowTooLong):
        reason = (
            f"a quote opened in this row is not closed within {MAX_LINES_PER_ROW} "
            "lines; the row is skipped and the next lines are read as rows"
        )
    elif lines.number > first:
        reason = (
            f"not valid CSV ({error}) in the row from this line to line "
            f"{lines.number}, probably a quote that is not closed; the row is "
            "skipped and the next lines are read as rows"
        )
    else:
        reason = f"not valid CSV ({error})"
    problems.record_read()
    problems.skip(Location(path, line=first), reason)
    if lines.number > first:
        lines.restart_after_first()
    return csv.reader(lines, strict=True)
