from django.conf import settings
from django.db import models


class ImportRun(models.Model):
    """One import, from ``import_patients`` or a file uploaded on the imports page.

    The progress fields are written while the run goes on, in transactions of
    their own, so that the run's page can show how far it has got.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Importing"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    # When the run started: the upload time until the worker starts it.
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    source = models.CharField(max_length=100)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    # Bytes read of the files; the total grows when files are read twice.
    bytes_total = models.PositiveBigIntegerField(default=0)
    bytes_done = models.PositiveBigIntegerField(default=0)
    records_done = models.PositiveBigIntegerField(default=0)
    # Patients created, updated or found unchanged so far.
    patients_done = models.PositiveBigIntegerField(default=0)
    progress_at = models.DateTimeField(null=True, blank=True)
    # The uploaded file's name as the user's computer gave it, and where it is
    # kept until the import ends. Both are empty for runs of the command.
    upload_name = models.CharField(max_length=255, blank=True)
    upload_path = models.CharField(max_length=1000, blank=True)
    # Why a failed run failed, in words for the practice's staff.
    error = models.TextField(blank=True)
    # The printed summary as JSON: files, counts and skipped records.
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [("run_import", "Can import patients from an uploaded file")]

    def __str__(self):
        return f"Import {self.pk}"

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.FINISHED, self.Status.FAILED)

    @property
    def percent_done(self) -> int:
        if self.status == self.Status.FINISHED:
            return 100
        if self.bytes_total <= 0:
            return 0
        return min(100, self.bytes_done * 100 // self.bytes_total)
