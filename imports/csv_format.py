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
    parse_date,
    parse_datetime,
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

    birth = row.get("birth_date", "").strip()
    if not birth:
        record.warnings.append(
            "birth_date is empty; the patient cannot pass the date-of-birth check"
        )
    else:
        parsed = parse_date(birth, "birth_date")
        if parsed.is_full:
            record.birth_date = parsed.first_day
        else:
            record.warnings.append(
                "birth_date has only a year or month; the patient is imported "
                "without a birth date and cannot pass the date-of-birth check"
            )

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


class _Utf8Lines:
    """Decode a file line by line, so one bad line does not lose the others.

    Lines that are not UTF-8 go to ``problems.skip``. ``first_of_row`` is the
    number of the first line handed out since it was last reset, which is
    where the csv module's next row starts.
    """

    def __init__(self, handle, path: Path, problems: Problems):
        self.handle = handle
        self.path = str(path)
        self.problems = problems
        self.number = 0
        self.first_of_row: int | None = None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while True:
            raw = next(self.handle)
            self.number += 1
            try:
                text = raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
            except UnicodeDecodeError:
                if self.number == 1:
                    raise FileRejected(
                        "the header is not valid UTF-8; save the file as CSV UTF-8."
                    ) from None
                self.problems.skip(
                    Location(self.path, line=self.number),
                    "line is not valid UTF-8; save the file as CSV UTF-8",
                )
                continue
            if self.first_of_row is None:
                self.first_of_row = self.number
            return text


def csv_kind(path: Path) -> str:
    """Return "patients" or "appointments" from the header, or raise FileRejected."""
    with path.open("rb") as handle:
        header = next(csv.reader(_Utf8Lines(handle, path, Problems())), None)
    if not header:
        raise FileRejected("empty file, no header row.")
    return _kind_of([_column_name(name) for name in header])


def read_csv(
    path: Path, problems: Problems
) -> tuple[str, Iterator[tuple[Location, dict]]]:
    """Return the file's kind ("patients" or "appointments") and its rows.

    Each row is a dict keyed by normalized column name, for patient_record or
    appointment_record. Raises FileRejected when the header is missing or
    matches neither format. Rows that cannot be read go to ``problems.skip``
    with their line number.
    """
    handle = path.open("rb")
    try:
        lines = _Utf8Lines(handle, path, problems)
        reader = csv.reader(lines)
        header = next(reader, None)
        if not header:
            raise FileRejected("empty file, no header row.")
        columns = [_column_name(name) for name in header]
        kind = _kind_of(columns)
    except csv.Error as error:
        handle.close()
        raise FileRejected(f"the header is not valid CSV ({error}).") from None
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
            except csv.Error as error:
                location = Location(path, line=lines.first_of_row or lines.number)
                problems.skip(location, f"not valid CSV ({error})")
                continue
            location = Location(path, line=lines.first_of_row or lines.number)
            if not any(value.strip() for value in values):
                continue
            if len(values) > len(columns):
                problems.skip(
                    location,
                    f"row has {len(values)} fields but the header has {len(columns)}",
                )
                continue
            yield location, dict(zip(columns, values, strict=False))
