"""The whole job in Chromium, on imported exports.

Staff log in, filter the list, select every matching patient, enable access
and send invitations. The worker delivers them to an SMTP server on
127.0.0.1. A patient opens the link from the email that arrived, sets up an
account and logs in, and the staff list then shows that login.
"""

import io
import re

import pytest
from django.core.management import call_command
from django.utils import dateformat, timezone

from invitations.models import Invitation
from invitations.services import find_invitation
from patients.models import Patient, Practitioner, Tag
from tests.browser import local_page, log_in_staff
from tests.sample_data import require_sample_data
from tests.worker import run_worker

PATIENT_PASSWORD = "copper-kettle-harbor-lights"


@pytest.fixture
def job(transactional_db, settings, live_server, smtp_server, front_desk):
    from django.core.cache import cache

    cache.clear()
    settings.PORTAL_BASE_URL = live_server.url
    # Small pages, so that "Select All" covers one page and the offer to
    # select every matching patient appears.
    settings.ONBOARDING_PAGE_SIZE = 2
    return live_server.url, smtp_server


def _select_every_match(tab, expected_total):
    tab.click("#select-all")
    tab.click("#select-matching")
    assert tab.text_content("#select-bar-text") == (
        f"All {expected_total} patients matching the filters are selected."
    )


def _confirm(tab):
    """Confirm the pending action and return its (eligible, skipped by reason)."""
    eligible = int(tab.text_content("#plan-eligible"))
    skipped = {
        row.get_attribute("data-reason"): int(row.locator("td").nth(1).text_content())
        for row in tab.locator("tr[data-reason]").all()
    }
    tab.click("button[name=confirm]")
    tab.wait_for_selector(".messages")
    return eligible, skipped


def _invitation_link(message, base_url):
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(re.escape(base_url) + r"/invite/[^\s/]+/", text)
    assert match, "the invitation email carries no link"
    return match.group(0)


def _whole_job(browser, page, base_url, smtp_server, apply_filters, matching):
    """Run the job on the patients that APPLY_FILTERS selects, which are MATCHING."""
    total = matching.count()
    assert total > 2, "the filter must match more than one page"

    log_in_staff(page, base_url)
    apply_filters(page)
    page.click("button:text('Apply Filters')")
    page.wait_for_load_state()
    assert int(page.text_content("#count-total")) == total

    # Enable access for everyone the filter matches.
    _select_every_match(page, total)
    page.click("button[value=enable]")
    enabled, skipped = _confirm(page)
    assert enabled + sum(skipped.values()) == total
    assert f"Portal access enabled for {enabled} patient" in page.text_content(
        ".messages"
    )
    assert matching.filter(portal_access=True).count() == enabled + skipped.get(
        "already_enabled", 0
    )

    # The confirmation and the result name the patients who cannot be invited.
    # Each patient counts under the first reason that applies, and deceased,
    # inactive, not enabled and set-up patients are checked before the address.
    without_email = matching.filter(
        email="", deceased=False, active=True, portal_access=True, user=None
    ).count()
    _select_every_match(page, total)
    page.click("button[value=invite]")
    queued, skipped = _confirm(page)
    assert skipped.get("no_email", 0) == without_email
    assert queued + sum(skipped.values()) == total
    assert queued > 0
    assert (
        f"{queued} invitation{'s' if queued != 1 else ''} queued, "
        f"{sum(skipped.values())} skipped" in page.text_content(".messages")
    )

    invited = Invitation.objects.filter(patient__in=matching)
    assert invited.count() == queued
    assert not invited.filter(patient__email_valid=False).exists()
    assert not invited.filter(patient__portal_access=False).exists()

    run_worker()
    assert len(smtp_server.messages) == queued
    links = {_invitation_link(message, base_url) for message in smtp_server.messages}
    assert len(links) == queued, "each invitation carries its own link"

    # The patient follows the link from the email that arrived.
    message = smtp_server.messages[0]
    link = _invitation_link(message, base_url)
    invitation = find_invitation(link.rstrip("/").rsplit("/", 1)[1])
    patient = invitation.patient
    assert message["To"].lower() == patient.email_normalized
    born = patient.birth_date
    username = f"patient{patient.pk}"
    with local_page(browser) as tab:
        tab.goto(link)
        tab.wait_for_url(f"{base_url}/invite/")
        tab.fill("input[name=month]", born.strftime("%B"))
        tab.fill("input[name=day]", str(born.day))
        tab.fill("input[name=year]", str(born.year))
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/invite/account/")
        tab.fill("input[name=username]", username)
        tab.fill("input[name=password1]", PATIENT_PASSWORD)
        tab.fill("input[name=password2]", PATIENT_PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/invite/ready/")

        tab.goto(f"{base_url}/portal/login/")
        tab.fill("input[name=username]", username)
        tab.fill("input[name=password]", PATIENT_PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{base_url}/portal/")
        assert "You are signed up with" in tab.text_content("main")

    # Back on the staff list, the patient's row shows the login.
    patient.refresh_from_db()
    assert patient.last_login_at is not None
    page.goto(f"{base_url}/?q={born:%Y-%m-%d}")
    row = page.locator(f"tr[data-patient='{patient.pk}']")
    cells = row.locator("td")
    login_date = dateformat.format(timezone.localtime(patient.last_login_at), "M j, Y")
    assert cells.nth(5).text_content().strip() == "Yes"
    assert cells.nth(6).text_content().strip() == login_date
    assert cells.nth(7).text_content().strip() == login_date
    assert cells.nth(8).text_content().strip() == "Logged in"


def test_whole_job_on_smart_sample_patients(browser, page, job):
    base_url, smtp_server = job
    folder = require_sample_data() / "smart_stu3_sample_patients"
    call_command("import_patients", str(folder), stdout=io.StringIO())

    # The provider with the most patients who have an email address.
    provider = max(
        Practitioner.objects.filter(patients__isnull=False).distinct(),
        key=lambda p: p.patients.exclude(email="").count(),
    )
    matching = Patient.objects.filter(primary_provider=provider)

    def apply_filters(tab):
        tab.select_option("select[name=provider]", value=str(provider.pk))

    _whole_job(browser, page, base_url, smtp_server, apply_filters, matching)


def test_whole_job_on_demo_practice(browser, page, job, tmp_path):
    base_url, smtp_server = job
    call_command(
        "generate_demo",
        str(tmp_path),
        "--patients",
        "60",
        "--seed",
        "5",
        stdout=io.StringIO(),
    )
    call_command("import_patients", str(tmp_path), stdout=io.StringIO())

    tag = max(Tag.objects.all(), key=lambda t: t.patients.count())
    matching = Patient.objects.filter(tags=tag, user__isnull=True)

    def apply_filters(tab):
        tab.select_option("select[name=tags]", value=str(tag.pk))
        tab.select_option("select[name=username]", value="no")

    _whole_job(browser, page, base_url, smtp_server, apply_filters, matching)
