import base64
import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet):
    def usable(self):
        """Invitations whose link still works: pending and not expired."""
        return self.filter(
            status=Invitation.Status.PENDING, expires_at__gt=timezone.now()
        )


class Invitation(models.Model):
    """One invitation to set up a portal login: an emailed link or a printed letter.

    The link's token is never stored. It is derived from a random salt and
    SECRET_KEY, so a repeated delivery carries the same link, and the database
    holds only the token's SHA-256 hash to look it up by.

    A letter carries a random activation code instead (invitations.codes).
    The code is printed once and can be neither read nor derived from the
    database: token_hash contains its keyed hash, and salt is empty.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        LETTER = "letter", "Printed letter"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        SUPERSEDED = "superseded", "Replaced by a newer invitation"
        REVOKED = "revoked", "Revoked"
        LOCKED = "locked", "Locked after wrong dates of birth"

    class Delivery(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Not sent (replaced before delivery)"
        # A letter handed over or posted by the practice, never emailed.
        PRINTED = "printed", "Printed"

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="invitations"
    )
    channel = models.CharField(
        max_length=8, choices=Channel.choices, default=Channel.EMAIL
    )
    # The address the invitation goes to, as it was when it was created;
    # empty for a letter.
    email = models.CharField(max_length=320)
    salt = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField()

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    dob_failures = models.PositiveSmallIntegerField(default=0)

    delivery_status = models.CharField(
        max_length=16, choices=Delivery.choices, default=Delivery.QUEUED
    )
    delivery_attempts = models.PositiveSmallIntegerField(default=0)
    delivery_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A worker sending this invitation claims it until claimed_until. Other
    # workers skip it until then, and the recovery sweep queues it again if
    # the claim runs out with the invitation still queued.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # In the order of a patient's newest invitation, which the
            # onboarding list looks up for every patient it shows.
            models.Index(fields=["patient", "-created_at", "-id"]),
            models.Index(fields=["delivery_status", "next_attempt_at"]),
        ]

    def __str__(self):
        return f"Invitation {self.pk}"

    @staticmethod
    def new_salt() -> str:
        return secrets.token_hex(16)

    @staticmethod
    def token_for_salt(salt: str) -> str:
        digest = hmac.new(
            settings.SECRET_KEY.encode(),
            f"portal-invitation:{salt}".encode(),
            hashlib.sha256,
        ).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    @property
    def token(self) -> str:
        """The secret in the link; only the worker that emails it should read this."""
        if self.channel == self.Channel.LETTER:
            raise ValueError(
                f"Invitation {self.pk} is a printed letter: its activation code "
                "was shown once on the letter and cannot be derived again."
            )
        return self.token_for_salt(self.salt)

    @property
    def needs_letter_code(self) -> bool:
        """Whether accepting this invitation also takes a letter's activation code.

        With ACTIVATION_CODE_REQUIRED an emailed link is not enough on its own.
        """
        return settings.ACTIVATION_CODE_REQUIRED and self.channel == self.Channel.EMAIL

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.PENDING and not self.is_expired

    @property
    def display_status(self) -> str:
        if self.status == self.Status.PENDING and self.is_expired:
            return "Expired"
        return self.get_status_display()
