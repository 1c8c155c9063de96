import argparse
import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from imports.progress import ImportProgress
from imports.services import import_patients

# Seconds between two redraws of the progress bar.
BAR_REFRESH_SECONDS = 0.25
BAR_FORMAT = (
    "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}"
)


class ProgressBar:
    """A progress bar on standard error: bytes read, records, patients per second.

    It shows counts only, never a file name or anything read from a file.
    """

    def __init__(self, stream):
        self.stream = stream
        self.started = time.monotonic()
        # Drawn at the first report, once the total is known.
        self.bar: tqdm | None = None

    def __call__(self, progress: ImportProgress) -> None:
        if self.bar is None:
            self.bar = tqdm(
                file=self.stream,
                total=progress.bytes_total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                bar_format=BAR_FORMAT,
                # The import reports at most every BAR_REFRESH_SECONDS.
                mininterval=0,
                miniters=1,
                dynamic_ncols=True,
            )
        self.bar.total = progress.bytes_total
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = progress.patients_done / elapsed
        self.bar.set_postfix_str(
            f"{progress.records_done:,} records, {progress.patients_done:,} "
            f"patients, {rate:,.0f} patients/s",
            refresh=False,
        )
        self.bar.update(progress.bytes_done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Import patients, practitioners and appointments from FHIR (JSON bundles, "
        "single resources, Bulk Data NDJSON) and CSV files or folders."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "paths",
            nargs="+",
            metavar="PATH",
            help="A file or a folder; folders are read recursively, files by name.",
        )
        parser.add_argument(
            "--source",
            help=(
                'Name of the system the files come from (default "fhir" for FHIR '
                'files and "csv" for CSV). A re-import with the same source '
                "updates the same patients."
            ),
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the summary as JSON, and nothing else, on standard output.",
        )
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=(
                "Show a progress bar on standard error: bytes read of all files, "
                "records, patients per second and the time left. By default it "
                "is shown when standard error is a terminal."
            ),
        )

    def handle(self, *args, **options):
        source = options["source"]
        if source is not None and not 0 < len(source.strip()) <= 100:
            raise CommandError("--source must be 1 to 100 characters long.")
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(
                f"The database {connection.settings_dict['NAME']} is not migrated. "
                "Run `manage.py migrate` first, then import again."
            )

        # The stream itself, because Django's wrapper ends every write with a
        # line break, which would break the bar's redraws.
        stream = options.get("stderr") or sys.stderr
        show_progress = options["progress"]
        if show_progress is None:
            show_progress = hasattr(stream, "isatty") and stream.isatty()

        if show_progress:
            bar = ProgressBar(stream)
            try:
                with logging_redirect_tqdm():
                    run, summary = import_patients(
                        options["paths"],
                        source=source,
                        progress=bar,
                        progress_interval=BAR_REFRESH_SECONDS,
                    )
            finally:
                bar.close()
        else:
            run, summary = import_patients(options["paths"], source=source)

        if options["json"]:
            self.stdout.write(json.dumps({"import_run": run.pk, **summary.as_dict()}))
        else:
            self.stdout.write(f"Import run {run.pk}")
            self.stdout.write(summary.as_text())
        if summary.failed:
            raise CommandError(
                f"Import run {run.pk} stopped early after {summary.failed}."
            )
        if summary.nothing_read:
            raise CommandError(
                "Nothing was imported: no file yielded a record. Check the paths "
                "and the list of files not imported above."
            )
