"""The audit log as CSV and as FHIR R4 AuditEvent resources in NDJSON.

Both are generators of text chunks for a StreamingHttpResponse. They read the
events with ``QuerySet.iterator()``, so memory use does not grow with the log.
"""

import csv
import io
import json
import re
from urllib.parse import quote

from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent

# Rows (or lines) written to the buffer before it is handed to the response.
CHUNK_ROWS = 200
# Rows the database cursor fetches at a time.
FETCH_ROWS = 1000


def detail_text(value) -> str:
    """Return one value of an event's detail as text: a string as is, others as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def detail_pairs(detail) -> list[tuple[str, str]]:
    """Return the detail of an event as (key, text) pairs, in key order."""
    if isinstance(detail, dict):
        return [(str(key), detail_text(detail[key])) for key in sorted(detail)]
    if detail in (None, "", [], {}):
        return []
    return [("value", detail_text(detail))]


def _recorded(event: AuditEvent) -> str:
    """Return the event's time in the practice's time zone, with its UTC offset."""
    return timezone.localtime(event.created_at).isoformat(timespec="milliseconds")


# CSV


# Spreadsheets can read a cell that starts with =, +, - or @ as a formula.
# Tab and carriage return are included because a formula can follow them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

CSV_HEADER = [
    "event_id",
    "recorded",
    "action",
    "action_label",
    "outcome",
    "who",
    "patient_id",
    "patient_source",
    "patient_source_id",
    "patient_name",
    "detail",
]


def csv_cell(value) -> str:
    """Return VALUE as a CSV cell that no spreadsheet runs as a formula.

    A cell that starts with a formula character gets a leading single quote,
    which spreadsheets show as text and do not evaluate.
    """
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_row(event: AuditEvent) -> list[str]:
    patient = event.patient
    detail = event.detail
    return [
        csv_cell(value)
        for value in (
            event.pk,
            _recorded(event),
            event.action,
            event.get_action_display(),
            event.outcome,
            event.actor_label,
            event.patient_id,
            patient.source if patient else "",
            patient.source_id if patient else "",
            patient.display_name if patient else "",
            json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else "",
        )
    ]


def csv_chunks(events):
    """Yield the CSV text of EVENTS: a header row, then one row per event.

    It starts with a byte order mark, so that spreadsheets read it as UTF-8.
    The csv module quotes cells that contain commas, quotes or line breaks.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(CSV_HEADER)
    for number, event in enumerate(events.iterator(chunk_size=FETCH_ROWS), 1):
        writer.writerow(csv_row(event))
        if number % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# FHIR R4 AuditEvent

# The product's own code system for AuditEvent.subtype: AuditEvent.Action.
ACTION_SYSTEM = "urn:patient-portal-onboarding:audit-action"
# Prefix of the identifier system of a patient's source id. The name of the
# import source follows it.
PATIENT_SOURCE_SYSTEM = "urn:patient-portal-onboarding:patient-source:"

DICOM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = {
    "application": (DICOM, "110100", "Application Activity"),
    "export": (DICOM, "110106", "Export"),
    "import": (DICOM, "110107", "Import"),
    "patient_record": (DICOM, "110110", "Patient Record"),
    "authentication": (DICOM, "110114", "User Authentication"),
}

Action = AuditEvent.Action

# AuditEvent.type comes from the DICOM event ids that FHIR R4 lists in its
# audit event id value set:
# - Import and Export for an import run, an uploaded import file and an
#   audit log export;
# - User Authentication for logins and logouts, for a date of birth checked
#   on an invitation link, and for the emails that help a patient log in again
#   (password reset, username reminder);
# - Patient Record for changes to a patient's portal account: access, an
#   invitation, its acceptance, a new username or email, a safety override;
# - Application Activity for the worker's delivery of an invitation email,
#   and for any action added later without a mapping here.
EVENT_TYPE_OF_ACTION = {
    Action.IMPORT: "import",
    Action.IMPORT_UPLOAD: "import",
    Action.EXPORT: "export",
    Action.LOGIN: "authentication",
    Action.LOGOUT: "authentication",
    Action.STAFF_LOGIN: "authentication",
    Action.DOB_MISMATCH: "authentication",
    Action.PASSWORD_RESET: "authentication",
    Action.USERNAME_REMINDER: "authentication",
    Action.ENABLE_ACCESS: "patient_record",
    Action.DISABLE_ACCESS: "patient_record",
    Action.INVITE: "patient_record",
    Action.ACCEPT: "patient_record",
    Action.USERNAME_CHANGE: "patient_record",
    Action.EMAIL_CHANGE: "patient_record",
    Action.OVERRIDE: "patient_record",
    Action.DELIVERY: "application",
}

# AuditEvent.action: C create, R read, U update, D delete, E execute.
# Creating an invitation or an account is C, changing a patient's portal
# account is U, an export reads the log (R), and the rest run a procedure (E).
ACTION_CODE = {
    Action.INVITE: "C",
    Action.ACCEPT: "C",
    Action.ENABLE_ACCESS: "U",
    Action.DISABLE_ACCESS: "U",
    Action.USERNAME_CHANGE: "U",
    Action.EMAIL_CHANGE: "U",
    Action.PASSWORD_RESET: "U",
    Action.EXPORT: "R",
}

# Subtypes from DICOM for the actions it names, beside the product's own.
DICOM_SUBTYPE = {
    Action.LOGIN: (DICOM, "110122", "Login"),
    Action.STAFF_LOGIN: (DICOM, "110122", "Login"),
    Action.LOGOUT: (DICOM, "110123", "Logout"),
}

OUTCOME_CODE = {AuditEvent.Outcome.SUCCESS: "0", AuditEvent.Outcome.FAILURE: "4"}

# A FHIR resource id: what a literal reference such as Patient/123 may hold.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"


def _coding(system_code_display: tuple[str, str, str]) -> dict:
    system, code, display = system_code_display
    return {"system": system, "code": code, "display": display}


def _patient_entity(patient, details: list[dict]) -> dict:
    reference = {
        "identifier": {
            "system": PATIENT_SOURCE_SYSTEM + quote(patient.source, safe=""),
            "value": patient.source_id,
        },
        "display": patient.display_name,
    }
    # Imports keep a FHIR Patient's resource id as its source id. A CSV
    # identifier that is not a valid resource id stays an identifier only.
    if FHIR_ID.fullmatch(patient.source_id):
        reference = {"reference": f"Patient/{patient.source_id}", **reference}
    entity = {
        "what": reference,
        "type": _coding((ENTITY_TYPE, "1", "Person")),
        "role": _coding((OBJECT_ROLE, "1", "Patient")),
    }
    if details:
        entity["detail"] = details
    return entity


def fhir_audit_event(event: AuditEvent, observer: str) -> dict:
    """Return the event as a FHIR R4 AuditEvent resource, as a dict for JSON."""
    subtypes = [
        {
            "system": ACTION_SYSTEM,
            "code": event.action,
            "display": event.get_action_display(),
        }
    ]
    if event.action in DICOM_SUBTYPE:
        subtypes.append(_coding(DICOM_SUBTYPE[event.action]))
    details = [
        {"type": key, "valueString": text} for key, text in detail_pairs(event.detail)
    ]
    entities = []
    if event.patient is not None:
        entities.append(_patient_entity(event.patient, details))
    elif details:
        entities.append(
            {"type": _coding((ENTITY_TYPE, "2", "System Object")), "detail": details}
        )

    resource = {
        "resourceType": "AuditEvent",
        "id": str(event.pk),
        "type": _coding(
            AUDIT_EVENT_TYPE[EVENT_TYPE_OF_ACTION.get(event.action, "application")]
        ),
        "subtype": subtypes,
        "action": ACTION_CODE.get(event.action, "E"),
        "recorded": _recorded(event),
        "outcome": OUTCOME_CODE.get(event.outcome, "4"),
        "agent": [{"who": {"display": event.actor_label}, "requestor": True}],
        "source": {
            "observer": {"display": observer},
            "type": [_coding((SOURCE_TYPE, "4", "Application Server"))],
        },
    }
    if entities:
        resource["entity"] = entities
    return resource


def fhir_ndjson_chunks(events):
    """Yield EVENTS as NDJSON: one AuditEvent resource per line."""
    observer = settings.PRACTICE_NAME
    lines = []
    for event in events.iterator(chunk_size=FETCH_ROWS):
        resource = fhir_audit_event(event, observer)
        lines.append(json.dumps(resource, ensure_ascii=False, separators=(",", ":")))
        if len(lines) == CHUNK_ROWS:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"
