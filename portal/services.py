"""State changes a patient starts from the portal: password resets and reminders.

Each runs in one transaction with its audit records, and queues its email
in that transaction, so an email goes out only for a change that committed.
The callers show the same page whether or not an account matched.
"""

import datetime
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

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


@transaction.atomic
def request_email_change(user, new_email: str):
    """Record a patient's wish to use NEW_EMAIL and email it a confirmation link.

    Nothing changes until the patient opens that link, which proves they
    read the new mailbox. A newer request replaces any earlier one.
    """
    from portal.models import EmailChangeRequest
    from portal.tasks import send_email_change_confirmation

    patient = Patient.objects.select_for_update().get(user=user)
    EmailChangeRequest.objects.filter(patient=patient, used_at=None).delete()
    now = timezone.now()
    salt = EmailChangeRequest.new_salt()
    change = EmailChangeRequest.objects.create(
        patient=patient,
        new_email=new_email.strip(),
        old_email_normalized=patient.email_normalized,
        salt=salt,
        token_hash=EmailChangeRequest.hash_token(
            EmailChangeRequest.token_for_salt(salt)
        ),
        created_at=now,
        expires_at=now + datetime.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
    )
    record(
        AuditEvent.Action.EMAIL_CHANGE_REQUEST,
        actor=user,
        patient=patient,
        request_id=change.pk,
    )
    send_email_change_confirmation.enqueue(change.pk)
    return change


def find_email_change(token: str):
    """Return the usable email change request for a link's token, or None."""
    from portal.models import EmailChangeRequest

    change = (
        EmailChangeRequest.objects.select_related("patient")
        .filter(token_hash=EmailChangeRequest.hash_token(token))
        .first()
    )
    return change if change is not None and change.is_usable else None


def opened_email_change(request_id):
    """Return the usable email change request with this id, or None."""
    from portal.models import EmailChangeRequest

    if not isinstance(request_id, int):
        return None
    change = (
        EmailChangeRequest.objects.select_related("patient")
        .filter(pk=request_id)
        .first()
    )
    return change if change is not None and change.is_usable else None


@transaction.atomic
def confirm_email_change(change, *, user) -> bool:
    """Apply a confirmed email change; return False when the link no longer works."""
    from patients.services import change_email
    from portal.models import EmailChangeRequest

    change = (
        EmailChangeRequest.objects.select_for_update()
        .select_related("patient")
        .get(pk=change.pk)
    )
    if not change.is_usable or change.patient.user_id != user.pk:
        return False
    change.used_at = timezone.now()
    change.save(update_fields=["used_at"])
    change_email(change.patient, change.new_email, actor=user, confirmed_by="patient")
    return True
