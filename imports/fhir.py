"""Read FHIR files into resources with their locations, and parse references.

Supported inputs: a JSON document (a Bundle of any type, or one bare
resource) and NDJSON (one resource per line, as in Bulk Data exports). NDJSON
is read line by line, so a file of any size is never held in memory.
"""

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

NDJSON_SUFFIXES = (".ndjson", ".jsonl")
JSON_SUFFIXES = (".json",)

# Reason texts longer than this are cut, so one bad line cannot flood the summary.
MAX_DETAIL_CHARS = 200

# Reasons for text that json.loads rejects although it may be well-formed.
# Python's parser stops at arrays and objects nested about as deep as the
# recursion limit (1000 by default), and at integers longer than
# sys.get_int_max_str_digits() (4300 digits by default).
TOO_DEEP = (
    "arrays or objects are nested too deeply to read; no FHIR resource is "
    "nested like this, so the data is damaged or is not FHIR"
)


def _too_long_number() -> str:
    return (
        f"a number has more than {sys.get_int_max_str_digits()} digits, "
        "which cannot be read"
    )


@dataclass(frozen=True)
class Location:
    """The place of a record: its file, and its line (NDJSON, CSV) or bundle entry."""

    path: str
    line: int | None = None
    entry: int | None = None

    def __str__(self):
        if self.line is not None:
            return f"{self.path}, line {self.line}"
        if self.entry is not None:
            return f"{self.path}, entry {self.entry}"
        return self.path

    def as_dict(self) -> dict:
        place = {"file": self.path}
        if self.line is not None:
            place["line"] = self.line
        if self.entry is not None:
            place["entry"] = self.entry
        return place


@dataclass
class Entry:
    """One resource read from a file, with the bundle's fullUrl map if any."""

    resource: dict
    location: Location
    full_url: str = ""
    # fullUrl -> (resourceType, id) for every entry of the same bundle; empty
    # for NDJSON and bare resources.
    bundle_urls: dict = field(default_factory=dict)


class FileRejected(Exception):
    """The whole file cannot be imported, for the reason in the message."""


# --- FHIR versions -----------------------------------------------------------

ACCEPTED_VERSIONS = {"STU3", "R4", "R4B"}

_VERSION_BY_NUMBER = {
    "1.0": "DSTU2",
    "3.0": "STU3",
    "4.0": "R4",
    "4.3": "R4B",
    "5.0": "R5",
    "6.0": "R6",
}
_PROFILE_RELEASE = re.compile(r"hl7\.org/fhir/(DSTU2|STU3|R4B|R4|R5|R6|\d+\.\d+)/")
_PROFILE_PIN = re.compile(r"\|(\d+\.\d+)(?:\.\d+)?$")
# Argonaut Data Query profiles were written for DSTU2 only.
_ARGONAUT = "fhir.org/guides/argonaut/"

# Resource types that exist only in DSTU2, or were added in R5.
_DSTU2_TYPES = {
    "MedicationOrder",
    "DiagnosticOrder",
    "Order",
    "OrderResponse",
    "DeviceUseRequest",
}
_R5_TYPES = {
    "ActorDefinition",
    "ArtifactAssessment",
    "ConditionDefinition",
    "DeviceDispense",
    "DeviceUsage",
    "EncounterHistory",
    "FormularyItem",
    "GenomicStudy",
    "ImagingSelection",
    "InventoryItem",
    "NutritionIntake",
    "Permission",
    "Requirements",
    "TestPlan",
    "Transport",
}


def version_name(number: str) -> str:
    """Return the release name of a version number such as "4.0.1"."""
    major_minor = ".".join(number.strip().split(".")[:2])
    return _VERSION_BY_NUMBER.get(major_minor, f"FHIR {number.strip()}")


def _explicit_version(resource: dict) -> str | None:
    stated = resource.get("fhirVersion")
    if isinstance(stated, str) and stated.strip():
        return version_name(stated)

    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    for profile in profiles if isinstance(profiles, list) else []:
        if not isinstance(profile, str):
            continue
        if _ARGONAUT in profile:
            return "DSTU2"
        release = _PROFILE_RELEASE.search(profile)
        if release:
            text = release.group(1)
            return version_name(text) if text[0].isdigit() else text
        pin = _PROFILE_PIN.search(profile)
        if pin and "hl7.org/fhir/StructureDefinition/" in profile:
            return version_name(pin.group(1))
    return None


def _shape_version(resource: dict) -> str | None:
    """Recognize DSTU2 and R5 by elements whose shape is unique to them.

    STU3 is not guessed from shapes: the Synthea "R4" bundles of 2019 carry
    STU3-style Condition.clinicalStatus codes, so no shape distinguishes the
    two reliably. A file without a stated version is read as R4, which is
    safe because STU3 and R4 share the Patient and Practitioner fields used.
    """
    kind = resource.get("resourceType")
    if kind in _DSTU2_TYPES:
        return "DSTU2"
    if kind in _R5_TYPES:
        return "R5"
    if kind == "Patient" and "careProvider" in resource:
        return "DSTU2"
    if kind in ("Encounter", "Condition") and "patient" in resource:
        return "DSTU2"
    if kind == "Encounter" and (
        isinstance(resource.get("class"), list) or "actualPeriod" in resource
    ):
        return "R5"
    if kind == "Appointment" and "subject" in resource:
        return "R5"
    return None


def detect_version(resource: dict) -> tuple[str | None, bool]:
    """Return (version, explicit) for one resource; version is None if unknown."""
    explicit = _explicit_version(resource)
    if explicit:
        return explicit, True
    return _shape_version(resource), False


def rejection_message(version: str) -> str:
    return (
        f"FHIR {version} is not supported. Export the data as FHIR R4 "
        "(STU3 is also accepted) and import it again."
    )


class _VersionVote:
    """Collect version hints over a file and decide what it is."""

    def __init__(self):
        self.rejected: str | None = None
        self.accepted: str | None = None

    def add(self, resource: dict) -> None:
        version, explicit = detect_version(resource)
        if version is None:
            return
        if version not in ACCEPTED_VERSIONS:
            self.rejected = self.rejected or version
        elif explicit or self.accepted is None:
            self.accepted = version

    @property
    def label(self) -> str:
        return self.accepted or "not stated (read as R4)"


# --- References ----------------------------------------------------------------

_LITERAL = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[^/]+)?$"
)


@dataclass(frozen=True)
class Reference:
    """A parsed FHIR Reference.

    kind is "id" (Type/id, relative or absolute), "url" (a fullUrl such as
    urn:uuid:..., found through the bundle's entries), "identifier" (a
    conditional reference or an identifier-only one) or "unsupported".
    """

    kind: str
    resource_type: str = ""
    id: str = ""
    url: str = ""
    system: str = ""
    value: str = ""

    def __str__(self):
        if self.kind == "id":
            return self.url or f"{self.resource_type}/{self.id}"
        if self.kind == "identifier":
            system = f"{self.system}|" if self.system else ""
            if not self.resource_type:
                # An identifier-only reference names no resource type.
                return f"identifier {system}{self.value}"
            return f"{self.resource_type}?identifier={system}{self.value}"
        return self.url


def _identifier_reference(resource_type: str, token: str) -> Reference:
    system, bar, value = token.rpartition("|")
    if not bar:
        system, value = "", token
    return Reference(
        "identifier", resource_type=resource_type, system=system, value=value
    )


def parse_reference_text(text: str, resource_type: str = "") -> Reference:
    """Parse the reference string of a Reference element."""
    text = text.strip()
    if text.startswith(("urn:uuid:", "urn:oid:")):
        return Reference("url", resource_type=resource_type, url=text)

    if "?" in text:
        path, _, query = text.partition("?")
        kind = path.rstrip("/").rsplit("/", 1)[-1] or resource_type
        # Only percent-decoding: a "+" in an identifier value is a plus sign.
        params = [part.partition("=") for part in query.split("&") if part]
        if len(params) == 1 and params[0][0] == "identifier" and params[0][2]:
            return _identifier_reference(kind, unquote(params[0][2]))
        return Reference("unsupported", resource_type=kind, url=text)

    if text.startswith("#"):
        return Reference("unsupported", resource_type=resource_type, url=text)

    literal = _LITERAL.search(text)
    if literal:
        absolute = text if "://" in text else ""
        return Reference(
            "id", resource_type=literal["type"], id=literal["id"], url=absolute
        )
    return Reference("url", resource_type=resource_type, url=text)


def parse_reference(element) -> Reference | None:
    """Parse a Reference element ({"reference": ...} or {"identifier": ...})."""
    if not isinstance(element, dict):
        return None
    resource_type = element.get("type") if isinstance(element.get("type"), str) else ""
    text = element.get("reference")
    if isinstance(text, str) and text.strip():
        return parse_reference_text(text, resource_type)

    identifier = element.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        return Reference(
            "identifier",
            resource_type=resource_type,
            system=str(identifier.get("system") or ""),
            value=identifier["value"],
        )
    return None


def local_key(reference: Reference, bundle_urls: dict) -> Reference:
    """Turn a fullUrl reference into a Type/id one using the bundle's entries."""
    if reference.kind not in ("url", "id") or not bundle_urls:
        return reference
    target = bundle_urls.get(reference.url) if reference.url else None
    if target is None:
        return reference
    return Reference("id", resource_type=target[0], id=target[1])


def resource_id(resource: dict, full_url: str = "") -> str:
    """Return the resource's id, else the id its bundle fullUrl gives it.

    Transaction bundles often create resources without an id and name them
    only by a urn:uuid fullUrl. That uuid stays the same when the same file is
    imported again, so it serves as the id.
    """
    value = resource.get("id")
    if isinstance(value, str) and value.strip():
        return value.strip()
    if full_url.startswith("urn:uuid:"):
        return full_url.removeprefix("urn:uuid:")
    literal = _LITERAL.search(full_url) if full_url else None
    if literal and literal["type"] == resource.get("resourceType"):
        return literal["id"]
    return ""


# --- Reading files ---------------------------------------------------------------

# FHIR resource type names are capitalized ASCII words such as "Patient".
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def resource_type_problem(resource) -> str | None:
    """Return why a JSON value is not a FHIR resource, or None if it is one."""
    if not isinstance(resource, dict):
        return "not a JSON object"
    kind = resource.get("resourceType")
    if kind is None:
        return "not a FHIR resource (no resourceType), e.g. a bulk-export log line"
    if isinstance(kind, list | dict):
        # Described, not dumped, because json.dumps fails on deep nesting.
        shape = "an array" if isinstance(kind, list) else "an object"
        return f"resourceType is {shape}, not a FHIR resource type"
    if not isinstance(kind, str) or not _RESOURCE_TYPE.match(kind):
        return f"resourceType {json.dumps(kind)[:60]} is not a FHIR resource type"
    return None


def _short(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."


def describe_outcome(resource: dict) -> str:
    """Summarize an OperationOutcome (export errors) in one line."""
    parts = []
    for issue in resource.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        text = issue.get("diagnostics") or details.get("text") or ""
        parts.append(f"{issue.get('severity', '?')} {issue.get('code', '?')} {text}")
    summary = "; ".join(part.strip() for part in parts) or "no issues listed"
    return _short(f"OperationOutcome from the exporter: {summary}")


class Problems:
    """Receives what the readers find besides resources, and opens their files.

    This base class discards everything, and the Importer records it. The
    Importer also opens files through its progress tracker, which follows how
    far each file has been read.
    """

    def open_file(self, path: Path) -> BinaryIO:
        """Open a file to read, in binary mode."""
        return path.open("rb")

    def skip(self, location: Location, reason: str) -> None:
        """Note a record that was not imported, and why."""

    def warn(self, location: Location, reason: str) -> None:
        """Note a record that was imported without part of its data."""

    def file_version(self, label: str) -> None:
        """Note the FHIR version a file was read as."""

    def record_read(self) -> None:
        """Note one record (entry, line or row) looked at, used or skipped.

        Not called for the entries of a file rejected as a whole.
        """


class _DeferredSkips(Problems):
    """Skipped entries of one document, kept until the file as a whole is accepted."""

    def __init__(self):
        self.skipped = []

    def skip(self, location: Location, reason: str) -> None:
        self.skipped.append((location, reason))


def _bundle_entries(document: dict, path: str, problems: Problems) -> Iterator[Entry]:
    entries = document.get("entry") or []
    if not isinstance(entries, list):
        raise FileRejected("Bundle.entry is not a list.")

    urls = {}
    for item in entries:
        resource = item.get("resource") if isinstance(item, dict) else None
        if isinstance(resource, dict) and isinstance(item.get("fullUrl"), str):
            kind = resource.get("resourceType")
            ident = resource_id(resource, item["fullUrl"])
            if kind and ident:
                urls[item["fullUrl"]] = (kind, ident)

    for number, item in enumerate(entries, start=1):
        location = Location(path, entry=number)
        resource = item.get("resource") if isinstance(item, dict) else None
        if not isinstance(resource, dict):
            request = item.get("request") if isinstance(item, dict) else None
            if isinstance(request, dict):
                method = request.get("method", "?")
                target = request.get("url", "?")
                problems.skip(
                    location,
                    f"entry has no resource (a {method} request for {target}); "
                    "the import only reads resources",
                )
            else:
                problems.skip(location, "entry has no resource")
            continue
        problem = resource_type_problem(resource)
        if problem:
            problems.skip(location, problem)
            continue
        if resource["resourceType"] == "Bundle":
            problems.skip(location, "a Bundle inside a Bundle is not read")
            continue
        full_url = item.get("fullUrl") if isinstance(item.get("fullUrl"), str) else ""
        yield Entry(resource, location, full_url, urls)


def _read_json_document(path: Path, problems: Problems) -> Iterator[Entry]:
    # NOTE: a JSON document is parsed whole, so memory grows with the largest
    # single bundle. Bulk exports use NDJSON, which is streamed line by line.
    with problems.open_file(path) as handle:
        raw = handle.read()
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise FileRejected(
            f"not valid UTF-8 at byte {error.start}; save it as UTF-8."
        ) from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            # Several JSON objects one after another: NDJSON with a .json name.
            yield from _read_ndjson(path, problems)
            return
        raise FileRejected(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}."
        ) from None
    except RecursionError:
        raise FileRejected(f"{TOO_DEEP}.") from None
    except ValueError:
        raise FileRejected(f"{_too_long_number()}.") from None

    problem = resource_type_problem(document)
    if problem:
        raise FileRejected(problem)

    vote = _VersionVote()
    vote.add(document)
    deferred = _DeferredSkips()
    if document["resourceType"] == "Bundle":
        entries = list(_bundle_entries(document, str(path), deferred))
        for entry in entries:
            vote.add(entry.resource)
    else:
        entries = [Entry(document, Location(str(path)))]
    if vote.rejected:
        raise FileRejected(rejection_message(vote.rejected))
    problems.file_version(vote.label)
    for location, reason in deferred.skipped:
        problems.record_read()
        problems.skip(location, reason)
    for entry in entries:
        problems.record_read()
        yield entry


def _read_ndjson(path: Path, problems: Problems) -> Iterator[Entry]:
    vote = _VersionVote()
    first_resource = True
    name = str(path)

    def skip(location: Location, reason: str) -> None:
        problems.record_read()
        problems.skip(location, reason)

    with problems.open_file(path) as handle:
        for number, raw in enumerate(handle, start=1):
            location = Location(name, line=number)
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                skip(location, "line is not valid UTF-8")
                continue
            if not text:
                continue
            try:
                resource = json.loads(text)
            except json.JSONDecodeError as error:
                skip(location, f"invalid JSON at column {error.colno}: {error.msg}")
                continue
            except RecursionError:
                skip(location, TOO_DEEP)
                continue
            except ValueError:
                skip(location, _too_long_number())
                continue
            problem = resource_type_problem(resource)
            if problem:
                skip(location, problem)
                continue
            if resource["resourceType"] == "OperationOutcome":
                skip(location, describe_outcome(resource))
                continue

            version, _ = detect_version(resource)
            if version is not None and version not in ACCEPTED_VERSIONS:
                if first_resource:
                    raise FileRejected(rejection_message(version))
                skip(location, f"resource is FHIR {version}, which is not supported")
                continue
            if first_resource:
                vote.add(resource)
                problems.file_version(vote.label)
                first_resource = False
            problems.record_read()
            yield Entry(resource, location)


def read_fhir_file(path: Path, problems: Problems) -> Iterator[Entry]:
    """Yield every resource in a FHIR JSON or NDJSON file.

    Bad lines and entries go to ``problems.skip`` with their location and the
    reading goes on. Raises FileRejected when the file as a whole cannot be
    read (invalid JSON document, unsupported FHIR version).
    """
    if path.suffix.lower() in NDJSON_SUFFIXES:
        return _read_ndjson(path, problems)
    return _read_json_document(path, problems)
