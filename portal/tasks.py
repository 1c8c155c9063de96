"""Background emails for the patient portal: password reset links and reminders.

They run in the task worker, so the request that queues them does no SMTP
work and returns the same page whether or not an account matched.
"""

import logging

from django.core.mail import mailers
from django.tasks import task

from invitations.emails import InvalidRecipient
from portal import emails
from portal.services import patient_users

logger = logging.getLogger(__name__)


def _send(description: str, build) -> None:
    """Build one email with BUILD() and send it; DESCRIPTION names it in the log.

    An address that cannot be used is logged, without the address, and
    nothing is sent.
    """
    try:
        message = build()
    except InvalidRecipient:
        logger.warning("%s not sent: invalid address", description)
        return
    mailers.default.send_messages([message])
    logger.info("%s sent", description)


def _active_user(user_id: int):
    return patient_users().select_related("patient").filter(pk=user_id).first()


@task
def send_password_reset(user_id: int) -> None:
    """Email a password reset link to the patient with this user id."""
    user = _active_user(user_id)
    if user is None:
        # Disabled or removed since the request; a link would not work anyway.
        logger.info("Password reset for user %s not sent: no active account", user_id)
        return
    _send(
        f"Password reset email for user {user_id}",
        lambda: emails.password_reset_email(user),
    )


@task
def send_username_reminder(user_ids: list[int]) -> None:
    """Email the usernames of these patients' accounts, which share one address."""
    users = list(
        patient_users().select_related("patient").filter(pk__in=user_ids).order_by("pk")
    )
    if not users:
        logger.info("Username reminder for users %s not sent: no account", user_ids)
        return
    _send(
        f"Username reminder for users {user_ids}",
        lambda: emails.username_reminder_email(users),
    )


@task
def send_email_change_notice(patient_id: int, old_address: str) -> None:
    """Tell the old address that the patient's address changed, without any link."""
    _send(
        f"Email change notice for patient {patient_id}",
        lambda: emails.email_change_notice(old_address),
    )


@task
def send_account_created(user_id: int) -> None:
    """Tell the patient's address on file that a portal account was set up."""
    user = _active_user(user_id)
    if user is None:
        logger.info("Account notice for user %s not sent: no active account", user_id)
        return
    _send(
        f"Account notice for user {user_id}",
        lambda: emails.account_created_email(user),
    )


@task
def send_email_change_confirmation(request_id: int) -> None:
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
    _send(
        f"Email change confirmation {request_id}",
        lambda: emails.email_change_confirmation(change),
    )
