import hashlib
import secrets

from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac


class EmailChangeRequest(models.Model):
    """A patient's request to change their email address, until they confirm it.

    The confirmation link's token is derived from the stored salt with the
    SECRET_KEY, as invitation tokens are. So the worker can build the email
    without the token ever being stored, and the row contains only its hash.
    """

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="+"
    )
    new_email = models.CharField(max_length=320)
    # The address the patient had when asking; the link dies if it changes.
    old_email_normalized = models.CharField(max_length=320)
    salt = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"Email change request {self.pk}"

    @staticmethod
    def new_salt() -> str:
        return secrets.token_hex(16)

    @staticmethod
    def token_for_salt(salt: str) -> str:
        return salted_hmac("portal.email-change", salt, algorithm="sha256").hexdigest()

    @property
    def token(self) -> str:
        return self.token_for_salt(self.salt)

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @property
    def is_usable(self) -> bool:
        return (
            self.used_at is None
            and self.expires_at > timezone.now()
            and self.patient.email_normalized == self.old_email_normalized
        )
