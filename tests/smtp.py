"""A real SMTP server on 127.0.0.1 for tests, as the ``smtp_server`` fixture.

The fixture starts an aiosmtpd server on a free port and points the default
mailer at it for the length of one test. Tests read what arrived from
``smtp_server.messages`` (parsed ``email.message.EmailMessage`` objects) and
can make the server reject chosen recipients, reply 421 to everything, or
drop the connection after some messages, to exercise delivery failures.
"""

import asyncio
import email
import email.policy
import logging
import socket
import threading
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

# aiosmtpd logs every sender and recipient address at INFO level. Those lines
# would mix test addresses into the log records that privacy tests inspect.
logging.getLogger("mail.log").setLevel(logging.WARNING)

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    aiosmtpd's Controller cannot bind port 0, because its readiness check
    connects to the port it was given, so the port is chosen here first.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class _Handler:
    """aiosmtpd hooks that record messages and apply the server's failure modes."""

    def __init__(self, server: "SMTPServer"):
        self.server = server

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        owner = self.server
        with owner.lock:
            if smtp not in owner.sessions:
                owner.sessions.append(smtp)
            accepted_here = getattr(smtp, "accepted_messages", 0)
            if owner.unavailable_reply:
                return owner.unavailable_reply
            limit = owner.disconnect_limit
            if limit is not None and accepted_here >= limit:
                # Drop the connection without a reply, as a crashed server or
                # a broken network does; the client sees the connection close.
                smtp.transport.close()
                return "421 4.3.2 Closing connection"

        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        reply = self.server.rcpt_replies.get(address.lower())
        if reply:
            return reply

        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        owner = self.server
        for address in envelope.rcpt_tos:
            reply = owner.data_replies.get(address.lower())
            if reply:
                return reply

        if owner.data_delay:
            # A slow relay, so that a test can stop a worker mid-batch.
            await asyncio.sleep(owner.data_delay)
        message = email.message_from_bytes(
            envelope.original_content, policy=email.policy.default
        )
        with owner.lock:
            owner.messages.append(message)
            owner.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            smtp.accepted_messages = getattr(smtp, "accepted_messages", 0) + 1
        return "250 OK: queued"


class SMTPServer:
    """An aiosmtpd server in a background thread, with switches for failures.

    ``connections`` counts the SMTP connections that started a mail
    transaction, which is how a test checks that a batch shared one connection.
    """

    def __init__(self, port: int | None = None):
        self.host = HOST
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.sessions: list = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: dict[str, str] = {}
        self.unavailable_reply = ""
        self.disconnect_limit: int | None = None
        # Seconds to wait before accepting each message.
        self.data_delay = 0.0
        self._controller: Controller | None = None

    @property
    def connections(self) -> int:
        return len(self.sessions)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Start listening on the same port, also after stop()."""
        if self._controller is not None:
            return
        controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening, so connections are refused until start() is called."""
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None

    def reject(self, address: str, code: int = 550, text: str = "") -> None:
        """Reply to RCPT for this recipient with CODE (5xx permanent, 4xx temporary)."""
        text = text or (
            "5.1.1 Mailbox unavailable" if code >= 500 else "4.2.0 Try again later"
        )
        self.rcpt_replies[address.lower()] = f"{code} {text}"

    def reject_data(self, address: str, code: int = 554, text: str = "") -> None:
        """Reply to the end of DATA with CODE for messages to this recipient."""
        text = text or (
            "5.7.1 Message rejected" if code >= 500 else "4.3.0 Try again later"
        )
        self.data_replies[address.lower()] = f"{code} {text}"

    def accept(self, address: str) -> None:
        """Undo reject() and reject_data() for this recipient."""
        self.rcpt_replies.pop(address.lower(), None)
        self.data_replies.pop(address.lower(), None)

    def set_unavailable(self, unavailable: bool = True) -> None:
        """Reply to every MAIL command with 421, as a server shutting down does."""
        self.unavailable_reply = (
            "421 4.3.2 Service not available, try again later" if unavailable else ""
        )

    def disconnect_after(self, count: int | None) -> None:
        """Close each connection once it has accepted COUNT messages (None: never)."""
        self.disconnect_limit = count

    def messages_to(self, address: str) -> list[EmailMessage]:
        address = address.lower()
        return [
            message
            for message, (_, recipients) in zip(
                self.messages, self.envelopes, strict=True
            )
            if address in (recipient.lower() for recipient in recipients)
        ]

    def mailer_settings(self) -> dict:
        """A MAILERS setting that sends through this server."""
        return {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": self.host, "port": self.port, "timeout": 5},
            }
        }


@pytest.fixture
def smtp_server(settings):
    """A running SMTP server on 127.0.0.1 that the default mailer sends to."""
    server = SMTPServer()
    server.start()
    settings.MAILERS = server.mailer_settings()
    yield server
    server.stop()
