"""The demo mailbox: an SMTP server on 127.0.0.1 that keeps every message in a Maildir.

It accepts mail for any recipient and relays nothing, so demo invitations
stay on this machine. The staff page at /demo/mailbox/ reads the same folder.
"""

import datetime
import email
import email.parser
import email.policy
import logging
import mailbox
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

HOST = "127.0.0.1"
DEFAULT_PORT = 8025

# aiosmtpd logs every sender and recipient address at INFO level, and the
# recipients are patients' addresses.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class PortInUse(Exception):
    """Something already listens on the port the server was asked to use."""


def check_port_free(port: int, host: str = HOST) -> None:
    """Raise PortInUse, naming the port, if HOST:PORT cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do, so a port whose old connections are in TIME_WAIT
        # counts as free, while one with a listener does not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUse(
                f"Port {port} on {host} is already in use ({error.strerror}). "
                f"Stop the program using it or choose another port."
            ) from None


def start_server(folder: Path, port: int = DEFAULT_PORT) -> Controller:
    """Start an SMTP server on 127.0.0.1:PORT in a thread, storing mail in FOLDER.

    Returns the running aiosmtpd Controller; call its stop() to end it.
    """
    check_port_free(port)
    # mailbox.Maildir creates its tmp, new and cur folders only when the
    # top folder does not exist yet, so an empty existing folder needs them.
    for part in ("tmp", "new", "cur"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    controller = Controller(Mailbox(folder), hostname=HOST, port=port)
    controller.start()
    return controller


@dataclass(frozen=True)
class MessageSummary:
    """One row of the mailbox list."""

    key: str
    to: str
    subject: str
    # When the mailbox received it, or None when that is unknown.
    date: datetime.datetime | None


@dataclass(frozen=True)
class ShownMessage:
    """One message's headers and its text and HTML parts, for display."""

    key: str
    to: str
    sender: str
    subject: str
    date: datetime.datetime | None
    text: str
    html: str


def _open(folder: str) -> mailbox.Maildir | None:
    path = Path(folder)
    if not (path / "cur").is_dir():
        return None
    return mailbox.Maildir(path, factory=None, create=False)


def _date_of(key: str, message) -> datetime.datetime | None:
    """Return when the mailbox received a message, else its Date header.

    mailbox.Maildir starts each key with the Unix time of delivery.
    """
    received = key.split(".", 1)[0]
    if received.isdigit():
        return datetime.datetime.fromtimestamp(int(received), tz=datetime.UTC)
    try:
        return parsedate_to_datetime(message["Date"]) if message["Date"] else None
    except (TypeError, ValueError):
        return None


def list_messages(folder: str) -> list[MessageSummary]:
    """Return the headers of every stored message, newest first."""
    maildir = _open(folder)
    if maildir is None:
        return []

    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    summaries = []
    for key in maildir.iterkeys():
        try:
            headers = parser.parsebytes(maildir.get_bytes(key))
        except (KeyError, FileNotFoundError):
            # Removed by someone else between keys() and reading it.
            continue
        summaries.append(
            MessageSummary(
                key=key,
                to=str(headers["To"] or ""),
                subject=str(headers["Subject"] or "(no subject)"),
                date=_date_of(key, headers),
            )
        )
    summaries.sort(key=lambda m: m.date.timestamp() if m.date else 0, reverse=True)
    return summaries


def read_message(folder: str, key: str) -> ShownMessage | None:
    """Return one stored message's parts, or None when no message has KEY."""
    maildir = _open(folder)
    if maildir is None:
        return None
    try:
        data = maildir.get_bytes(key)
    except (KeyError, FileNotFoundError):
        return None

    message: EmailMessage = email.message_from_bytes(data, policy=email.policy.default)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    return ShownMessage(
        key=key,
        to=str(message["To"] or ""),
        sender=str(message["From"] or ""),
        subject=str(message["Subject"] or "(no subject)"),
        date=_date_of(key, message),
        text=text_part.get_content() if text_part is not None else "",
        html=html_part.get_content() if html_part is not None else "",
    )
