"""Production logs: JSON lines on standard error, without tokens or patient data."""

import io
import json
import logging
from datetime import datetime

import pytest
from django.urls import get_resolver

from config.logs import (
    JsonLineFormatter,
    TextFormatter,
    mask_secrets,
    request_id,
)
from tests.production import (
    INVITATION_PATH,
    PATIENT_EMAIL,
    TOKEN,
    prepare_site,
    production_env,
    run_python,
)

# Requests an invitation link with an address in its query string, posts that
# address as a login, and logs a server error on the link's path the way
# Django does, plus a caught exception and a Python warning.
REQUESTS_SCRIPT = f"""
import logging
import warnings
from django.http import HttpResponseServerError
from django.test import Client, RequestFactory
from django.utils.log import log_response

client = Client()
link = client.get("{INVITATION_PATH}?email={PATIENT_EMAIL}", secure=True)
login = client.post(
    "/portal/login/",
    {{"username": "{PATIENT_EMAIL}", "password": "not-the-password"}},
    secure=True,
)
request = RequestFactory().get("{INVITATION_PATH}", secure=True)
log_response(
    "Internal Server Error: %s",
    request.path,
    response=HttpResponseServerError(),
    request=request,
)
try:
    raise LookupError("No invitation at {INVITATION_PATH}")
except LookupError:
    logging.getLogger("invitations").exception("Invitation lookup failed")
warnings.warn("A deprecated call")
client.get("/zebediah.quixote/1971-03-14/", secure=True)
print(link.status_code, login.status_code)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A migrated site with collected static files, shared by this module's tests."""
    folder = tmp_path_factory.mktemp("logging-site")
    prepare_site(site_env(folder), folder)
    return folder


def site_env(folder, **extra):
    return production_env(
        f"sqlite:///{folder / 'portal.sqlite3'}",
        STATIC_ROOT=str(folder / "static"),
        **extra,
    )


def run_requests(folder, **extra) -> str:
    """Run REQUESTS_SCRIPT on the site and return its standard error."""
    completed = run_python(REQUESTS_SCRIPT, site_env(folder, **extra), folder)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["302", "200"]
    return completed.stderr


@pytest.fixture(scope="module")
def json_log(site) -> str:
    return run_requests(site)


@pytest.fixture
def json_records(json_log) -> list[dict]:
    return [json.loads(line) for line in json_log.splitlines() if line.strip()]


def test_json_log_is_one_object_per_line(json_log):
    lines = [line for line in json_log.splitlines() if line.strip()]

    records = [json.loads(line) for line in lines]
    assert len(records) >= 5
    for record in records:
        assert {"time", "level", "logger", "message", "process"} <= record.keys()
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0
        assert isinstance(record["process"], int)


def test_json_log_names_routes_not_paths(json_records):
    requests = [r for r in json_records if r["logger"] == "config.request_log"]

    assert [(r["method"], r["route"], r["status"]) for r in requests] == [
        ("GET", "/invite/<str:token>/", 302),
        ("POST", "/portal/login/", 200),
        ("GET", "<no route>", 404),
    ]
    assert all(len(r["request_id"]) == 32 for r in requests)
    assert requests[0]["request_id"] != requests[1]["request_id"]
    assert requests[0]["message"].startswith("GET /invite/<str:token>/ 302 ")


def test_json_log_holds_no_token_or_address(json_log, json_records):
    assert TOKEN not in json_log
    assert PATIENT_EMAIL not in json_log
    assert "ada.lovelace" not in json_log
    errors = [r for r in json_records if r["logger"] == "django.request"]
    assert [r["message"] for r in errors] == [
        "Internal Server Error: /invite/<masked>/"
    ]
    assert errors[0]["status_code"] == 500
    assert "request" not in errors[0]
    failure = next(r for r in json_records if r["logger"] == "invitations")
    assert "LookupError: No invitation at /invite/<masked>/" in failure["exc_info"]
    warning = next(r for r in json_records if r["logger"] == "py.warnings")
    assert "A deprecated call" in warning["message"]


def test_text_log_masks_tokens(site):
    stderr = run_requests(site, LOG_FORMAT="text")

    assert not stderr.lstrip().startswith("{")
    assert " ERROR django.request Internal Server Error: /invite/<masked>/" in stderr
    assert " INFO config.request_log GET /invite/<str:token>/ 302 " in stderr
    assert TOKEN not in stderr
    assert PATIENT_EMAIL not in stderr


def test_unknown_log_format_is_named(tmp_path):
    env = production_env(f"sqlite:///{tmp_path / 'portal.sqlite3'}", LOG_FORMAT="xml")

    completed = run_python("", env, tmp_path)

    assert completed.returncode != 0
    assert "LOG_FORMAT='xml' is not supported. Use json or text." in completed.stderr


def _format(formatter, *args, **extra) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.production_logging")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(*args, extra=extra)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_json_formatter_keeps_plain_extras_only():
    line = _format(
        JsonLineFormatter(),
        "Sent %d invitations",
        3,
        invitation_id=41,
        request=object(),
        recipients=["a@example.org"],
    )

    record = json.loads(line)
    assert record["message"] == "Sent 3 invitations"
    assert record["invitation_id"] == 41
    assert "request" not in record
    assert "recipients" not in record
    assert "request_id" not in record


def test_formatters_add_request_id_while_set():
    token = request_id.set("0123abcd")
    try:
        json_line = _format(JsonLineFormatter(), "Inside a request")
        text_line = _format(TextFormatter("%(message)s"), "Inside a request")
    finally:
        request_id.reset(token)

    assert json.loads(json_line)["request_id"] == "0123abcd"
    assert text_line == "Inside a request request_id=0123abcd\n"


def _routes(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            yield from _routes(pattern, route)
        else:
            yield "/" + route


def test_masking_keeps_every_route():
    # Request lines name the route, so no fixed part of one may be masked.
    routes = list(_routes(get_resolver()))

    assert "/invite/<str:token>/" in routes
    assert [r for r in routes if mask_secrets(r) != r] == []


def test_masking_hides_link_tokens():
    links = [
        "/invite/Qm9ndXNUb2tlbkZvckxvZ2dpbmdUZXN0c09ubHkwMTIz/",
        "/portal/password-reset/MTI/cf3x2a-0123456789abcdef0123456789abcdef/",
        "/portal/email/confirm/" + "0123456789abcdef" * 4 + "/",
    ]

    masked = [mask_secrets(link) for link in links]

    assert masked == [
        "/invite/<masked>/",
        "/portal/password-reset/MTI/<masked>/",
        "/portal/email/confirm/<masked>/",
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "Error handling request GET /?q=Zebediah+Quixote",
            "Error handling request <request>",
        ),
        (
            "Error handling request /zebediah/1971-03-14",
            "Error handling request <request>",
        ),
        ("Not Found: /?q=1971-03-14&sort=name", "Not Found: /?<masked>"),
        ("GET /zebediah.quixote@example.org/x", "GET /<address>/x"),
        ("Is the worker running? Check it.", "Is the worker running? Check it."),
    ],
)
def test_masking_hides_searches_and_addresses(line, expected):
    assert mask_secrets(line) == expected


def test_unmatched_path_is_not_logged(json_log):
    assert "zebediah" not in json_log
    assert "1971-03-14" not in json_log
