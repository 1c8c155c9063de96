import json

from django.core.management.base import BaseCommand, CommandError

from imports.services import import_patients


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

    def handle(self, *args, **options):
        source = options["source"]
        if source is not None and not 0 < len(source.strip()) <= 100:
            raise CommandError("--source must be 1 to 100 characters long.")

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
