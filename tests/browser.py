"""A headless Chromium for the tests that click through pages, driven by Playwright.

Chromium comes from Debian's chromium package, never from a download by the test
tool. When it is missing the browser tests are skipped with the reason, unless
the CI environment variable is set, in which case they fail.
"""

import contextlib
import os
import shutil
from urllib.parse import urlsplit

import pytest

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# Flags that keep Chromium from reaching out to the internet on its own and
# let it run as root in a container.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

# Playwright's sync API runs an event loop in the test thread, which Django
# would otherwise refuse to mix with database access.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _missing_chromium_reason() -> str | None:
    if not (os.path.isfile(CHROMIUM_PATH) or shutil.which(CHROMIUM_PATH)):
        return (
            f"Chromium was not found at {CHROMIUM_PATH}. Install Debian's chromium "
            "package (apt-get install chromium) or set CHROMIUM_PATH."
        )
    return None


@pytest.fixture(scope="session")
def browser():
    reason = _missing_chromium_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"Browser tests cannot run on CI: {reason}")
        pytest.skip(reason)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@contextlib.contextmanager
def local_page(browser, **context_options):
    """Open a page in a new browser context, with its own cookies.

    On leaving, fail if any page in the context requested another host.
    """
    context = browser.new_context(**context_options)
    outside_requests = []

    def check_request(request):
        parts = urlsplit(request.url)
        if parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname not in {
            "127.0.0.1",
            "localhost",
        }:
            outside_requests.append(request.url)

    context.on("request", check_request)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        context.close()
    assert outside_requests == [], f"pages requested other sites: {outside_requests}"


@pytest.fixture
def page(browser):
    with local_page(browser) as tab:
        yield tab


def log_in_staff(tab, base_url, username="frontdesk"):
    """Log in on the staff login page as USERNAME, with the test password."""
    from tests.conftest import PASSWORD

    tab.goto(f"{base_url}/staff/login/")
    tab.fill("input[name=username]", username)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{base_url}/")
