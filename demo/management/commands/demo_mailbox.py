import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.mailbox import DEFAULT_PORT, HOST, PortInUse, start_server


class Command(BaseCommand):
    help = (
        "Run the demo mailbox: an SMTP server on 127.0.0.1 that stores every "
        "message it receives in a Maildir folder and delivers nothing onwards."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port",
            type=int,
            default=DEFAULT_PORT,
            help=f"TCP port on {HOST} to listen on (default {DEFAULT_PORT}).",
        )
        parser.add_argument(
            "--maildir",
            help="Folder to store messages in (default: DEMO_MAILBOX_DIR, "
            "else var/mailbox).",
        )

    def handle(self, *args, **options):
        folder = Path(
            options["maildir"]
            or settings.DEMO_MAILBOX_DIR
            or settings.BASE_DIR / "var" / "mailbox"
        )
        if not 0 < options["port"] < 65536:
            raise CommandError(f"--port {options['port']} is not a TCP port (1-65535).")
        try:
            controller = start_server(folder, options["port"])
        except PortInUse as error:
            raise CommandError(str(error)) from None

        self.stdout.write(
            f"Demo mailbox listening on smtp://{HOST}:{options['port']}, "
            f"storing messages in {folder}"
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
            self.stdout.write("Demo mailbox stopped")
