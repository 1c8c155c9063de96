"""Activation letters in Chromium: one patient per printed page, then a typed code."""

import datetime
import re

import pytest

from invitations.models import Invitation
from patients.models import Patient
from tests.browser import local_page, log_in_staff
from tests.conftest import make_patient

CODE_PATTERN = re.compile(
    r"\b[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}\b"
)
# A page object of a PDF, not the /Pages tree that lists them.
PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
PASSWORD = "tidal-basin-ferry-42"


def _watch_problems(tab) -> list[str]:
    """Collect console errors, policy violations and uncaught script errors."""
    problems = []

    def on_console(message):
        # Chromium requests /favicon.ico from every site, and this one has none.
        if message.location.get("url", "").endswith("/favicon.ico"):
            return
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(f"{tab.url}: {message.text}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(f"{tab.url}: {error}"))
    return problems


@pytest.fixture
def letter_world(transactional_db, live_server, front_desk):
    from django.core.cache import cache

    cache.clear()
    patients = [
        make_patient(
            family="Aalto",
            given="Ilona",
            email="",
            birth_date=datetime.date(1961, 2, 3),
            portal_access=True,
        ),
        make_patient(
            family="Berg",
            given="Jonas",
            email="not-an-address",
            birth_date=datetime.date(1974, 11, 30),
            portal_access=True,
        ),
        make_patient(
            family="Castro",
            given="Lucía",
            email="",
            birth_date=datetime.date(1990, 7, 14),
            portal_access=True,
        ),
    ]
    mailed = make_patient(
        family="Dahl", given="Mette", email="mette@example.org", portal_access=True
    )
    return live_server.url, patients, mailed


def test_letters_print_one_per_page(browser, letter_world):
    base_url, patients, mailed = letter_world

    with local_page(browser) as tab:
        problems = _watch_problems(tab)
        log_in_staff(tab, base_url)
        for patient in [*patients, mailed]:
            tab.check(f"input.row-select[value='{patient.pk}']")
        tab.click("button[value=letter]")

        assert tab.text_content("#plan-eligible") == "3"
        assert tab.text_content("tr[data-reason=has_email] td") == (
            "Has an email address: send an invitation instead"
        )
        tab.click("button[name=confirm]")
        tab.wait_for_selector("article.letter")

        names = tab.locator(".letter-name").all_text_contents()
        assert names == ["Ilona Aalto", "Jonas Berg", "Lucía Castro"]
        printed = tab.locator(".letter-code").all_text_contents()
        assert len(printed) == 3
        assert all(CODE_PATTERN.fullmatch(code) for code in printed)

        tab.emulate_media(media="print")
        breaks = tab.eval_on_selector_all(
            "article.letter",
            "letters => letters.map(l => getComputedStyle(l).breakAfter)",
        )
        assert breaks == ["page", "page", "auto"]
        for hidden in (".site-header", ".letters-toolbar"):
            display = tab.eval_on_selector(hidden, "e => getComputedStyle(e).display")
            assert display == "none"
        pdf = tab.pdf(format="A4")
        assert len(PDF_PAGE.findall(pdf)) == 3
        assert problems == []

    # Jonas types his code in small letters with spaces, as read from paper.
    jonas = patients[1]
    code = printed[1]
    with local_page(browser) as tab:
        problems = _watch_problems(tab)
        tab.goto(f"{base_url}/activate/")
        tab.fill("input[name=code]", code.lower().replace("-", " "))
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/invite/")
        tab.fill("input[name=month]", "11")
        tab.fill("input[name=day]", "30")
        tab.fill("input[name=year]", "1974")
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/invite/account/")
        tab.fill("input[name=username]", "jonas")
        tab.fill("input[name=password1]", PASSWORD)
        tab.fill("input[name=password2]", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/invite/ready/")
        assert problems == []

    jonas = Patient.objects.get(pk=jonas.pk)
    assert jonas.user.username == "jonas"
    used = Invitation.objects.get(patient=jonas)
    assert used.status == Invitation.Status.ACCEPTED
    assert used.channel == Invitation.Channel.LETTER
