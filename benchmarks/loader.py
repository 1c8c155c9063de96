"""Writing a Practice into the benchmark database fast, with its portal states.

Rows go in with COPY on PostgreSQL and executemany on SQLite, in chunks of
CHUNK_SIZE patients with everything that refers to them: identifiers, tags,
appointments, portal logins and invitations. Values are computed the way the
product computes them (Patient.set_name, set_email), so the list, its
filters and the safety checks see what an import would have written. Columns
the loader does not set get the model field's default, so a field added to a
model later needs no change here unless it has no default.
"""

import datetime
import hashlib
import itertools
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Model

from benchmarks.practice import TAGS, PatientSpec, Practice
from invitations.models import Invitation
from patients import roles
from patients.models import (
    Appointment,
    Patient,
    PatientIdentifier,
    Practitioner,
    Tag,
    fold_name,
    normalize_email,
)

CHUNK_SIZE = 20_000
SOURCE = "bench"
ADMIN_USERNAME = "bench-admin"
# Patient logins get ids from here on, after the staff user.
FIRST_PATIENT_USER_ID = 1000
INVITATION_VALID_DAYS = 14


@dataclass
class LoadReport:
    patients: int = 0
    practitioners: int = 0
    appointments: int = 0
    tag_links: int = 0
    invitations: int = 0
    logins: int = 0
    seconds: float = 0.0


class Table:
    """One table's insert: the columns given per row, then every other default."""

    def __init__(self, model: type[Model], columns: Sequence[str]):
        self.model = model
        fields = {field.attname: field for field in model._meta.concrete_fields}
        unknown = [name for name in columns if name not in fields]
        if unknown:
            raise ValueError(f"{model.__name__} has no fields {unknown}.")
        self.given = list(columns)
        self.defaults = []
        default_values = []
        for name, field in fields.items():
            if name in self.given or (name == "id" and field.primary_key):
                continue
            # get_default() is "" for a text field without a default.
            value = field.get_default()
            if value is None and not field.null:
                raise ValueError(
                    f"{model.__name__}.{name} has no default and is not nullable: "
                    "add it to the loader's columns."
                )
            self.defaults.append((name, field))
            default_values.append(field.get_db_prep_save(value, connection))
        self.columns = [fields[name].column for name in self.given] + [
            field.column for _, field in self.defaults
        ]
        self.default_values = tuple(default_values)
        self.converters = [_converter(fields[name]) for name in self.given]

    def insert(self, rows: Iterable[tuple]) -> int:
        table = connection.ops.quote_name(self.model._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(name) for name in self.columns)
        extra = self.default_values
        converters = self.converters
        prepared = [
            tuple(
                value if convert is None or value is None else convert(value)
                for convert, value in zip(converters, row, strict=True)
            )
            + extra
            for row in rows
        ]
        if not prepared:
            return 0
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                copy_sql = f"COPY {table} ({columns}) FROM STDIN"
                with cursor.cursor.copy(copy_sql) as copy:
                    for row in prepared:
                        copy.write_row(row)
            else:
                # Names come from the model's metadata, values are parameters.
                marks = ", ".join(["%s"] * len(self.columns))
                insert = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
                cursor.executemany(insert, prepared)
        return len(prepared)


def _sqlite_datetime(value: datetime.datetime) -> str:
    # The text Django stores on SQLite: naive UTC, microseconds when not zero.
    return value.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(" ")


def _converter(field):
    """Return the function that turns a Python value into this database's form."""
    if connection.vendor != "sqlite":
        return None
    internal = field.get_internal_type()
    if internal == "DateTimeField":
        return _sqlite_datetime
    if internal == "DateField":
        return datetime.date.isoformat
    return None


def create_admin():
    """Create the staff user the benchmark acts as, with the Administrator role."""
    roles.ensure_roles()
    user = get_user_model().objects.create_user(username=ADMIN_USERNAME, is_staff=True)
    user.groups.add(Group.objects.get(name=roles.ADMINISTRATOR))
    return user


def load(practice: Practice, *, admin, now: datetime.datetime) -> LoadReport:
    """Write PRACTICE into the database; NOW is when the data were taken."""
    started = time.perf_counter()
    report = LoadReport()
    writer = _Writer(practice, admin, now)
    writer.write_reference_data(report)
    patients = practice.patients()
    while True:
        chunk = list(itertools.islice(patients, CHUNK_SIZE))
        if not chunk:
            break
        with transaction.atomic():
            writer.write_chunk(chunk, report)
    _reset_sequences()
    report.seconds = time.perf_counter() - started
    return report


def _reset_sequences() -> None:
    """Move PostgreSQL's id sequences past the ids the loader chose itself."""
    models = [Patient, Practitioner, Tag, Invitation, get_user_model()]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


class _Writer:
    """Turns the practice's patients into rows of each table, a chunk at a time."""

    def __init__(self, practice: Practice, admin, now: datetime.datetime):
        self.practice = practice
        self.admin = admin
        self.now = now
        self.random = random.Random(f"{practice.seed}-states")
        self.invitation_id = itertools.count(1)
        self.names: dict[tuple[str, tuple[str, ...]], tuple[str, str, str]] = {}

        self.patients = Table(
            Patient,
            [
                "id", "source", "source_id", "family_name", "given_names",
                "sort_name", "search_name", "birth_date", "email",
                "email_normalized", "email_valid", "primary_provider_id",
                "active", "deceased", "deceased_at", "portal_access",
                "portal_access_changed_at", "user_id", "last_invite_sent_at",
                "last_login_at", "created_at", "updated_at",
            ],
        )  # fmt: skip
        self.identifiers = Table(PatientIdentifier, ["patient_id", "system", "value"])
        self.tag_links = Table(Patient.tags.through, ["patient_id", "tag_id"])
        self.appointments = Table(
            Appointment,
            ["source", "source_id", "patient_id", "status", "start", "end",
             "practitioner_id"],
        )  # fmt: skip
        self.users = Table(
            get_user_model(),
            ["id", "password", "username", "email", "is_active", "date_joined"],
        )
        self.invitations = Table(
            Invitation,
            [
                "id", "patient_id", "channel", "email", "salt", "token_hash",
                "created_by_id", "created_at", "expires_at", "status",
                "accepted_at", "delivery_status", "delivery_attempts",
                "delivery_error", "sent_at",
            ],
        )  # fmt: skip

    def write_reference_data(self, report: LoadReport) -> None:
        practitioners = Table(
            Practitioner,
            ["id", "fhir_id", "npi", "family_name", "given_names", "prefix", "email"],
        )
        report.practitioners = practitioners.insert(
            (
                spec.number,
                spec.fhir_id,
                spec.npi,
                spec.family,
                " ".join(spec.given),
                "Dr.",
                spec.email,
            )
            for spec in self.practice.practitioners
        )
        Table(Tag, ["id", "name"]).insert(
            (index + 1, name) for index, (name, _, _) in enumerate(TAGS)
        )

    def _name_fields(self, spec: PatientSpec) -> tuple[str, str, str]:
        key = (spec.family, spec.given)
        if key not in self.names:
            given = " ".join(spec.given)
            sort_name = f"{spec.family} {given}".strip().lower()
            self.names[key] = (given, sort_name, fold_name(sort_name))
        return self.names[key]

    def write_chunk(self, chunk: list[PatientSpec], report: LoadReport) -> None:
        users, patients, identifiers, links, appointments, invitations = (
            [], [], [], [], [], []
        )  # fmt: skip
        for spec in chunk:
            user_id, login_at, sent_at = self._portal_rows(spec, users, invitations)
            patients.append(self._patient_row(spec, user_id, login_at, sent_at))
            identifiers.append(
                (spec.number, "http://riverside.example.org/fhir/sid/mrn",
                 f"RFP{100000 + spec.number}")
            )  # fmt: skip
            links.extend((spec.number, index + 1) for index in spec.tags)
            provider = None if spec.provider is None else spec.provider + 1
            for index, visit in enumerate(spec.visits):
                appointments.append(
                    (SOURCE, f"a{spec.number}-{index}", spec.number, visit.status,
                     visit.start, visit.start + datetime.timedelta(minutes=20),
                     provider)
                )  # fmt: skip
        report.logins += self.users.insert(users)
        report.patients += self.patients.insert(patients)
        self.identifiers.insert(identifiers)
        report.tag_links += self.tag_links.insert(links)
        report.appointments += self.appointments.insert(appointments)
        report.invitations += self.invitations.insert(invitations)

    def _patient_row(self, spec, user_id, login_at, sent_at) -> tuple:
        given, sort_name, search_name = self._name_fields(spec)
        access = spec.state != "not_enabled"
        changed = self.now - datetime.timedelta(days=spec.invited_days_ago + 1)
        created = self.now - datetime.timedelta(days=500)
        return (
            spec.number, SOURCE, spec.fhir_id, spec.family, given, sort_name,
            search_name, spec.birth_date, spec.email, normalize_email(spec.email),
            spec.email_valid,
            None if spec.provider is None else spec.provider + 1,
            spec.active, spec.deceased, spec.deceased_at, access,
            changed if access else None, user_id, sent_at, login_at, created,
            created,
        )  # fmt: skip

    def _portal_rows(self, spec: PatientSpec, users: list, invitations: list):
        """Add the login and invitations of SPEC's portal state to the lists.

        Returns the login's id, the time of the last login and the time the
        last invitation was sent, each None when it does not apply.
        """
        state = spec.state
        if state in ("not_enabled", "enabled"):
            return None, None, None

        created = self.now - datetime.timedelta(
            days=spec.invited_days_ago, minutes=self.random.randrange(600)
        )
        if spec.resent:
            older = created - datetime.timedelta(days=self.random.randrange(5, 60))
            invitations.append(
                self._invitation(spec, older, "superseded", "sent", older, None)
            )
        sent_at = None if state == "invite_failed" else created
        if state in ("account_set_up", "logged_in"):
            accepted = created + datetime.timedelta(hours=self.random.randrange(1, 72))
            invitations.append(
                self._invitation(spec, created, "accepted", "sent", sent_at, accepted)
            )
            user_id = FIRST_PATIENT_USER_ID + spec.number
            username = f"bench-patient-{spec.number}"
            users.append((user_id, "!", username, spec.email, True, accepted))
            login_at = None
            if state == "logged_in":
                login_at = min(
                    self.now,
                    accepted + datetime.timedelta(days=self.random.randrange(0, 200)),
                )
            return user_id, login_at, sent_at

        delivery = "failed" if state == "invite_failed" else "sent"
        invitations.append(
            self._invitation(spec, created, "pending", delivery, sent_at, None)
        )
        if sent_at is None and spec.resent:
            sent_at = older
        return None, None, sent_at

    def _invitation(self, spec, created, status, delivery, sent_at, accepted):
        number = next(self.invitation_id)
        salt = f"{number:032x}"
        token_hash = hashlib.sha256(f"bench-{self.practice.seed}-{number}".encode())
        error = "The mail server answered 550 5.1.1 Mailbox unavailable"
        return (
            number, spec.number, "email", spec.email, salt, token_hash.hexdigest(),
            self.admin.pk, created,
            created + datetime.timedelta(days=INVITATION_VALID_DAYS), status,
            accepted, delivery, 1, error if delivery == "failed" else "", sent_at,
        )  # fmt: skip
