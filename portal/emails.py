"""The emails a patient requests from the portal, one function per kind.

Subjects and bodies are rendered from templates/emails/<kind>.subject.txt,
<kind>.txt and <kind>.html. Links are built from PORTAL_BASE_URL, never from
the Host header of a request, so a forged header cannot redirect them.
"""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from invitations.emails import build_email, check_recipient


def password_reset_link(user) -> str:
    """Return the absolute one-time link that lets USER choose a new password."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("portal-password-reset-confirm", args=[uid, token])
    return settings.PORTAL_BASE_URL + path


def password_reset_email(user):
    """Build the email with a password reset link, sent to the patient's address.

    Raises InvalidRecipient when the address on record cannot be used.
    """
    recipient = check_recipient(user.patient.email)
    context = {
        "practice_name": settings.PRACTICE_NAME,
        "username": user.get_username(),
        "link": password_reset_link(user),
        "valid_hours": settings.PASSWORD_RESET_TIMEOUT // 3600,
        "request_link": settings.PORTAL_BASE_URL + reverse("portal-password-reset"),
    }
    return build_email("password_reset", context, recipient)


def username_reminder_email(users):
    """Build one email listing the usernames of USERS, who share one address.

    Raises InvalidRecipient when the address on record cannot be used.
    """
    recipient = check_recipient(users[0].patient.email)
    context = {
        "practice_name": settings.PRACTICE_NAME,
        "usernames": [user.get_username() for user in users],
        "login_link": settings.PORTAL_BASE_URL + reverse("portal-login"),
        "reset_link": settings.PORTAL_BASE_URL + reverse("portal-password-reset"),
    }
    return build_email("username_reminder", context, recipient)


def email_change_notice(old_address: str):
    """Build the notice to a patient's previous address that it was replaced.

    It carries no link and does not show the new address, because the old
    mailbox may now be read by someone else. Raises InvalidRecipient for an
    unusable address.
    """
    recipient = check_recipient(old_address)
    context = {"practice_name": settings.PRACTICE_NAME}
    return build_email("email_changed", context, recipient)


def account_created_email(user):
    """Build the notice that a portal account was set up with this address.

    It names the username and links to the login page, so that a patient who
    did not set it up can tell the practice. Raises InvalidRecipient when the
    address on record cannot be used.
    """
    recipient = check_recipient(user.patient.email)
    context = {
        "practice_name": settings.PRACTICE_NAME,
        "username": user.get_username(),
        "login_link": settings.PORTAL_BASE_URL + reverse("portal-login"),
    }
    return build_email("account_created", context, recipient)


def email_change_confirmation(change):
    """Build the confirmation request for an email change, sent to the new address.

    Raises InvalidRecipient when the new address cannot be used.
    """
    recipient = check_recipient(change.new_email)
    path = reverse("portal-email-confirm-link", args=[change.token])
    context = {
        "practice_name": settings.PRACTICE_NAME,
        "link": settings.PORTAL_BASE_URL + path,
        "expires_at": change.expires_at,
    }
    return build_email("email_change_confirm", context, recipient)
