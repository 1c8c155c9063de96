"""An invitation token never lands in the database, the log or a Referer header."""

import logging

from django.db import connection
from django.urls import reverse

from tests.conftest import make_invitation, make_patient
from tests.worker import run_worker

PASSWORD = "amber-orchard-winter-lake"


def _database_text() -> str:
    """Return every row of every table of the database as text."""
    lines = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            # The table names come from the database itself, quoted.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            lines.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(lines)


def test_token_stays_out_of_database_and_log(
    db, client, smtp_server, caplog, clear_attempt_counters
):
    caplog.set_level(logging.DEBUG)
    patient = make_patient(email="ines@example.org", portal_access=True)
    invitation = make_invitation(patient)
    token = invitation.token
    run_worker()
    assert len(smtp_server.messages_to("ines@example.org")) == 1

    opened = client.get(reverse("invitation-link", args=[token]))
    born = patient.birth_date
    client.post(
        reverse("invitation-verify"),
        {"month": born.month, "day": born.day, "year": born.year},
    )
    done = client.post(
        reverse("invitation-signup"),
        {"username": "ines", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert done.url == reverse("invitation-done")
    assert opened["Referrer-Policy"] == "no-referrer"
    assert token not in opened["Location"]
    assert token not in _database_text()
    assert token not in caplog.text
    assert PASSWORD not in _database_text()
    assert PASSWORD not in caplog.text
