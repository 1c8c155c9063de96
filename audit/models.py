from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One change of state: who did what to which patient, when, and how it ended.

    Rows are only ever inserted, by ``audit.record`` inside the transaction of
    the change they describe.
    """

    class Action(models.TextChoices):
        IMPORT = "import", "Import run"
        ENABLE_ACCESS = "enable_access", "Portal access enabled"
        DISABLE_ACCESS = "disable_access", "Portal access disabled"
        INVITE = "invite", "Invitation created"
        DELIVERY = "delivery", "Invitation delivery"
        ACCEPT = "accept", "Invitation accepted"
        DOB_MISMATCH = "dob_mismatch", "Wrong date of birth on invitation"
        LOGIN = "login", "Patient login"
        LOGOUT = "logout", "Patient logout"
        STAFF_LOGIN = "staff_login", "Staff login"
        USERNAME_CHANGE = "username_change", "Username changed"
        EMAIL_CHANGE = "email_change", "Email address changed"
        PASSWORD_RESET = "password_reset", "Password reset"
        USERNAME_REMINDER = "username_reminder", "Username reminder"
        OVERRIDE = "override", "Safety check overridden"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"

    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept beside the foreign key so the record still says who acted after the
    # user is deleted; "system" for the worker and "import" for imports.
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action.choices)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS
    )
    patient = models.ForeignKey(
        "patients.Patient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    # Facts about the event that are not patient data: ids, counts, reasons.
    # Email addresses appear here only for email changes, where the old and new
    # address are the point of the record; this table is never logged.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"])]

    def __str__(self):
        return f"{self.get_action_display()} by {self.actor_label}"
