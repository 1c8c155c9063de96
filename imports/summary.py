"""The summary an import prints: counts, and every record it could not use."""

from collections import Counter
from dataclasses import dataclass, field

from imports.fhir import Location

# At most this many problems are listed per file and kind (skipped, warning,
# dangling); the rest are counted. A damaged multi-gigabyte file would
# otherwise produce a summary as large as itself.
MAX_LISTED_PER_FILE = 1000


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


@dataclass
class Summary:
    source: str = ""
    files_read: int = 0
    files_not_imported: list[dict] = field(default_factory=list)
    fhir_versions: Counter = field(default_factory=Counter)
    # Every bundle entry, NDJSON line and CSV row looked at, used or skipped
    # (blank lines and rows are not records).
    records_read: int = 0
    # Records that the readers passed on as resources or rows, valid or not.
    records_used: int = 0
    patients: Tally = field(default_factory=Tally)
    practitioners: Tally = field(default_factory=Tally)
    appointments: Tally = field(default_factory=Tally)
    tags_created: int = 0
    tags_added: int = 0
    # Patients whose primary provider was set or changed: by a spreadsheet
    # row, or from generalPractitioner or Encounters after all files were read.
    providers_set: int = 0
    email_changes: int = 0
    invitations_revoked: int = 0
    # Resources of types the import does not use, by resourceType.
    other_resources: Counter = field(default_factory=Counter)
    skipped: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    dangling: list[dict] = field(default_factory=list)
    skipped_count: int = 0
    warning_count: int = 0
    dangling_count: int = 0
    # Why the run stopped before its end, if it did.
    failed: str = ""
    _listed: Counter = field(default_factory=Counter)

    def _add(self, kind: str, items: list, location: Location | None, **fields):
        path = location.path if location else ""
        self._listed[(kind, path)] += 1
        if self._listed[(kind, path)] <= MAX_LISTED_PER_FILE:
            items.append({**(location.as_dict() if location else {}), **fields})

    def skip(self, location: Location, reason: str) -> None:
        self.skipped_count += 1
        self._add("skipped", self.skipped, location, reason=reason)

    def warn(self, location: Location, reason: str) -> None:
        self.warning_count += 1
        self._add("warning", self.warnings, location, reason=reason)

    def dangle(self, location: Location | None, reference: str, context: str):
        self.dangling_count += 1
        self._add(
            "dangling", self.dangling, location, reference=reference, context=context
        )

    def file_not_imported(self, path: str, reason: str) -> None:
        self.files_not_imported.append({"file": path, "reason": reason})

    @property
    def nothing_read(self) -> bool:
        """Whether no file yielded a resource or a row, readable or not."""
        return self.records_used == 0

    def counts(self) -> dict:
        """Return the numbers only, as kept in the import's audit record."""
        return {
            "files_read": self.files_read,
            "files_not_imported": len(self.files_not_imported),
            "records_read": self.records_read,
            "patients": self.patients.as_dict(),
            "practitioners": self.practitioners.as_dict(),
            "appointments": self.appointments.as_dict(),
            "tags_created": self.tags_created,
            "tags_added": self.tags_added,
            "providers_set": self.providers_set,
            "email_changes": self.email_changes,
            "invitations_revoked": self.invitations_revoked,
            "skipped": self.skipped_count,
            "warnings": self.warning_count,
            "dangling_references": self.dangling_count,
        }

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "failed": self.failed,
            **self.counts(),
            "fhir_versions": dict(sorted(self.fhir_versions.items())),
            "other_resources": dict(sorted(self.other_resources.items())),
            "files_not_imported_list": self.files_not_imported,
            "skipped_records": self.skipped,
            "warning_list": self.warnings,
            "dangling_reference_list": self.dangling,
        }

    def as_text(self) -> str:
        lines = [f"Source: {self.source}"]
        if self.failed:
            lines.append(f"Import stopped early: {self.failed}")
        lines += [
            f"Files read: {self.files_read}"
            f" ({len(self.files_not_imported)} not imported)",
        ]
        if self.fhir_versions:
            versions = ", ".join(
                f"{name} {count}" for name, count in sorted(self.fhir_versions.items())
            )
            lines.append(f"FHIR versions: {versions}")
        lines += [
            f"Records read: {self.records_read}",
            _tally_line("Patients", self.patients),
            _tally_line("Practitioners", self.practitioners),
            _tally_line("Appointments", self.appointments),
            f"Tags: {self.tags_created} created, {self.tags_added} added to patients",
            f"Primary providers set or changed: {self.providers_set}",
            f"Email address changes: {self.email_changes}"
            f" ({self.invitations_revoked} pending invitations revoked)",
            f"Skipped records: {self.skipped_count}",
            f"Warnings: {self.warning_count}",
            f"Dangling references: {self.dangling_count}",
        ]
        if self.other_resources:
            others = ", ".join(
                f"{name} {count}"
                for name, count in sorted(self.other_resources.items())
            )
            lines.append(f"Resources the import does not use: {others}")

        lines += _section("Files not imported", self.files_not_imported, "reason")
        lines += _section("Skipped records", self.skipped, "reason", self.skipped_count)
        lines += _section("Warnings", self.warnings, "reason", self.warning_count)
        lines += _section(
            "Dangling references", self.dangling, "context", self.dangling_count
        )
        return "\n".join(lines)


def _tally_line(label: str, tally: Tally) -> str:
    return (
        f"{label}: {tally.created} created, {tally.updated} updated,"
        f" {tally.unchanged} unchanged"
    )


def place_text(item: dict) -> str:
    """Return the file and the line or entry of a problem in the summary's lists."""
    if "line" in item:
        return f"{item['file']}, line {item['line']}"
    if "entry" in item:
        return f"{item['file']}, entry {item['entry']}"
    return item.get("file", "")


def _section(title: str, items: list, key: str, total: int | None = None) -> list:
    if not items:
        return []
    lines = ["", f"{title}:"]
    for item in items:
        text = item[key]
        if "reference" in item:
            text = f"{item['reference']} ({text})"
        place = place_text(item)
        lines.append(f"  {place}: {text}" if place else f"  {text}")
    if total is not None and total > len(items):
        lines.append(f"  ... and {total - len(items)} more not listed")
    return lines
