"""A large bulk action in Chromium: confirm, watch its progress, read its result."""

import pytest

from patients.models import Patient
from tests.browser import log_in_staff
from tests.conftest import make_patient
from tests.worker import run_worker


@pytest.fixture
def practice(transactional_db, settings):
    settings.ONBOARDING_PAGE_SIZE = 2
    settings.BULK_BACKGROUND_THRESHOLD = 3
    settings.BULK_JOB_CHUNK_SIZE = 2
    for number in range(6):
        make_patient(family=f"Lind{number}")
    make_patient(family="Lind-deceased", deceased=True)


def test_progress_page_reloads_until_the_result(
    page, live_server, front_desk, practice
):
    log_in_staff(page, live_server.url)
    page.goto(f"{live_server.url}/?q=Lind")
    page.click("#select-all")
    page.click("#select-matching")
    page.click("button[value=enable]")
    page.click("button[name=confirm]")

    page.wait_for_selector("#bulk-job")
    assert page.get_attribute("#bulk-job", "data-state") == "queued"
    assert page.text_content("#job-done") == "0"
    assert Patient.objects.filter(portal_access=True).count() == 0

    run_worker()

    # The page reloads itself and shows the result, without a click.
    page.wait_for_selector("#bulk-job[data-state=finished]", timeout=10_000)
    assert page.text_content("#job-result").strip() == (
        "Portal access enabled for 6 patients, 1 skipped (Deceased: 1)."
    )
    cells = page.locator("tr[data-reason=deceased] td").all_text_contents()
    assert cells == ["Skipped: Deceased", "1"]
    page.click("text=Back to the list")
    assert page.url.endswith("/?q=Lind")
