"""State changes a patient starts from the portal: password resets and reminders.

Each runs in one transaction with its audit records, and queues its email
in that transaction, so an email goes out only for a change that committed.
The callers show the same page whether or not an account matched.
"""

import logging

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from audit.models import AuditEvent
from audit.services import record
from patients.models import Patient, normalize_email

logger = logging.getLogger(__name__)


def patient_users():
    """Active logins of patients, excluding any account that is also staff."""
    return get_user_model().objects.filter(
        is_active=True, is_staff=False, is_superuser=False, patient__isnull=False
    )


@transaction.atomic
def request_password_reset(identifier: str) -> int:
    """Queue a password reset email for the accounts matching a username or email.

    A username matches case-insensitively; an email address matches the
    patient's current address in the practice's records. Returns how many
    accounts matched, for logging only: the page must not show it.
    """
    from portal.tasks import send_password_reset

    identifier = identifier.strip()
    if not identifier:
        return 0
    users = list(
        patient_users()
        .filter(
            Q(username__iexact=identifier)
            | Q(patient__email_normalized=normalize_email(identifier))
        )
        .select_related("patient")
    )
    for user in users:
        record(
            AuditEvent.Action.PASSWORD_RESET,
            actor=user,
            patient=user.patient,
            stage="requested",
        )
        send_password_reset.enqueue(user.pk)
    logger.info("Password reset requested; %d accounts matched", len(users))
    return len(users)


@transaction.atomic
def complete_password_reset(user, password: str) -> None:
    """Set the new password chosen from a reset link, and audit it.

    The caller has checked the link's token and validated the password.
    """
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    user.set_password(password)
    user.save(update_fields=["password"])
    record(
        AuditEvent.Action.PASSWORD_RESET,
        actor=user,
        patient=Patient.objects.filter(user=user).first(),
        stage="completed",
    )
    logger.info("Password reset completed for user %s", user.pk)


@transaction.atomic
def request_username_reminder(email: str) -> int:
    """Queue one email listing the usernames of the accounts at this address.

    Returns how many accounts matched, for logging only.
    """
    from portal.tasks import send_username_reminder

    users = list(
        patient_users()
        .filter(patient__email_normalized=normalize_email(email))
        .select_related("patient")
        .order_by("pk")
    )
    if not users:
        logger.info("Username reminder requested; no account matched")
        return 0

    for user in users:
        record(AuditEvent.Action.USERNAME_REMINDER, actor=user, patient=user.patient)
    send_username_reminder.enqueue([user.pk for user in users])
    logger.info("Username reminder requested; %d accounts matched", len(users))
    return len(users)
