"""The staff audit log page: who may open it, its filters, paging and escaping."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from tests.browser import log_in_staff
from tests.conftest import make_patient

Action = AuditEvent.Action
Outcome = AuditEvent.Outcome
UTC = datetime.UTC
URL = "/audit/"


def at(day: int, hour: int = 12, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def add_event(when, action=Action.ENABLE_ACCESS, actor="frontdesk", **fields):
    return AuditEvent.objects.create(
        created_at=when, actor_label=actor, action=action, **fields
    )


def listed(response) -> list[int]:
    """The ids of the events on the page, in their order."""
    return [event.pk for event in response.context["page"]]


# Who may open it


def test_anonymous_user_is_sent_to_staff_login(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url == f"{reverse('staff-login')}?next={URL}"


def test_staff_without_the_permission_gets_403(read_only_client):
    response = read_only_client.get(URL)

    assert response.status_code == 403


def test_patient_session_gets_403(client, patient_with_account):
    client.force_login(patient_with_account.user)

    response = client.get(URL)

    assert response.status_code == 403


def test_auditor_sees_the_page_and_the_menu_link(auditor_client):
    response = auditor_client.get(reverse("onboarding"))

    assert f'<a href="{URL}">Audit log</a>' in response.content.decode()
    assert auditor_client.get(URL).status_code == 200


def test_menu_link_is_hidden_without_the_permission(read_only_client):
    response = read_only_client.get(reverse("onboarding"))

    assert URL not in response.content.decode()


def test_superuser_may_open_it(client, admin_user):
    client.force_login(admin_user)

    assert client.get(URL).status_code == 200


# Columns and order


def test_lists_events_newest_first_with_their_columns(auditor_client):
    patient = make_patient(family="Okafor", given="Ada")
    older = add_event(at(1), actor="system")
    newer = add_event(
        at(2, 9, 30),
        action=Action.DELIVERY,
        outcome=Outcome.FAILURE,
        patient=patient,
        detail={"attempt": 3, "error": "mailbox full"},
    )

    response = auditor_client.get(URL)

    assert listed(response) == [newer.pk, older.pk]
    page = response.content.decode()
    row = page[page.index(f'data-event="{newer.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Mar 2, 2026 09:30:00" in row
    assert "Invitation delivery" in row
    assert "frontdesk" in row
    link = reverse("patient-portal", args=[patient.pk])
    assert f'<a href="{link}">Okafor, Ada</a>' in row
    assert "Failure" in row
    assert "<dt>attempt:</dt> <dd>3</dd>" in row
    assert "<dt>error:</dt> <dd>mailbox full</dd>" in row


def test_markup_in_names_and_details_is_escaped(auditor_client):
    patient = make_patient(family="<b>Bold</b>", given="<i>x</i>")
    add_event(
        at(1),
        actor='<img src="x">',
        patient=patient,
        detail={"<k>": "<script>alert(1)</script>", "list": ["<u>"]},
    )

    page = auditor_client.get(URL).content.decode()

    assert "<script>alert" not in page
    assert "<b>Bold" not in page
    assert '<img src="x">' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;Bold&lt;/b&gt;, &lt;i&gt;x&lt;/i&gt;" in page
    assert "&lt;img src=&quot;x&quot;&gt;" in page
    assert "&lt;k&gt;:" in page
    assert "[&quot;&lt;u&gt;&quot;]" in page


def test_page_has_no_inline_style_or_script(auditor_client):
    add_event(at(1), detail={"reason": "checked"})

    page = auditor_client.get(URL).content.decode()

    assert " style=" not in page
    assert "<style" not in page
    assert "<script" not in page


def test_deleted_patient_event_has_no_link(auditor_client):
    patient = make_patient()
    event = add_event(at(1), patient=patient)
    patient.delete()

    response = auditor_client.get(URL)

    assert listed(response) == [event.pk]
    assert "/patients/" not in response.content.decode()


# Paging


def test_paging_fifty_per_page_in_database(auditor_client):
    start = at(1)
    AuditEvent.objects.bulk_create(
        AuditEvent(
            created_at=start + datetime.timedelta(minutes=n),
            actor_label="system",
            action=Action.INVITE,
            detail={"n": n},
        )
        for n in range(120)
    )

    with CaptureQueriesContext(connection) as queries:
        first = auditor_client.get(URL)
    # Read now: the next request clears the connection's query log.
    event_queries = [q["sql"] for q in queries if "audit_auditevent" in q["sql"]]
    third = auditor_client.get(URL, {"page": "3"})
    beyond = auditor_client.get(URL, {"page": "99"})
    not_a_number = auditor_client.get(URL, {"page": "x"})

    first_ns = [event.detail["n"] for event in first.context["page"]]
    assert first_ns == list(range(119, 69, -1))
    assert [e.detail["n"] for e in third.context["page"]] == list(range(19, -1, -1))
    assert beyond.context["page"].number == 3
    assert not_a_number.context["page"].number == 1
    assert "Page 1 of 3" in first.content.decode()
    assert any("LIMIT 50" in sql for sql in event_queries)


def test_pager_links_keep_the_filters(auditor_client):
    AuditEvent.objects.bulk_create(
        AuditEvent(created_at=at(1), actor_label="system", action=Action.INVITE)
        for _ in range(51)
    )

    page = auditor_client.get(URL, {"action": "invite"}).content.decode()

    assert 'href="?action=invite&amp;page=2"' in page


# Filters, one at a time


@pytest.fixture
def sample(db):
    """Six events that differ in one way each from the first."""
    ida = make_patient(family="Sørensen", given="Ida")
    jon = make_patient(family="Berg", given="Jon")
    return {
        "base": add_event(at(5), patient=ida),
        "other_patient": add_event(at(5, 13), patient=jon),
        "other_user": add_event(at(5, 14), actor="nurse", patient=ida),
        "other_action": add_event(at(5, 15), action=Action.INVITE, patient=ida),
        "failure": add_event(at(5, 16), outcome=Outcome.FAILURE, patient=ida),
        "earlier": add_event(at(1), patient=ida),
        "later": add_event(at(9), patient=ida),
        "ida": ida,
        "jon": jon,
    }


def test_without_filters_every_event_is_listed(auditor_client, sample):
    response = auditor_client.get(URL)

    assert len(listed(response)) == 7


def test_filter_by_patient_id(auditor_client, sample):
    response = auditor_client.get(URL, {"patient": str(sample["jon"].pk)})

    assert listed(response) == [sample["other_patient"].pk]


@pytest.mark.parametrize("search", ["sorensen", "SØRENSEN ida", "ida, sør"])
def test_filter_by_patient_name_folded(auditor_client, sample, search):
    response = auditor_client.get(URL, {"patient_name": search})

    assert sample["other_patient"].pk not in listed(response)
    assert len(listed(response)) == 6


def test_filter_by_patient_name_that_matches_nobody(auditor_client, sample):
    response = auditor_client.get(URL, {"patient_name": "nobody"})

    assert listed(response) == []
    assert "No events match these filters." in response.content.decode()


def test_filter_by_user(auditor_client, sample):
    response = auditor_client.get(URL, {"user": "nurse"})

    assert listed(response) == [sample["other_user"].pk]


def test_filter_by_action(auditor_client, sample):
    response = auditor_client.get(URL, {"action": "invite"})

    assert listed(response) == [sample["other_action"].pk]


def test_filter_by_outcome(auditor_client, sample):
    response = auditor_client.get(URL, {"outcome": "failure"})

    assert listed(response) == [sample["failure"].pk]


def test_filter_from_a_date_includes_that_day(auditor_client, sample):
    response = auditor_client.get(URL, {"date_from": "2026-03-09"})

    assert listed(response) == [sample["later"].pk]


def test_filter_to_a_date_includes_that_day(auditor_client, sample):
    response = auditor_client.get(URL, {"date_to": "2026-03-01"})

    assert listed(response) == [sample["earlier"].pk]


def test_filters_combined(auditor_client, sample):
    response = auditor_client.get(
        URL,
        {
            "patient_name": "ida",
            "user": "frontdesk",
            "action": "enable_access",
            "outcome": "success",
            "date_from": "2026-03-05",
            "date_to": "2026-03-05",
        },
    )

    assert listed(response) == [sample["base"].pk]


def test_combined_with_patient_id(auditor_client, sample):
    response = auditor_client.get(
        URL, {"patient": str(sample["ida"].pk), "action": "invite"}
    )

    assert listed(response) == [sample["other_action"].pk]


def test_dates_are_days_in_the_practice_time_zone(auditor_client, settings):
    settings.TIME_ZONE = "America/New_York"
    # 23:30 on March 9 and 00:30 on March 10 in New York (UTC-4 after March 8).
    late_on_ninth = add_event(at(10, 3, 30))
    early_on_tenth = add_event(at(10, 4, 30))

    ninth = auditor_client.get(
        URL, {"date_from": "2026-03-09", "date_to": "2026-03-09"}
    )
    tenth = auditor_client.get(
        URL, {"date_from": "2026-03-10", "date_to": "2026-03-10"}
    )

    assert listed(ninth) == [late_on_ninth.pk]
    assert listed(tenth) == [early_on_tenth.pk]
    assert "Mar 9, 2026 23:30:00" in ninth.content.decode()


# Invalid filters


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"patient": "abc"}, "“abc” is not a patient id."),
        ({"patient": "0"}, "“0” is not a patient id."),
        ({"patient": "9" * 25}, f"“{'9' * 25}” is not a patient id."),
        ({"patient": "9" * 60}, "This is too long for a patient id."),
        ({"patient": "١٢"}, "“١٢” is not a patient id."),
        ({"date_from": "9999-12-31"}, "9999-12-31 is out of range."),
        ({"date_to": "0001-01-01"}, "0001-01-01 is out of range."),
        ({"date_from": "2026-02-30"}, "Enter a real date as YYYY-MM-DD."),
        ({"date_to": "٢٠٢٦-٠٣-٠٩"}, "Enter a real date as YYYY-MM-DD."),
        (
            {"date_from": "2026-03-10", "date_to": "2026-03-01"},
            "The range ends (2026-03-01) before it starts (2026-03-10).",
        ),
        ({"action": "drop_table"}, "drop_table is not one of the available choices"),
        ({"outcome": "maybe"}, "maybe is not one of the available choices"),
        ({"user": "u" * 151}, "at most 150 characters"),
    ],
)
def test_invalid_filter_shows_field_error(auditor_client, sample, params, message):
    response = auditor_client.get(URL, params)

    assert response.status_code == 200
    assert listed(response) == []
    page = response.content.decode()
    assert 'class="errorlist"' in page
    assert message in page
    assert "Correct the filters above to see events." in page
    assert "export.csv" not in page


# In a browser


def test_audit_page_in_chromium(page, live_server, transactional_db, auditor):
    patient = make_patient(family="Lind", given="Bo")
    add_event(at(1), patient=patient, detail={"reason": "<b>asked</b>"})
    add_event(at(2), action=Action.INVITE, actor="nurse")
    csp_reports = []

    def keep_csp_report(message):
        if "Content Security Policy" in message.text:
            csp_reports.append(message.text)

    page.on("console", keep_csp_report)

    log_in_staff(page, live_server.url, username="auditor")
    page.click("nav >> text=Audit log")
    page.select_option("#id_action", "invite")
    page.click("form.filters button[type=submit]")

    rows = page.locator("table.audit-log tbody tr")
    assert rows.count() == 1
    assert "nurse" in rows.first.text_content()
    display = page.eval_on_selector(
        ".audit-exports", "element => getComputedStyle(element).display"
    )
    assert display == "flex"
    with page.expect_download() as download:
        page.click("#export-csv")
    exported = download.value.path().read_text(encoding="utf-8-sig")
    assert "nurse" in exported
    assert "Lind" not in exported
    assert AuditEvent.objects.filter(action=Action.EXPORT).count() == 1
    assert csp_reports == []
