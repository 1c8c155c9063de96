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


@task
def send_password_reset(user_id: int) -> None:
    """Email a password reset link to the patient with this user id."""
    user = patient_users().select_related("patient").filter(pk=user_id).first()
    if user is None:
        # Disabled or removed since the request; a link would not work anyway.
        logger.info("Password reset for user %s not sent: no active account", user_id)
        return

    try:
        message = emails.password_reset_email(user)
    except InvalidRecipient:
        logger.warning("Password reset for user %s not sent: invalid address", user_id)
        return
    mailers.default.send_messages([message])
    logger.info("Password reset email sent for user %s", user_id)


@task
def send_username_reminder(user_ids: list[int]) -> None:
    """Email the usernames of these patients' accounts, which share one address."""
    users = list(
        patient_users().select_related("patient").filter(pk__in=user_ids).order_by("pk")
    )
    if not users:
        logger.info("Username reminder for users %s not sent: no account", user_ids)
        return

    try:
        message = emails.username_reminder_email(users)
    except InvalidRecipient:
        logger.warning(
            "Username reminder for users %s not sent: invalid address", user_ids
        )
        return
    mailers.default.send_messages([message])
    logger.info("Username reminder sent for users %s", user_ids)


@task
def send_email_change_notice(patient_id: int, old_address: str) -> None:
    """Tell the old address that the patient's address changed, without any link."""
    try:
        message = emails.email_change_notice(old_address)
    except InvalidRecipient:
        logger.info("Email change notice for patient %s not sent: invalid", patient_id)
        return
    mailers.default.send_messages([message])
    logger.info("Email change notice sent for patient %s", patient_id)


@task
def send_account_created(user_id: int) -> None:
    """Tell the patient's address on file that a portal account was set up."""
    user = patient_users().select_related("patient").filter(pk=user_id).first()
    if user is None:
        logger.info("Account notice for user %s not sent: no active account", user_id)
        return
    try:
        message = emails.account_created_email(user)
    except InvalidRecipient:
        logger.warning("Account notice for user %s not sent: invalid address", user_id)
        return
    mailers.default.send_messages([message])
    logger.info("Account notice sent for user %s", user_id)


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
    try:
        message = emails.email_change_confirmation(change)
    except InvalidRecipient:
        logger.warning("Email change confirmation %s not sent: invalid", request_id)
        return
    mailers.default.send_messages([message])
    logger.info("Email change confirmation %s sent", request_id)
