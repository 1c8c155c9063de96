from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from demo.generator import build_export, write_export


class Command(BaseCommand):
    help = (
        "Write a fictional practice as a FHIR R4 Bulk Data export: one NDJSON file "
        "per resource type in OUTDIR. The same seed gives the same resource ids."
    )

    def add_arguments(self, parser):
        parser.add_argument("outdir", metavar="OUTDIR", help="Folder to write into.")
        parser.add_argument(
            "--patients",
            type=int,
            default=400,
            help="Number of patients (default 400).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=1,
            help="Seed of the random generator (default 1).",
        )

    def handle(self, *args, **options):
        folder = Path(options["outdir"])
        if folder.exists() and not folder.is_dir():
            raise CommandError(f"{folder} exists and is not a folder. Choose a folder.")
        try:
            export = build_export(patients=options["patients"], seed=options["seed"])
        except ValueError as error:
            raise CommandError(f"--patients: {error}") from None

        written = write_export(export, folder)

        for kind, path in written.items():
            self.stdout.write(f"{export.count(kind):6d} {kind:<17} {path}")
