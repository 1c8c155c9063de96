import datetime
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

# Letters that Unicode does not split into a base letter and an accent.
_UNSPLIT_LETTERS = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "þ": "th", "ı": "i"}
)


def fold_name(text: str) -> str:
    """Return TEXT in lower case without accents, so "Sørensen" reads "sorensen"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return bare.translate(_UNSPLIT_LETTERS)


def normalize_email(address: str) -> str:
    """Return the form used to compare addresses: trimmed and lower-cased."""
    return address.strip().lower()


def is_valid_email(address: str) -> bool:
    """Tell whether ADDRESS is one usable email address.

    Invisible characters (Unicode control, format and separator characters,
    such as a zero-width space) are refused even where the email validator
    accepts them, because they make an address look like another one.
    """
    if any(unicodedata.category(char)[0] in "CZ" for char in address):
        return False
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


class Practitioner(models.Model):
    """A clinician who can be a patient's primary provider.

    Imports deduplicate practitioners by FHIR resource id and by NPI.
    """

    fhir_id = models.CharField(max_length=128, blank=True, db_index=True)
    npi = models.CharField("NPI", max_length=20, blank=True, db_index=True)
    family_name = models.CharField(max_length=200, blank=True)
    given_names = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=50, blank=True)
    # Name as imported when it has no parts, e.g. a CSV "Dr. Ana Ruiz".
    text = models.CharField(max_length=300, blank=True)
    email = models.CharField(max_length=320, blank=True)

    class Meta:
        ordering = ["family_name", "given_names", "id"]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self) -> str:
        if self.family_name:
            name = f"{self.family_name}, {self.given_names}".rstrip(", ")
            return f"{self.prefix} {name}".strip() if self.prefix else name
        return self.text or self.npi or self.fhir_id or f"Practitioner {self.pk}"


class Tag(models.Model):
    """A practice's label for a group of patients, such as a program or cohort."""

    name = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class PatientQuerySet(models.QuerySet):
    def with_email(self):
        return self.exclude(email="")


class Patient(models.Model):
    """A patient imported from the practice's EHR, with their portal status."""

    class PortalState(models.TextChoices):
        NOT_ENABLED = "not_enabled", "Not enabled"
        ENABLED = "enabled", "Enabled"
        INVITED = "invited", "Invited"
        INVITE_FAILED = "invite_failed", "Invitation failed"
        INVITE_LAPSED = "invite_lapsed", "Invitation no longer works"
        ACCOUNT_SET_UP = "account_set_up", "Account set up"
        LOGGED_IN = "logged_in", "Logged in"

    # Where the record came from ("fhir", "csv" or a name given at import) and
    # its id there; together they find the same patient on re-import.
    source = models.CharField(max_length=100)
    source_id = models.CharField(max_length=200)

    family_name = models.CharField(max_length=200, blank=True)
    given_names = models.CharField(max_length=200, blank=True)
    # Lower-cased "family given", for sorting by name.
    sort_name = models.CharField(max_length=401, blank=True, db_index=True)
    # "family given" folded by fold_name(), for searching without accents.
    search_name = models.CharField(max_length=401, blank=True, db_index=True)
    birth_date = models.DateField(null=True, blank=True, db_index=True)

    email = models.CharField(max_length=320, blank=True)
    email_normalized = models.CharField(max_length=320, blank=True, db_index=True)
    email_valid = models.BooleanField(default=False)
    email_changed_at = models.DateTimeField(null=True, blank=True)

    primary_provider = models.ForeignKey(
        Practitioner,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="patients",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="patients")

    active = models.BooleanField(default=True)
    deceased = models.BooleanField(default=False)
    deceased_at = models.DateTimeField(null=True, blank=True)

    portal_access = models.BooleanField(default=False, db_index=True)
    portal_access_changed_at = models.DateTimeField(null=True, blank=True)
    # The patient's login, once they have finished account setup.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="patient",
    )
    # When an invitation email was last accepted by the SMTP server.
    last_invite_sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_login_at = models.DateTimeField(null=True, blank=True, db_index=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["sort_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_id"], name="patient_unique_source_id"
            )
        ]
        permissions = [
            ("enable_portal_access", "Can enable and disable portal access"),
            ("send_portal_invitation", "Can send portal invitations"),
            ("change_portal_username", "Can change a patient's portal username"),
            ("change_patient_email", "Can change a patient's email address"),
            (
                "override_safety_check",
                "Can include one patient that a safety check skipped",
            ),
        ]

    def __str__(self):
        return f"Patient {self.pk}"

    @property
    def display_name(self) -> str:
        """The name as staff read it in the list: "Last, First"."""
        if self.family_name and self.given_names:
            return f"{self.family_name}, {self.given_names}"
        return self.family_name or self.given_names or "(no name)"

    def set_email(self, address: str) -> None:
        """Store an address with its normalized form and whether it is valid."""
        self.email = address.strip()
        self.email_normalized = normalize_email(address)
        self.email_valid = bool(self.email) and is_valid_email(self.email)

    def set_name(self, family: str, given: str) -> None:
        self.family_name = family.strip()
        self.given_names = given.strip()
        self.sort_name = f"{self.family_name} {self.given_names}".strip().lower()
        self.search_name = fold_name(self.sort_name)

    def age_on(self, day: datetime.date) -> int | None:
        if self.birth_date is None:
            return None
        before_birthday = (day.month, day.day) < (
            self.birth_date.month,
            self.birth_date.day,
        )
        return day.year - self.birth_date.year - before_birthday

    @property
    def has_username(self) -> bool:
        return self.user_id is not None

    def portal_state(self, latest_invitation=None) -> str:
        """Return the state staff see at a glance, from the most advanced fact known.

        Without portal access nothing else counts: disabling access revokes
        the invitations and deactivates the login.
        """
        if not self.portal_access:
            return self.PortalState.NOT_ENABLED
        if self.last_login_at:
            return self.PortalState.LOGGED_IN
        if self.user_id:
            return self.PortalState.ACCOUNT_SET_UP
        if latest_invitation is not None:
            if latest_invitation.delivery_status == "failed":
                return self.PortalState.INVITE_FAILED
            # Expired, locked after wrong dates of birth, or revoked: the
            # patient needs a new invitation.
            if not latest_invitation.is_usable:
                return self.PortalState.INVITE_LAPSED
            return self.PortalState.INVITED
        return self.PortalState.ENABLED


class PatientIdentifier(models.Model):
    """A business identifier of a patient (an MRN, say), to match on re-import."""

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="identifiers"
    )
    system = models.CharField(max_length=300, blank=True)
    value = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["system", "value"], name="patient_identifier_unique"
            )
        ]

    def __str__(self):
        return f"Identifier {self.pk}"


class Appointment(models.Model):
    """A scheduled visit, used to filter patients by upcoming appointments."""

    class Status(models.TextChoices):
        PROPOSED = "proposed"
        PENDING = "pending"
        BOOKED = "booked"
        ARRIVED = "arrived"
        FULFILLED = "fulfilled"
        CANCELLED = "cancelled"
        NOSHOW = "noshow"
        ENTERED_IN_ERROR = "entered-in-error"
        CHECKED_IN = "checked-in"
        WAITLIST = "waitlist"

    # Statuses that do not count as a scheduled visit in the appointment filter.
    NOT_SCHEDULED = (Status.CANCELLED, Status.ENTERED_IN_ERROR, Status.NOSHOW)

    source = models.CharField(max_length=100)
    source_id = models.CharField(max_length=200)
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="appointments"
    )
    status = models.CharField(max_length=20, choices=Status.choices)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    practitioner = models.ForeignKey(
        Practitioner,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="appointments",
    )

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_id"], name="appointment_unique_source_id"
            )
        ]
        indexes = [
            models.Index(fields=["patient", "start"]),
            # For the list's date filters, which look for the patients with an
            # appointment in a range of days rather than each patient's dates.
            models.Index(fields=["start", "patient"]),
        ]

    def __str__(self):
        return f"Appointment {self.pk}"

    @property
    def is_upcoming(self) -> bool:
        return (
            self.start is not None
            and self.start >= timezone.now()
            and self.status not in self.NOT_SCHEDULED
        )


class BulkActionRequest(models.Model):
    """A confirmed bulk action, stored under the idempotency key of its confirm form.

    The key is unique, so a double click or a browser retry of the same
    confirmation finds the first request and reports its result instead of
    acting again.
    """

    idempotency_key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    action = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The executed plan: patients changed and patients skipped by reason.
    eligible = models.PositiveIntegerField(null=True, blank=True)
    skipped = models.JSONField(default=dict, blank=True)

    # An action on every patient matching the filters is a job
    # (patients.jobs): carried out in chunks of patients ordered by id, inside
    # the request when it is small and by a worker when it is large.
    chunked = models.BooleanField(default=False)
    # The list's filter parameters, URL-encoded, from which each chunk is
    # selected again.
    filter_query = models.TextField(blank=True)
    # Patients matching the filters when the job was confirmed, and how many
    # of them the committed chunks have covered.
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    # The highest patient id covered by a committed chunk.
    cursor = models.BigIntegerField(default=0)
    # When the last chunk was committed; a job quiet for too long is resumed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Why the job stopped before finishing, in words for staff.
    error = models.TextField(blank=True)

    def __str__(self):
        return f"Bulk action request {self.pk}"

    def get_action_label(self) -> str:
        from patients.bulk import ACTIONS

        return ACTIONS.get(self.action, self.action)

    @property
    def state(self) -> str:
        if self.finished_at is not None:
            return "finished"
        if self.error:
            return "stopped"
        return "running" if self.heartbeat_at else "queued"
