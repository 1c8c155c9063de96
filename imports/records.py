"""Turn FHIR resources into the plain records the importer saves.

Each ``*_record`` function reads one resource and returns a record, or raises
RecordError naming the field and the problem. Nothing here touches the
database.
"""

import datetime
import math
import re
from dataclasses import dataclass, field

from django.utils import timezone

from imports.fhir import Location, Reference, parse_reference, resource_id

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"

# Identifier types and systems that are government numbers (social security,
# driver's licence, passport, tax, national id). They are not needed to match
# patients, so they are not stored.
SENSITIVE_IDENTIFIER_TYPES = {"SS", "SB", "DL", "PPN", "TAX", "NI", "NNUS"}
SENSITIVE_IDENTIFIER_SYSTEMS = {
    "http://hl7.org/fhir/sid/us-ssn",
    "urn:oid:2.16.840.1.113883.4.1",  # US SSN as an OID
    "urn:oid:2.16.840.1.113883.2.4.6.3",  # Dutch citizen service number (BSN)
}

# SNOMED CT codes of encounters that are check-ups or wellness visits, as used
# by Synthea: check up, general examination, well child visit, periodic
# re-evaluation of a healthy individual.
CHECKUP_CODES = {"185349003", "162673000", "410620009", "86013001"}
PRIMARY_PERFORMER = "PPRF"

APPOINTMENT_STATUSES = {
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
}


class RecordError(Exception):
    """A record cannot be imported. The message names the field and the problem."""


# --- Dates -------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class PartialDate:
    """A FHIR date, which may have only a year or a year and month."""

    first_day: datetime.date
    precision: str  # "year", "month" or "day"

    @property
    def is_full(self) -> bool:
        return self.precision == "day"

    def next_period_start(self) -> datetime.date:
        """Return the first day after the period this date stands for."""
        day = self.first_day
        if self.precision == "year":
            return day.replace(year=day.year + 1)
        if self.precision == "month":
            return (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        return day + datetime.timedelta(days=1)


def parse_date(text, field_name: str) -> PartialDate:
    """Parse a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) or raise RecordError."""
    problem = RecordError(
        f"{field_name} '{text}' is not a date (YYYY, YYYY-MM or YYYY-MM-DD)"
    )
    match = _DATE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise problem
    year, month, day = match.groups()
    try:
        first_day = datetime.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise problem from None
    precision = "year"
    if day:
        precision = "day"
    elif month:
        precision = "month"
    return PartialDate(first_day, precision)


def parse_datetime(text, field_name: str) -> datetime.datetime:
    """Parse a FHIR dateTime or date into an aware datetime, or raise RecordError.

    A date without a time means midnight at its start, in the practice's time
    zone (TIME_ZONE); so does a time without an offset.
    """
    if isinstance(text, str) and _DATE.match(text.strip()):
        day = parse_date(text, field_name).first_day
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time()))

    problem = RecordError(
        f"{field_name} '{text}' is not a dateTime "
        "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with an offset)"
    )
    if not isinstance(text, str) or not _DATETIME.match(text.strip()):
        raise problem
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise problem from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def has_ended(period, now: datetime.datetime) -> bool:
    """Return whether a FHIR Period's end lies before ``now``.

    A partial end such as "2014" means the end of that year. An end that
    cannot be parsed is ignored rather than dropping the element.
    """
    end = period.get("end") if isinstance(period, dict) else None
    if not isinstance(end, str):
        return False
    try:
        if _DATE.match(end.strip()):
            boundary = parse_date(end, "period.end").next_period_start()
            return now.date() >= boundary
        return parse_datetime(end, "period.end") < now
    except RecordError:
        return False


# --- Small element readers ------------------------------------------------------------


def _codes(concepts) -> set[str]:
    """Return every code in a CodeableConcept, a list of them, or a Coding."""
    found = set()
    items = concepts if isinstance(concepts, list) else [concepts]
    for item in items:
        if not isinstance(item, dict):
            continue
        codings = item.get("coding") if isinstance(item.get("coding"), list) else []
        if "code" in item:
            codings = [*codings, item]
        for coding in codings:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                found.add(coding["code"])
    return found


def choose_name(names) -> tuple[str, str]:
    """Return (family, given) from the official name, else usual, else the first."""
    candidates = [name for name in names or [] if isinstance(name, dict)]
    if not candidates:
        return "", ""
    chosen = next(
        (
            name
            for use in ("official", "usual")
            for name in candidates
            if name.get("use") == use
        ),
        candidates[0],
    )

    for name in candidates:
        if isinstance(name.get("family"), list):
            raise RecordError(
                "name.family is a list, as in FHIR DSTU2, which is not supported. "
                "Export the data as FHIR R4 (STU3 is also accepted)"
            )
    family = chosen.get("family") or ""
    if not isinstance(family, str):
        raise RecordError("name.family is not a string")
    given = " ".join(
        str(part) for part in chosen.get("given") or [] if isinstance(part, str)
    )
    if not family and not given and isinstance(chosen.get("text"), str):
        family = chosen["text"]
    return family.strip(), given.strip()


def choose_email(telecoms, now: datetime.datetime) -> str:
    """Return the primary email address from a list of ContactPoints.

    Skips entries whose period has ended or whose use is "old". The lowest rank
    wins; between equal ranks, home or mobile use wins; then list order.
    """
    candidates = []
    for position, point in enumerate(telecoms or []):
        if not isinstance(point, dict) or point.get("system") != "email":
            continue
        value = point.get("value")
        if not isinstance(value, str) or not value.strip():
            continue
        if point.get("use") == "old" or has_ended(point.get("period"), now):
            continue
        rank = point.get("rank")
        rank = rank if isinstance(rank, int) and rank > 0 else math.inf
        personal = 0 if point.get("use") in ("home", "mobile") else 1
        candidates.append((rank, personal, position, value.strip()))
    return min(candidates)[3] if candidates else ""


def meta_tags(resource: dict) -> list[str]:
    """Return tag names from meta.tag: each Coding's display, else its code."""
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    names = []
    for coding in meta.get("tag") or []:
        if not isinstance(coding, dict):
            continue
        name = coding.get("display") or coding.get("code")
        if isinstance(name, str) and name.strip() and name.strip() not in names:
            names.append(name.strip()[:200])
    return names


def _identifier_is_sensitive(identifier: dict) -> bool:
    if identifier.get("system") in SENSITIVE_IDENTIFIER_SYSTEMS:
        return True
    return bool(_codes(identifier.get("type")) & SENSITIVE_IDENTIFIER_TYPES)


def identifiers(resource: dict) -> list[tuple[str, str]]:
    """Return (system, value) pairs of the resource's non-sensitive identifiers."""
    pairs = []
    for identifier in resource.get("identifier") or []:
        if not isinstance(identifier, dict):
            continue
        value = identifier.get("value")
        if not isinstance(value, str) or not value.strip():
            continue
        if _identifier_is_sensitive(identifier):
            continue
        pair = (str(identifier.get("system") or "")[:300], value.strip()[:200])
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def npi_of(resource: dict) -> str:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == NPI_SYSTEM:
            value = identifier.get("value")
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


# --- Records ------------------------------------------------------------------------


@dataclass
class PatientRecord:
    source_id: str
    location: Location
    family_name: str = ""
    given_names: str = ""
    birth_date: datetime.date | None = None
    email: str = ""
    active: bool = True
    deceased: bool = False
    deceased_at: datetime.datetime | None = None
    identifiers: list[tuple[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    # FHIR: Patient.generalPractitioner, resolved after every file is read.
    general_practitioner: Reference | None = None
    # The practitioner it resolved to when the patient was inserted, if any.
    provider_at_insert: int | None = None
    # CSV: the provider named on the row, resolved when the row is saved.
    provider_npi: str = ""
    provider_name: str = ""
    warnings: list[str] = field(default_factory=list)
    # The saved patient's primary key, set once the record is stored.
    pk: int | None = None


@dataclass
class PractitionerRecord:
    location: Location
    fhir_id: str = ""
    full_url: str = ""
    npi: str = ""
    family_name: str = ""
    given_names: str = ""
    prefix: str = ""
    text: str = ""
    email: str = ""
    identifiers: list[tuple[str, str]] = field(default_factory=list)

    def fields(self) -> dict:
        return {
            "npi": self.npi,
            "family_name": self.family_name[:200],
            "given_names": self.given_names[:200],
            "prefix": self.prefix[:50],
            "text": self.text[:300],
            "email": self.email[:320],
        }


@dataclass
class AppointmentRecord:
    source_id: str
    location: Location
    status: str
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    # FHIR references, or CSV identifiers and names.
    patient: Reference | None = None
    practitioner: Reference | None = None
    patient_identifier: str = ""
    practitioner_npi: str = ""
    practitioner_name: str = ""


@dataclass
class EncounterFacts:
    """The facts one Encounter gives for choosing a patient's primary provider."""

    patient: Reference
    started: float
    is_checkup: bool
    # The primary performer, else the first participant with no stated type.
    performer: Reference | None
    # Any participant, the performer first.
    participant: Reference | None


# --- Patient checks, the same for FHIR and CSV ------------------------------------

# Longest family name or given names accepted. A longer name is skipped rather
# than cut, because a cut name is a wrong name.
MAX_NAME_CHARS = 200


def check_names(record: PatientRecord, family_field: str, given_field: str) -> None:
    """Raise RecordError for a patient with no name or with a name too long.

    An empty family name alone only adds a warning, because a patient may
    have a single name, which is kept as given names.
    """
    for value, field_name in (
        (record.family_name, family_field),
        (record.given_names, given_field),
    ):
        if len(value) > MAX_NAME_CHARS:
            raise RecordError(
                f"{field_name} is {len(value):,} characters long; names of up to "
                f"{MAX_NAME_CHARS} characters are accepted"
            )
    if not record.family_name and not record.given_names:
        raise RecordError(
            f"{family_field} and {given_field} are both empty; a patient needs "
            "at least one name"
        )
    if not record.family_name:
        record.warnings.append(
            f"{family_field} is empty; the patient is imported with given names only"
        )


# Every day before this one is past in any time zone for as long as the
# process runs, so only later birth dates need the local date, which is
# slow to get for every patient.
_SURELY_PAST = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=2)


def read_birth_date(value, field_name: str, record: PatientRecord) -> None:
    """Set the record's birth date, or raise RecordError if missing or in the future.

    Invitations ask for the date of birth, so such a patient is not imported.
    A year, or a year and month, is imported without a birth date and with a
    warning.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError(
            f"{field_name} is missing or empty; invitations ask for the date of "
            "birth, so a patient needs one"
        )
    birth = parse_date(value, field_name)
    if birth.first_day >= _SURELY_PAST and birth.first_day > timezone.localdate():
        raise RecordError(f"{field_name} '{value.strip()}' is in the future")
    if birth.is_full:
        record.birth_date = birth.first_day
    else:
        record.warnings.append(
            f"{field_name} has only a year or month; the patient is imported "
            "without a birth date and cannot pass the date-of-birth check"
        )


# --- Resources to records -----------------------------------------------------------


def patient_record(
    resource: dict, location: Location, full_url: str, now: datetime.datetime
) -> PatientRecord:
    source_id = resource_id(resource, full_url)
    if not source_id:
        raise RecordError("Patient has no id (and its bundle entry no fullUrl)")
    record = PatientRecord(source_id=source_id[:200], location=location)

    record.family_name, record.given_names = choose_name(resource.get("name"))
    check_names(record, "name.family", "name.given")
    read_birth_date(resource.get("birthDate"), "birthDate", record)

    record.email = choose_email(resource.get("telecom"), now)
    record.active = resource.get("active") is not False
    _read_deceased(resource, record)
    record.identifiers = identifiers(resource)
    record.tags = meta_tags(resource)

    for element in resource.get("generalPractitioner") or []:
        reference = parse_reference(element)
        if reference is not None and reference.resource_type != "Organization":
            record.general_practitioner = reference
            break
    return record


def _read_deceased(resource: dict, record: PatientRecord) -> None:
    if "deceasedDateTime" in resource:
        value = resource["deceasedDateTime"]
        record.deceased = True
        # A year or month alone records that the patient died, not when.
        if isinstance(value, str) and _DATE.match(value.strip()):
            if parse_date(value, "deceasedDateTime").is_full:
                record.deceased_at = parse_datetime(value, "deceasedDateTime")
        else:
            record.deceased_at = parse_datetime(value, "deceasedDateTime")
    elif "deceasedBoolean" in resource:
        value = resource["deceasedBoolean"]
        if not isinstance(value, bool):
            raise RecordError(f"deceasedBoolean '{value}' is not true or false")
        record.deceased = value


def practitioner_record(
    resource: dict, location: Location, full_url: str, now: datetime.datetime
) -> PractitionerRecord:
    record = PractitionerRecord(
        location=location,
        fhir_id=resource_id(resource, full_url)[:128],
        full_url=full_url,
        npi=npi_of(resource)[:20],
        identifiers=identifiers(resource),
    )
    if not record.fhir_id and not record.npi:
        raise RecordError("Practitioner has no id, fullUrl or NPI")

    record.family_name, record.given_names = choose_name(resource.get("name"))
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    if names:
        prefixes = names[0].get("prefix") or []
        record.prefix = " ".join(p for p in prefixes if isinstance(p, str))
        if isinstance(names[0].get("text"), str):
            record.text = names[0]["text"].strip()
    record.email = choose_email(resource.get("telecom"), now)
    return record


def role_practitioner(resource: dict) -> Reference | None:
    """Return the Practitioner a PractitionerRole is about."""
    reference = parse_reference(resource.get("practitioner"))
    if reference is not None and not reference.resource_type:
        reference = Reference(
            reference.kind,
            resource_type="Practitioner",
            id=reference.id,
            url=reference.url,
            system=reference.system,
            value=reference.value,
        )
    return reference


def _participant_types(participant: dict) -> set[str]:
    return _codes(participant.get("type"))


def encounter_facts(resource: dict) -> EncounterFacts | None:
    """Return the provider facts of an Encounter, or None if it names no patient."""
    patient = parse_reference(resource.get("subject"))
    if patient is None:
        return None

    period = resource.get("period") if isinstance(resource.get("period"), dict) else {}
    when = period.get("start") or period.get("end")
    try:
        started = parse_datetime(when, "Encounter.period.start").timestamp()
    except RecordError:
        started = -math.inf

    performer = untyped = anyone = None
    for participant in resource.get("participant") or []:
        if not isinstance(participant, dict):
            continue
        reference = parse_reference(participant.get("individual"))
        if reference is None or reference.resource_type in ("RelatedPerson", "Device"):
            continue
        types = _participant_types(participant)
        if PRIMARY_PERFORMER in types and performer is None:
            performer = reference
        elif not types and untyped is None:
            untyped = reference
        anyone = anyone or reference

    is_checkup = bool(_codes(resource.get("type")) & CHECKUP_CODES) or (
        "WELLNESS" in {code.upper() for code in _codes(resource.get("class"))}
    )
    chosen = performer or untyped
    return EncounterFacts(
        patient=patient,
        started=started,
        is_checkup=is_checkup,
        performer=chosen,
        participant=chosen or anyone,
    )


def appointment_record(
    resource: dict, location: Location, full_url: str
) -> AppointmentRecord:
    source_id = resource_id(resource, full_url)
    if not source_id:
        raise RecordError("Appointment has no id")
    status = resource.get("status")
    if status not in APPOINTMENT_STATUSES:
        raise RecordError(f"Appointment.status '{status}' is not a FHIR status")

    record = AppointmentRecord(
        source_id=source_id[:200], location=location, status=status
    )
    if resource.get("start") is not None:
        record.start = parse_datetime(resource["start"], "Appointment.start")
    if resource.get("end") is not None:
        record.end = parse_datetime(resource["end"], "Appointment.end")

    for participant in resource.get("participant") or []:
        if not isinstance(participant, dict):
            continue
        reference = parse_reference(participant.get("actor"))
        if reference is None:
            continue
        if reference.resource_type == "Patient" and record.patient is None:
            record.patient = reference
        elif (
            reference.resource_type in ("Practitioner", "PractitionerRole")
            and record.practitioner is None
        ):
            record.practitioner = reference
    if record.patient is None:
        raise RecordError("Appointment has no participant that is a Patient")
    return record


def group_members(resource: dict) -> tuple[str, list[Reference]]:
    """Return a Group's tag name and the references of its active members."""
    name = resource.get("name") if isinstance(resource.get("name"), str) else ""
    name = (name.strip() or f"Group {resource.get('id', '')}".strip())[:200]
    members = []
    for member in resource.get("member") or []:
        if not isinstance(member, dict) or member.get("inactive") is True:
            continue
        reference = parse_reference(member.get("entity"))
        if reference is not None:
            members.append(reference)
    return name, members
