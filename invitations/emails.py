"""The emails the product sends, one function per kind of email.

Each email has a subject, a plain-text body and an HTML body, rendered from
templates/emails/<kind>.subject.txt, <kind>.txt and <kind>.html.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from invitations.models import Invitation
from patients.models import is_valid_email


class InvalidRecipient(ValueError):
    """The recipient address cannot be put in a message header or an SMTP command."""


def check_recipient(address: str) -> str:
    """Return ADDRESS if it is one valid address, else raise InvalidRecipient.

    Addresses come from imported data, so a line break in one could add
    headers to the message. The error names the problem, never the address.
    """
    if "\r" in address or "\n" in address:
        raise InvalidRecipient(
            "The email address contains a line break. Correct the patient's "
            "email address and send a new invitation."
        )
    if not is_valid_email(address):
        raise InvalidRecipient(
            "The email address is not valid. Correct the patient's email "
            "address and send a new invitation."
        )
    return address


def invitation_link(invitation: Invitation) -> str:
    """Return the absolute link to the invitation page, built from PORTAL_BASE_URL."""
    return settings.PORTAL_BASE_URL + reverse(
        "invitation-link", args=[invitation.token]
    )


def invitation_email(invitation: Invitation) -> EmailMultiAlternatives:
    """Build the email that invites a patient to set up a portal account.

    It names the practice and carries the link and its expiry date. It leaves
    out anything clinical and even the patient's name, because a shared
    mailbox may be read by someone else. Raises InvalidRecipient for an
    unusable address.
    """
    recipient = check_recipient(invitation.email)
    context = {
        "practice_name": settings.PRACTICE_NAME,
        "link": invitation_link(invitation),
        "expires_at": invitation.expires_at,
    }
    return build_email("invitation", context, recipient)


def build_email(kind: str, context: dict, recipient: str) -> EmailMultiAlternatives:
    """Render the text and HTML email from the templates emails/KIND.*."""
    subject = render_to_string(f"emails/{kind}.subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string(f"emails/{kind}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient],
        # Tells mail servers this is automated, so they send no auto-replies.
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(
        render_to_string(f"emails/{kind}.html", context), "text/html"
    )
    return message
