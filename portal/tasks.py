"""Background emails for the patient portal: password reset links and reminders.

They run in the task worker, so the request that queues them does no SMTP
work and returns the same page whether or not an account matched. When the
mail server is unavailable, each is tried again later, with the same waits
as invitations (up to DELIVERY_MAX_ATTEMPTS tries).

NOTE: unlike invitations, an email whose worker is killed while sending it
is not sent again; the patient can make the request again.
"""

import logging
import smtplib

from django.conf import settings
from django.core.mail import mailers
from django.tasks import task
from django.utils import timezone

from invitations.emails import InvalidRecipient
from invitations.services import retry_delay
from portal import emails
from portal.services import patient_users

logger = logging.getLogger(__name__)


def _send(description: str, build, retry) -> None:
    """Build one email with BUILD() and send it; DESCRIPTION names it in the log.

    An address that cannot be used is logged, without the address, and
    nothing is sent. When the server is unavailable or replies with a
    temporary error, RETRY(error) queues the task again.
    """
    try:
        message = build()
    except InvalidRecipient:
        logger.warning("%s not sent: invalid address", description)
        return
    try:
        mailers.default.send_messages([message])
    except (OSError, smtplib.SMTPException) as error:
        if isinstance(error, smtplib.SMTPRecipientsRefused):
            # One recipient per message, so one (code, reply) pair.
            code = next(iter(error.recipients.values()))[0]
        else:
            code = getattr(error, "smtp_code", None)
        if code is not None and 500 <= code < 600:
            logger.warning("%s not sent: rejected with SMTP code %s", description, code)
            return
        retry(error)
        return
    logger.info("%s sent", description)


def _retry_later(task_to_retry, description: str, attempt: int, *args):
    """Return a function that queues TASK_TO_RETRY again after a temporary error."""

    def retry(error: Exception) -> None:
        if attempt >= settings.DELIVERY_MAX_ATTEMPTS:
            logger.error(
                "%s not sent after %d tries (%s); giving up",
                description,
                attempt,
                type(error).__name__,
            )
            return
        run_after = timezone.now() + retry_delay(attempt)
        task_to_retry.using(run_after=run_after).enqueue(*args, attempt=attempt + 1)
        logger.warning(
            "%s not sent (%s), trying again at %s",
            description,
            type(error).__name__,
            run_after.isoformat(),
        )

    return retry


def _active_user(user_id: int):
    return patient_users().select_related("patient").filter(pk=user_id).first()


@task
def send_password_reset(user_id: int, attempt: int = 1) -> None:
    """Email a password reset link to the patient with this user id."""
    user = _active_user(user_id)
    if user is None:
        # Disabled or removed since the request; a link would not work anyway.
        logger.info("Password reset for user %s not sent: no active account", user_id)
        return
    description = f"Password reset email for user {user_id}"
    _send(
        description,
        lambda: emails.password_reset_email(user),
        _retry_later(send_password_reset, description, attempt, user_id),
    )


@task
def send_username_reminder(user_ids: list[int], attempt: int = 1) -> None:
    """Email the usernames of these patients' accounts, which share one address."""
    users = list(
        patient_users().select_related("patient").filter(pk__in=user_ids).order_by("pk")
    )
    if not users:
        logger.info("Username reminder for users %s not sent: no account", user_ids)
        return
    description = f"Username reminder for users {user_ids}"
    _send(
        description,
        lambda: emails.username_reminder_email(users),
        _retry_later(send_username_reminder, description, attempt, user_ids),
    )


@task
def send_email_change_notice(
    patient_id: int, old_address: str, attempt: int = 1
) -> None:
    """Tell the old address that the patient's address changed, without any link."""
    description = f"Email change notice for patient {patient_id}"
    _send(
        description,
        lambda: emails.email_change_notice(old_address),
        _retry_later(
            send_email_change_notice, description, attempt, patient_id, old_address
        ),
    )


@task
def send_account_created(user_id: int, attempt: int = 1) -> None:
    """Tell the patient's address on file that a portal account was set up."""
    user = _active_user(user_id)
    if user is None:
        logger.info("Account notice for user %s not sent: no active account", user_id)
        return
    description = f"Account notice for user {user_id}"
    _send(
        description,
        lambda: emails.account_created_email(user),
        _retry_later(send_account_created, description, attempt, user_id),
    )


@task
def send_email_change_confirmation(request_id: int, attempt: int = 1) -> None:
    """Email the confirmation link for an email change to the new address."""
    from portal.models import EmailChangeRequest

    change = (
        EmailChangeRequest.objects.select_related("patient")
        .filter(pk=request_id)
        .first()
    )
    if change is None or not change.is_usable:
        logger.info("Email change confirmation %s not sent: replaced", request_id)
        return
    description = f"Email change confirmation {request_id}"
    _send(
        description,
        lambda: emails.email_change_confirmation(change),
        _retry_later(send_email_change_confirmation, description, attempt, request_id),
    )
