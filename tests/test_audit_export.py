"""The audit log exports: CSV and FHIR R4 AuditEvent NDJSON, streamed and audited."""

import csv
import datetime
import io
import json
import re

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from audit.exports import CSV_HEADER
from audit.models import AuditEvent
from tests.conftest import make_patient

Action = AuditEvent.Action
Outcome = AuditEvent.Outcome
CSV_URL = "/audit/export.csv"
FHIR_URL = "/audit/export.ndjson"


def at(day: int, hour: int = 12, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=datetime.UTC)


def add_event(when, action=Action.ENABLE_ACCESS, actor="frontdesk", **fields):
    return AuditEvent.objects.create(
        created_at=when, actor_label=actor, action=action, **fields
    )


@pytest.fixture
def known(db):
    """Three events: one on a FHIR patient, one on a CSV patient, one on no one."""
    ida = make_patient(family="Sørensen", given="Ida", source="fhir", source_id="a-1")
    bo = make_patient(family="Lind", given="Bo", source="csv", source_id="MRN 007")
    return {
        "access": add_event(at(5, 14, 30), patient=ida, detail={"reason": "asked"}),
        "delivery": add_event(
            at(6, 8),
            action=Action.DELIVERY,
            actor="system",
            outcome=Outcome.FAILURE,
            patient=bo,
            detail={"attempt": 2, "error": "mailbox full"},
        ),
        "login": add_event(at(7, 9), action=Action.STAFF_LOGIN, actor="nurse"),
        "ida": ida,
        "bo": bo,
    }


def content(response) -> str:
    return b"".join(response.streaming_content).decode()


def csv_rows(response) -> list[list[str]]:
    text = content(response)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def fhir_lines(response) -> list[dict]:
    text = content(response)
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# CSV


def test_csv_export_of_known_events(auditor_client, known):
    response = auditor_client.get(CSV_URL)

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="audit-log-\d{8}-\d{6}\.csv"',
        response["Content-Disposition"],
    )
    header, *rows = csv_rows(response)
    assert header == CSV_HEADER
    assert rows == [
        [
            str(known["login"].pk),
            "2026-03-07T09:00:00.000+00:00",
            "staff_login",
            "Staff login",
            "success",
            "nurse",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            str(known["delivery"].pk),
            "2026-03-06T08:00:00.000+00:00",
            "delivery",
            "Invitation delivery",
            "failure",
            "system",
            str(known["bo"].pk),
            "csv",
            "MRN 007",
            "Lind, Bo",
            '{"attempt": 2, "error": "mailbox full"}',
        ],
        [
            str(known["access"].pk),
            "2026-03-05T14:30:00.000+00:00",
            "enable_access",
            "Portal access enabled",
            "success",
            "frontdesk",
            str(known["ida"].pk),
            "fhir",
            "a-1",
            "Sørensen, Ida",
            '{"reason": "asked"}',
        ],
    ]


def test_csv_export_applies_the_filters(auditor_client, known):
    response = auditor_client.get(
        CSV_URL, {"patient_name": "sorensen", "date_to": "2026-03-06"}
    )

    rows = csv_rows(response)[1:]
    assert [row[0] for row in rows] == [str(known["access"].pk)]


def test_csv_times_in_practice_time_zone(auditor_client, known, settings):
    settings.TIME_ZONE = "America/New_York"

    rows = csv_rows(auditor_client.get(CSV_URL, {"action": "enable_access"}))

    assert rows[1][1] == "2026-03-05T09:30:00.000-05:00"


def test_csv_cells_never_start_a_formula(auditor_client):
    patient = make_patient(family='=HYPERLINK("http://x")', given="Jane")
    add_event(at(1), actor="@SUM(1)", patient=patient, detail={"note": "=1+1"})
    add_event(at(2), actor="+1", detail=-5)
    add_event(at(3), actor="-2+3")
    add_event(at(4), actor="\tcmd")
    add_event(at(5), actor="\rcmd")
    add_event(at(6), actor="=cmd|' /C calc'!A0", detail="@SUM(1)")

    rows = csv_rows(auditor_client.get(CSV_URL))[1:]

    by_actor = {row[5]: row for row in rows}
    assert set(by_actor) == {
        "'@SUM(1)",
        "'+1",
        "'-2+3",
        "'\tcmd",
        "'\rcmd",
        "'=cmd|' /C calc'!A0",
    }
    assert by_actor["'@SUM(1)"][9] == '\'=HYPERLINK("http://x"), Jane'
    assert by_actor["'@SUM(1)"][10] == '{"note": "=1+1"}'
    assert by_actor["'+1"][10] == "'-5"
    assert by_actor["'=cmd|' /C calc'!A0"][10] == '"@SUM(1)"'
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_csv_cells_keep_line_breaks_and_quotes(auditor_client):
    patient = make_patient(family="Doe", given='Anne\nMarie "Mia"')
    add_event(at(1), actor="two\r\nlines, one cell", patient=patient)

    rows = csv_rows(auditor_client.get(CSV_URL))

    assert len(rows) == 2
    assert rows[1][5] == "two\r\nlines, one cell"
    assert rows[1][9] == 'Doe, Anne\nMarie "Mia"'


# FHIR NDJSON


def test_fhir_export_of_known_events(auditor_client, known):
    response = auditor_client.get(FHIR_URL)

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/fhir+ndjson"
    assert re.fullmatch(
        r'attachment; filename="audit-log-\d{8}-\d{6}\.ndjson"',
        response["Content-Disposition"],
    )
    login, delivery, access = fhir_lines(response)

    assert access == {
        "resourceType": "AuditEvent",
        "id": str(known["access"].pk),
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110110",
            "display": "Patient Record",
        },
        "subtype": [
            {
                "system": "urn:patient-portal-onboarding:audit-action",
                "code": "enable_access",
                "display": "Portal access enabled",
            }
        ],
        "action": "U",
        "recorded": "2026-03-05T14:30:00.000+00:00",
        "outcome": "0",
        "agent": [{"who": {"display": "frontdesk"}, "requestor": True}],
        "source": {
            "observer": {"display": "Riverside Family Practice"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": [
            {
                "what": {
                    "reference": "Patient/a-1",
                    "identifier": {
                        "system": "urn:patient-portal-onboarding:patient-source:fhir",
                        "value": "a-1",
                    },
                    "display": "Sørensen, Ida",
                },
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
                "detail": [{"type": "reason", "valueString": "asked"}],
            }
        ],
    }

    assert delivery["outcome"] == "4"
    assert delivery["action"] == "E"
    assert delivery["type"]["code"] == "110100"
    what = delivery["entity"][0]["what"]
    # "MRN 007" is not a FHIR id, so the patient is named by identifier only.
    assert "reference" not in what
    assert what["identifier"]["value"] == "MRN 007"
    assert delivery["entity"][0]["detail"] == [
        {"type": "attempt", "valueString": "2"},
        {"type": "error", "valueString": "mailbox full"},
    ]

    assert login["type"]["code"] == "110114"
    assert [coding["code"] for coding in login["subtype"]] == ["staff_login", "110122"]
    assert "entity" not in login


def test_every_fhir_line_has_the_required_r4_elements(auditor_client, known):
    add_event(at(8), action=Action.IMPORT, actor="import", detail={"created": 3})
    text = content(auditor_client.get(FHIR_URL))

    lines = text.splitlines()
    assert len(lines) == 4
    for line in lines:
        resource = json.loads(line)
        assert resource["resourceType"] == "AuditEvent"
        assert set(resource["type"]) >= {"system", "code"}
        assert datetime.datetime.fromisoformat(resource["recorded"]).tzinfo
        assert resource["agent"]
        assert all(isinstance(agent["requestor"], bool) for agent in resource["agent"])
        assert resource["source"]["observer"]["display"]
        assert resource["action"] in {"C", "R", "U", "D", "E"}
        assert resource["outcome"] in {"0", "4", "8", "12"}
        for entity in resource.get("entity", []):
            for detail in entity.get("detail", []):
                assert set(detail) == {"type", "valueString"}


def test_fhir_detail_without_patient(auditor_client):
    add_event(at(1), action=Action.IMPORT, actor="import", detail={"created": 3})

    (resource,) = fhir_lines(auditor_client.get(FHIR_URL))

    assert resource["type"]["code"] == "110107"
    assert resource["entity"] == [
        {
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "2",
                "display": "System Object",
            },
            "detail": [{"type": "created", "valueString": "3"}],
        }
    ]


def test_fhir_lines_stay_one_line_each(auditor_client):
    patient = make_patient(family="Doe", given="Anne\nMarie")
    add_event(at(1), actor="a\nb", patient=patient, detail={"note": "x\ny"})

    text = content(auditor_client.get(FHIR_URL))

    assert text.count("\n") == 1
    assert json.loads(text)["agent"][0]["who"]["display"] == "a\nb"


# Streaming


def test_exports_read_the_events_only_while_streaming(auditor_client):
    AuditEvent.objects.bulk_create(
        AuditEvent(created_at=at(1), actor_label="system", action=Action.INVITE)
        for _ in range(450)
    )

    with CaptureQueriesContext(connection) as queries:
        response = auditor_client.get(CSV_URL)
    before = [q["sql"] for q in queries if '"audit_auditevent"."detail"' in q["sql"]]
    chunks = list(response.streaming_content)

    assert before == []
    # A header and 200 rows per chunk: several chunks, not one block.
    assert len(chunks) == 3
    assert sum(chunk.count(b"\r\n") for chunk in chunks) == 451


# The export's own audit record


@pytest.mark.parametrize(("url", "name"), [(CSV_URL, "csv"), (FHIR_URL, "fhir-ndjson")])
def test_export_is_recorded_with_its_format_and_filters(
    auditor_client, auditor, known, url, name
):
    response = auditor_client.get(
        url, {"action": "enable_access", "patient_name": "ida", "page": "2"}
    )
    content(response)

    export = AuditEvent.objects.get(action=Action.EXPORT)
    assert export.actor == auditor
    assert export.actor_label == "auditor"
    assert export.outcome == Outcome.SUCCESS
    assert export.patient is None
    assert export.detail == {
        "format": name,
        "filters": {"patient_name": "ida", "action": "enable_access"},
        "events": 1,
    }
    assert export.get_action_display() == "Audit log exported"


def test_export_holds_the_events_before_its_own_record(auditor_client, known):
    first = csv_rows(auditor_client.get(CSV_URL))[1:]
    second = csv_rows(auditor_client.get(CSV_URL))[1:]

    assert len(first) == 3
    assert len(second) == 4
    assert second[0][2] == "export"
    assert second[0][5] == "auditor"


# Refusals


@pytest.mark.parametrize("url", [CSV_URL, FHIR_URL])
def test_invalid_filter_stops_export(auditor_client, known, url):
    response = auditor_client.get(url, {"date_from": "9999-12-31", "patient": "x"})

    assert response.status_code == 400
    assert not isinstance(response, StreamingHttpResponse)
    page = response.content.decode()
    assert "9999-12-31 is out of range." in page
    assert "“x” is not a patient id." in page
    assert not AuditEvent.objects.filter(action=Action.EXPORT).exists()


@pytest.mark.parametrize("url", [CSV_URL, FHIR_URL])
def test_staff_without_the_permission_cannot_export(read_only_client, known, url):
    response = read_only_client.get(url)

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action=Action.EXPORT).exists()


@pytest.mark.parametrize("url", [CSV_URL, FHIR_URL])
def test_anonymous_export_is_sent_to_staff_login(client, known, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith("/staff/login/?next=")


@pytest.mark.parametrize("url", [CSV_URL, FHIR_URL])
def test_patient_session_cannot_export(client, patient_with_account, url):
    client.force_login(patient_with_account.user)

    assert client.get(url).status_code == 403
    assert not AuditEvent.objects.filter(action=Action.EXPORT).exists()


def test_export_links_carry_the_page_filters(auditor_client, known):
    page = auditor_client.get(
        "/audit/", {"action": "delivery", "outcome": "failure", "page": "1"}
    ).content.decode()

    assert 'href="/audit/export.csv?action=delivery&amp;outcome=failure"' in page
    assert 'href="/audit/export.ndjson?action=delivery&amp;outcome=failure"' in page
