import sys

from django.conf import settings
from django.db import models
from django.db.models.deletion import Collector

# These checks stop the application only. On PostgreSQL a trigger (migration
# 0008) refuses changes from any connection, and grant_app_role gives the
# application's role no right to update or delete this table.


class AppendOnlyError(Exception):
    """An attempt to change or delete an audit event through the application."""


_RULE = "Audit events are append-only and cannot be changed or deleted"

# The foreign keys that Django sets to NULL when the referenced patient or user
# is deleted (on_delete=SET_NULL).
_NULLED_ON_DELETE = frozenset({"actor", "patient"})


def _is_set_null_on_delete(fields: dict, caller) -> bool:
    """Return whether an update is Django nulling one foreign key for a deletion.

    Deleting a patient or a user runs Django's deletion Collector, which
    issues ``update(patient=None)`` or ``update(actor=None)`` on the audit
    events that point at it, straight from ``Collector.delete``. That update
    and only that one is let through: the event keeps its actor_label and its
    detail, and loses only the link to the row being deleted.

    NOTE: this depends on Django 6.1 calling update() from Collector.delete.
    If that moves, deleting a patient raises AppendOnlyError, and the deletion
    tests in tests/test_audit_immutable.py fail.
    """
    if caller is None or caller.f_code is not Collector.delete.__code__:
        return False
    if len(fields) != 1:
        return False
    (name, value), *_ = fields.items()
    return name in _NULLED_ON_DELETE and value is None


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if _is_set_null_on_delete(kwargs, sys._getframe(1)):
            return super().update(**kwargs)
        raise AppendOnlyError(f"{_RULE}. update() was rejected.")

    def delete(self):
        raise AppendOnlyError(f"{_RULE}. delete() was rejected.")

    delete.queryset_only = True


class AuditEvent(models.Model):
    """One change of state: who did what to which patient, when, and how it ended.

    Rows are only ever inserted, by ``audit.record`` inside the transaction of
    the change they describe. ``save()`` of an existing row, ``delete()`` and
    the queryset's ``update()`` and ``delete()`` raise AppendOnlyError.
    """

    class Action(models.TextChoices):
        IMPORT = "import", "Import run"
        IMPORT_UPLOAD = "import_upload", "Import file uploaded"
        ENABLE_ACCESS = "enable_access", "Portal access enabled"
        DISABLE_ACCESS = "disable_access", "Portal access disabled"
        INVITE = "invite", "Invitation created"
        LETTER = "letter", "Activation letter printed"
        DELIVERY = "delivery", "Invitation delivery"
        ACCEPT = "accept", "Invitation accepted"
        DOB_MISMATCH = "dob_mismatch", "Wrong date of birth on invitation"
        LOGIN = "login", "Patient login"
        LOGOUT = "logout", "Patient logout"
        STAFF_LOGIN = "staff_login", "Staff login"
        TWO_FACTOR_RESET = "two_factor_reset", "Staff two-factor reset"
        DENIED = "denied", "Action refused"
        USERNAME_CHANGE = "username_change", "Username changed"
        EMAIL_CHANGE = "email_change", "Email address changed"
        EMAIL_CHANGE_REQUEST = "email_change_request", "Email change requested"
        PASSWORD_RESET = "password_reset", "Password reset"
        USERNAME_REMINDER = "username_reminder", "Username reminder"
        OVERRIDE = "override", "Safety check overridden"
        EXPORT = "export", "Audit log exported"

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
    # Email addresses appear here only for email changes, whose point they are.
    # A patient name appears only as the search of an audit log export. This
    # table is never written to the log.
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"])]
        # Deletions of patients and users find the events to unlink through
        # the base manager, so it must be the append-only one too.
        base_manager_name = "objects"

    def __str__(self):
        return f"{self.get_action_display()} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{_RULE}. save() of event {self.pk} was rejected.")
        # An INSERT only: a new object given the id of an existing row must
        # fail on the primary key rather than overwrite that row.
        kwargs["force_insert"] = True
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{_RULE}. delete() of event {self.pk} was rejected.")
