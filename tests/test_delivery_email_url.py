"""EMAIL_URL: how the mail server is configured, and the errors for bad values."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import parse_email_url

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def test_smtp_url_gives_plain_smtp():
    mailer = parse_email_url("smtp://127.0.0.1:1025")

    assert mailer["BACKEND"] == SMTP_BACKEND
    assert mailer["OPTIONS"] == {
        "host": "127.0.0.1",
        "port": 1025,
        "use_tls": False,
        "use_ssl": False,
        "timeout": 30,
    }


def test_smtp_url_defaults_to_port_25():
    assert parse_email_url("smtp://relay.internal")["OPTIONS"]["port"] == 25


def test_smtp_url_reads_decoded_credentials():
    options = parse_email_url("smtp://portal%40clinic:p%2Fss%3Aword@relay:25")[
        "OPTIONS"
    ]

    assert options["username"] == "portal@clinic"
    assert options["password"] == "p/ss:word"


def test_smtp_tls_url_uses_starttls_on_587():
    options = parse_email_url("smtp+tls://relay.internal")["OPTIONS"]

    assert options["use_tls"] is True
    assert options["use_ssl"] is False
    assert options["port"] == 587


def test_tls_query_turns_on_starttls():
    options = parse_email_url("smtp://relay.internal:2525?tls=true")["OPTIONS"]

    assert options["use_tls"] is True
    assert options["port"] == 2525


def test_smtps_url_uses_implicit_tls_on_465():
    options = parse_email_url("smtps://relay.internal")["OPTIONS"]

    assert options["use_ssl"] is True
    assert options["use_tls"] is False
    assert options["port"] == 465


def test_timeout_query_sets_timeout():
    options = parse_email_url("smtp://relay.internal?timeout=5")["OPTIONS"]

    assert options["timeout"] == 5


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("console://", "django.core.mail.backends.console.EmailBackend"),
        ("memory://", "django.core.mail.backends.locmem.EmailBackend"),
        ("CONSOLE://", "django.core.mail.backends.console.EmailBackend"),
    ],
)
def test_local_schemes_pick_their_backend(url, backend):
    assert parse_email_url(url) == {"BACKEND": backend}


def test_file_url_writes_to_folder():
    mailer = parse_email_url("file:///var/mail/portal%20outbox")

    assert mailer["BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert mailer["OPTIONS"] == {"file_path": "/var/mail/portal outbox"}


def test_file_url_without_folder_is_rejected():
    with pytest.raises(ImproperlyConfigured, match="has no folder"):
        parse_email_url("file://")


@pytest.mark.parametrize("url", ["http://relay:25", "smtpx://relay", "relay:25"])
def test_unknown_scheme_is_rejected(url):
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_email_url(url)

    assert "is not supported" in str(raised.value)
    assert "smtp://" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("smtp://relay:99999", "relay:99999"),
        ("smtp://relay:smtp", "relay:smtp"),
        ("smtp://relay:0", "relay:0"),
        ("smtp://user:secret@relay:-1", "relay:-1"),
    ],
)
def test_bad_port_is_rejected_by_value(url, shown):
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_email_url(url)

    message = str(raised.value)
    assert "invalid port" in message
    assert repr(shown) in message
    assert "secret" not in message


def test_missing_host_is_rejected():
    with pytest.raises(ImproperlyConfigured, match="has no host name"):
        parse_email_url("smtp://:25")


@pytest.mark.parametrize("timeout", ["soon", "0", "-5", "2.5"])
def test_bad_timeout_is_rejected_by_value(timeout):
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_email_url(f"smtp://relay?timeout={timeout}")

    assert f"timeout={timeout!r}" in str(raised.value)


def test_smtps_with_starttls_is_rejected():
    with pytest.raises(ImproperlyConfigured, match="Remove \\?tls=true"):
        parse_email_url("smtps://relay?tls=true")
