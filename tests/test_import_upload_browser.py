"""Importing a file from the imports page in Chromium, with the worker."""

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from imports.models import ImportRun
from patients import roles
from patients.models import Patient
from tests.browser import log_in_staff
from tests.conftest import PASSWORD
from tests.import_files import patient
from tests.worker import run_worker

USERNAME = "office-admin"


def _ndjson(resources) -> bytes:
    return ("\n".join(json.dumps(r) for r in resources) + "\n").encode()


@pytest.fixture
def site(transactional_db, settings, live_server, tmp_path):
    from django.core.cache import cache

    cache.clear()
    settings.IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    user = get_user_model().objects.create_user(
        username=USERNAME, password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=roles.ADMINISTRATOR))
    return live_server.url


def _open_upload_form(page, base_url):
    log_in_staff(page, base_url, USERNAME)
    page.click("nav.staff-nav >> text=Imports")
    page.wait_for_url(f"{base_url}/imports/")
    page.click("#new-import")
    page.wait_for_url(f"{base_url}/imports/new/")


def test_upload_shows_finished_summary(page, site, settings):
    content = (
        _ndjson(
            [
                patient(id="p1", family="Okafor", given=("Chidi",)),
                patient(id="p2", family="Nguyen", given=("Lan",)),
                patient(id="p3", family="Silva", given=("Ana",)),
            ]
        )
        + b"{broken\n"
    )

    _open_upload_form(page, site)
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "Patient.ndjson", "mimeType": "text/plain", "buffer": content}],
    )
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*/imports/\d+/$"))

    assert page.text_content("#import-status") == "Waiting to start"
    assert "Patient.ndjson was uploaded" in page.text_content(".messages")

    run_worker()

    # The page polls for the progress every second or two and reloads itself
    # once the import has ended.
    page.wait_for_selector("#import-summary")
    assert page.text_content("#import-status").strip() == "Finished"
    assert page.text_content("#summary-patients") == (
        "3 created, 0 updated, 0 unchanged"
    )
    assert "Patient.ndjson, line 4" in page.text_content("#skipped-records")
    assert Patient.objects.count() == 3
    assert ImportRun.objects.get().upload_path == ""
    assert list((settings.IMPORT_UPLOAD_DIR).iterdir()) == []


def test_too_large_file_stopped_before_upload(page, site, settings):
    settings.IMPORT_UPLOAD_MAX_MB = 1
    content = b"x" * (1024 * 1024 + 1)

    _open_upload_form(page, site)
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "huge.ndjson", "mimeType": "text/plain", "buffer": content}],
    )

    message = page.text_content("#file-size-error")
    assert message.startswith("huge.ndjson is larger than 1.0")
    page.click("#upload-button")
    assert page.url == f"{site}/imports/new/"
    assert ImportRun.objects.count() == 0
