import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.test.utils import override_settings

from demo import setup
from demo.mailbox import HOST, PortInUse, check_port_free
from patients.models import Patient

# Seconds to wait for the web server and the mailbox to accept connections,
# and for the children to stop after being asked to.
START_TIMEOUT = 60
STOP_TIMEOUT = 10


class StopRequested(Exception):
    """rundemo received SIGTERM."""


def _raise_stop_requested(signum, frame):
    raise StopRequested()


class Command(BaseCommand):
    help = (
        "Prepare the demo practice in the configured database and serve it: the web "
        "server, the background worker and the demo mailbox, until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=8000, help="Web server port (default 8000)."
        )
        parser.add_argument(
            "--mailbox-port",
            type=int,
            default=8025,
            help="SMTP port of the demo mailbox (default 8025).",
        )
        parser.add_argument(
            "--patients",
            type=int,
            default=400,
            help="Patients in the demo practice (default 400).",
        )
        parser.add_argument(
            "--seed", type=int, default=1, help="Seed of the demo data (default 1)."
        )
        parser.add_argument(
            "--export-dir",
            help="Folder for the generated FHIR export (default var/demo-export).",
        )
        parser.add_argument(
            "--setup-only",
            action="store_true",
            help="Prepare the database and print the staff login, but start nothing.",
        )

    def handle(self, *args, **options):
        self.check_safe_database()
        port, mailbox_port = options["port"], options["mailbox_port"]
        for name, number in (("--port", port), ("--mailbox-port", mailbox_port)):
            if not 0 < number < 65536:
                raise CommandError(f"{name} {number} is not a TCP port (1-65535).")
        # Check before the slow steps, so a busy port fails at once.
        try:
            check_port_free(mailbox_port)
            if not options["setup_only"]:
                check_port_free(port)
        except PortInUse as error:
            raise CommandError(str(error)) from None

        base_url = f"http://{HOST}:{port}"
        mailbox_dir = Path(
            settings.DEMO_MAILBOX_DIR or settings.BASE_DIR / "var" / "mailbox"
        ).resolve()
        export_dir = Path(
            options["export_dir"] or settings.BASE_DIR / "var" / "demo-export"
        )
        with override_settings(PORTAL_BASE_URL=base_url):
            password = self.prepare(options, export_dir, mailbox_dir, mailbox_port)

        urls = {
            "Onboarding screen": f"{base_url}/",
            "Demo mailbox": f"{base_url}/demo/mailbox/",
            "Patient login": f"{base_url}/portal/login/",
        }
        login = f"username {setup.STAFF_USERNAME}   password {password}"
        if options["setup_only"]:
            self.stdout.write(f"Staff login: {login}")
            return

        environment = {
            **os.environ,
            "EMAIL_URL": f"smtp://{HOST}:{mailbox_port}",
            "DEMO_MAILBOX_DIR": str(mailbox_dir),
            "PORTAL_BASE_URL": base_url,
            "PYTHONUNBUFFERED": "1",
        }
        self.serve(environment, port, mailbox_port, mailbox_dir, urls, login)

    def check_safe_database(self) -> None:
        """Raise CommandError for production settings or a database of real patients."""
        if not settings.DEBUG:
            raise CommandError(
                "rundemo loads a fictional practice and runs only with DEBUG on, as "
                "with the default settings (config.settings.dev). Unset "
                "DJANGO_SETTINGS_MODULE or point it at config.settings.dev."
            )
        database = settings.DATABASES["default"]["NAME"]
        try:
            others = Patient.objects.exclude(source=setup.DEMO_SOURCE).exists()
        except DatabaseError:
            # An unmigrated database contains no patients.
            others = False
        if others:
            raise CommandError(
                f"The database {database} contains patients that are not demo "
                "patients. Point DATABASE_URL at another database for the demo, "
                "such as sqlite:///var/demo.sqlite3."
            )

    def prepare(self, options, export_dir, mailbox_dir, mailbox_port) -> str:
        """Migrate, generate, import, reset the staff login and seed.

        Returns the new staff password.
        """
        self.stdout.write("Migrating the database ...")
        setup.migrate()
        fresh = setup.is_fresh()

        self.stdout.write(f"Generating the demo practice into {export_dir} ...")
        counts = setup.generate(
            export_dir, patients=options["patients"], seed=options["seed"]
        )
        self.stdout.write(
            "  " + ", ".join(f"{count} {kind}" for kind, count in counts.items())
        )

        self.stdout.write("Importing it with import_patients ...")
        summary = setup.import_demo(export_dir)
        if summary.failed:
            raise CommandError(
                f"Importing the demo practice stopped early: {summary.failed}. "
                "Delete var/ and run make demo again; if it fails again, report it."
            )
        self.stdout.write(
            f"  patients: {summary.patients.created} created, "
            f"{summary.patients.updated} updated, "
            f"{summary.patients.unchanged} unchanged; "
            f"{summary.skipped_count} records skipped"
        )

        user, password = setup.reset_staff_user()
        if fresh:
            self.stdout.write("Seeding portal states through the service functions ...")
            report = setup.seed_demo_states(
                actor=user, mailbox_dir=mailbox_dir, smtp_port=mailbox_port
            )
            self.stdout.write(
                f"  {report.enabled} enabled, {report.invited} invited "
                f"({report.sent} emailed), {report.accounts} with accounts, "
                f"{report.logged_in} logged in"
            )
        else:
            self.stdout.write("Existing demo database: portal states left as they are.")
        return password

    def serve(self, environment, port, mailbox_port, mailbox_dir, urls, login):
        """Run the three processes until Ctrl-C or until one of them stops."""
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = {
            "demo mailbox": manage
            + [
                "demo_mailbox",
                "--port",
                str(mailbox_port),
                "--maildir",
                str(mailbox_dir),
            ],
            "worker": manage + ["run_worker", "--no-reload", "--interval", "1"],
            "web server": manage + ["runserver", f"{HOST}:{port}", "--noreload"],
        }
        children: dict[str, subprocess.Popen] = {}
        # A process manager stops programs with SIGTERM, which must stop the
        # children too, as Ctrl-C does.
        signal.signal(signal.SIGTERM, _raise_stop_requested)
        try:
            for name, command in commands.items():
                children[name] = subprocess.Popen(command, env=environment)  # noqa: S603
            self.wait_until_listening("demo mailbox", mailbox_port, children)
            self.wait_until_listening("web server", port, children)
            self.print_banner(urls, login, children)
            stopped = self.watch(children)
            raise CommandError(
                f"The {stopped} stopped (exit status {children[stopped].returncode}), "
                "so the demo was shut down. Its output above says why."
            )
        except (KeyboardInterrupt, StopRequested):
            self.stdout.write(
                "\nStopping the web server, the worker and the mailbox ..."
            )
        finally:
            self.stop(children)

    def wait_until_listening(self, name, port, children) -> None:
        """Return once PORT accepts connections, or raise CommandError if NAME fails."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.raise_if_stopped(children)
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise CommandError(
            f"The {name} did not accept connections on {HOST}:{port} within "
            f"{START_TIMEOUT} seconds."
        )

    def raise_if_stopped(self, children) -> None:
        for name, child in children.items():
            if child.poll() is not None:
                raise CommandError(
                    f"The {name} stopped while starting (exit status "
                    f"{child.returncode}). Its output above says why."
                )

    def watch(self, children) -> str:
        """Wait until a child exits and return its name."""
        while True:
            for name, child in children.items():
                if child.poll() is not None:
                    return name
            time.sleep(0.5)

    def print_banner(self, urls, login, children) -> None:
        width = max(len(label) for label in urls)
        lines = ["", "The demo practice is running.", ""]
        lines += [f"  {label:<{width}}  {url}" for label, url in urls.items()]
        lines += ["", f"  Staff login: {login}", ""]
        pids = ", ".join(f"{name} {child.pid}" for name, child in children.items())
        lines += [f"  Processes: {pids}", "  Press Ctrl-C to stop them all.", ""]
        self.stdout.write("\n".join(lines))

    def stop(self, children) -> None:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, child in children.items():
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"The {name} did not stop in time, so it was killed.")
                child.kill()
                child.wait()
