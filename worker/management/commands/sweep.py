import json

from django.core.management.base import BaseCommand

from worker.sweep import sweep


class Command(BaseCommand):
    help = (
        "Queue again the work that stopped processes left unfinished: "
        "invitations not sent and bulk actions not completed. Safe to run at any "
        "time and from several machines; `run_worker` also runs it every "
        "SWEEP_INTERVAL_SECONDS."
    )

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(sweep().as_dict()))
