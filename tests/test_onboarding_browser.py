"""The onboarding list clicked through in Chromium, with and without JavaScript."""

import pytest

from patients.models import Patient, Tag
from tests.browser import log_in_staff
from tests.conftest import make_patient


@pytest.fixture
def heart_patients(transactional_db, settings):
    settings.ONBOARDING_PAGE_SIZE = 2
    patients = [make_patient(family=f"Heart{i}", tags=["Heart"]) for i in range(5)]
    make_patient(family="Outside", tags=["Other"])
    return patients


def test_select_all_matching_enables_whole_filter(
    page,
    live_server,
    front_desk,
    heart_patients,
):
    heart = Tag.objects.get(name="Heart")
    log_in_staff(page, live_server.url)
    page.goto(f"{live_server.url}/?tags={heart.pk}")

    page.click("#select-all")
    checked = page.locator("input.row-select:checked")
    assert checked.count() == 2
    assert page.text_content("#select-bar-text") == (
        "All 2 patients on this page are selected."
    )
    page.click("#select-matching")
    assert page.text_content("#select-bar-text") == (
        "All 5 patients matching the filters are selected."
    )
    page.click("button[value=enable]")

    assert page.text_content("#plan-eligible") == "5"
    page.click("button[name=confirm]")
    page.wait_for_selector(".message")

    assert "Portal access enabled for 5 patients, 0 skipped." in page.text_content(
        ".messages"
    )
    assert Patient.objects.filter(portal_access=True).count() == 5
    assert not Patient.objects.get(family_name="Outside").portal_access


def test_unticking_a_row_returns_to_ticked_rows(
    page,
    live_server,
    front_desk,
    heart_patients,
):
    log_in_staff(page, live_server.url)

    page.click("#select-all")
    page.click("#select-matching")
    page.locator("input.row-select").first.uncheck()

    assert page.input_value("#bulk-scope") == "page"
    assert page.is_hidden("#select-bar")


def test_ticked_rows_work_without_javascript(
    browser,
    live_server,
    front_desk,
    heart_patients,
):
    context = browser.new_context(java_script_enabled=False)
    no_script = context.new_page()
    try:
        log_in_staff(no_script, live_server.url)
        assert no_script.is_hidden("#select-all")

        boxes = no_script.locator("input.row-select")
        boxes.nth(0).check()
        boxes.nth(1).check()
        no_script.click("button[value=enable]")
        assert no_script.text_content("#plan-eligible") == "2"
        no_script.click("button[name=confirm]")

        assert "Portal access enabled for 2 patients" in no_script.text_content(
            ".messages"
        )
    finally:
        context.close()
    enabled = Patient.objects.filter(portal_access=True)
    assert sorted(enabled.values_list("family_name", flat=True)) == [
        "Heart0",
        "Heart1",
    ]


def test_list_page_loads_nothing_from_other_sites(
    page,
    live_server,
    front_desk,
    heart_patients,
):
    requested = []
    page.on("request", lambda request: requested.append(request.url))

    log_in_staff(page, live_server.url)

    assert requested
    assert all(url.startswith(live_server.url) for url in requested)


def test_filter_fields_do_not_overlap(page, live_server, front_desk, heart_patients):
    page.set_viewport_size({"width": 1280, "height": 720})
    log_in_staff(page, live_server.url)

    boxes = [
        field.bounding_box()
        for field in page.locator(
            ".filters .filter-grid select, .filters .filter-grid input"
        ).all()
        if field.is_visible()
    ]

    assert len(boxes) > 4
    for number, first in enumerate(boxes):
        for second in boxes[number + 1 :]:
            apart = (
                first["x"] + first["width"] <= second["x"]
                or second["x"] + second["width"] <= first["x"]
                or first["y"] + first["height"] <= second["y"]
                or second["y"] + second["height"] <= first["y"]
            )
            assert apart, (first, second)
