"""Write import records to the database, and count what changed.

The Importer calls these methods inside a transaction per chunk and a
savepoint per record, or per chunk for the methods that save a whole chunk
at once. A save method returns "created", "updated" or
"unchanged" (or None for a record that adds nothing to count), so the count
is made only after the record's savepoint has committed.
"""

import datetime

from django.db import DatabaseError, connection
from django.utils import timezone

from imports.fhir import Reference
from imports.linking import PractitionerIndex, resolve_patients
from imports.records import AppointmentRecord, PatientRecord, PractitionerRecord
from imports.rows import select_in, sqlite_text
from imports.summary import Summary
from patients.models import (
    Appointment,
    Patient,
    PatientIdentifier,
    Practitioner,
    Tag,
    is_valid_email,
    normalize_email,
)
from patients.services import change_email
from portal.bulk_writes import insert_rows, reserve_ids

ACTOR_LABEL = "import"


def _patient_fields(patient: Patient) -> tuple:
    return (
        patient.family_name,
        patient.given_names,
        patient.birth_date,
        patient.active,
        patient.deceased,
        patient.deceased_at,
        patient.primary_provider_id,
    )


# The fields of an appointment that an import sets, besides its source and id.
APPOINTMENT_FIELDS = ["patient_id", "status", "start", "end", "practitioner_id"]
EMAIL_FIELDS = ["email", "email_normalized", "email_valid", "email_changed_at"]


# The columns save_new_patients() writes. The other columns of a new patient
# are nullable and start empty (no portal access, user, invitation or login).
NEW_PATIENT_FIELDS = [
    "source",
    "source_id",
    "family_name",
    "given_names",
    "sort_name",
    "search_name",
    "birth_date",
    "email",
    "email_normalized",
    "email_valid",
    "primary_provider_id",
    "active",
    "deceased",
    "deceased_at",
    "portal_access",
    "created_at",
    "updated_at",
]


class _NewPatient:
    """The name and email fields of a new patient, as Patient's setters fill them."""

    __slots__ = (
        "family_name",
        "given_names",
        "sort_name",
        "search_name",
        "email",
        "email_normalized",
        "email_valid",
    )


def _new_patient_row(
    source: str, record: PatientRecord, provider: int | None, now: datetime.datetime
) -> tuple:
    """Return the NEW_PATIENT_FIELDS values of a patient that save_patient() creates."""
    fields = _NewPatient()
    # Patient's own setters, so that the derived fields cannot drift from
    # those of a patient saved one at a time.
    Patient.set_name(fields, record.family_name[:200], record.given_names[:200])
    Patient.set_email(fields, record.email)
    return (
        source,
        record.source_id,
        fields.family_name,
        fields.given_names,
        fields.sort_name,
        fields.search_name,
        record.birth_date,
        fields.email,
        fields.email_normalized,
        fields.email_valid,
        provider,
        record.active,
        record.deceased,
        record.deceased_at,
        False,
        now,
        now,
    )


class Store:
    def __init__(self, summary: Summary, run_id: int | None, now: datetime.datetime):
        self.summary = summary
        self.run_id = run_id
        self.now = now
        self.practitioners = PractitionerIndex()
        # Practitioners saved or matched in this run: each is counted once.
        self.practitioners_seen: set[int] = set()
        self.tag_pks: dict[str, int] = {}
        # (source, id) -> pk of patients matched by identifier, whose stored
        # source id differs, so references by the new id still resolve.
        self.patient_aliases: dict[tuple[str, str], int] = {}
        # True while the database had no patients (or appointments) when the
        # run began and every chunk so far went in at once. A chunk is then
        # inserted without looking its keys up first: the unique constraints
        # reject a repeat, and the chunk is prepared again and saved record
        # by record, with the lookups, as is every later chunk.
        self.patients_unseen: bool | None = None
        self.appointments_unseen: bool | None = None

    def forget_run_keys(self) -> None:
        """Drop cached keys, which a rolled-back chunk may have made wrong."""
        self.tag_pks.clear()
        self.practitioners.forget_run_keys()
        self.practitioners_seen.clear()

    # --- Practitioners ---

    def save_practitioner(self, record: PractitionerRecord, _context) -> str | None:
        pk = self.practitioners.find(fhir_id=record.fhir_id, npi=record.npi)
        values = record.fields()

        if pk is None:
            practitioner = Practitioner.objects.create(fhir_id=record.fhir_id, **values)
            outcome = "created"
        else:
            practitioner = Practitioner.objects.get(pk=pk)
            # The first occurrence in a run overwrites; later duplicates of
            # the same practitioner only fill blanks. No field is ever blanked,
            # so importing the same files again changes nothing.
            first_time = pk not in self.practitioners_seen
            if record.fhir_id and not practitioner.fhir_id:
                values["fhir_id"] = record.fhir_id
            changed = [
                name
                for name, value in values.items()
                if value
                and value != getattr(practitioner, name)
                and (first_time or not getattr(practitioner, name))
            ]
            for name in changed:
                setattr(practitioner, name, values[name])
            if changed:
                practitioner.save(update_fields=changed)
            outcome = None
            if first_time:
                outcome = "updated" if changed else "unchanged"

        self.practitioners_seen.add(practitioner.pk)
        self.practitioners.remember(
            practitioner.pk,
            fhir_id=record.fhir_id,
            npi=record.npi,
            full_url=record.full_url,
            identifiers=record.identifiers,
        )
        return outcome

    def csv_practitioner(self, npi: str, name: str) -> int:
        """Find or create the practitioner a spreadsheet names by NPI or name."""
        pk = self.practitioners.find(npi=npi) if npi else None
        if pk is None and name:
            pk = (
                Practitioner.objects.filter(text=name)
                .order_by("pk")
                .values_list("pk", flat=True)
                .first()
            )
        if pk is None:
            pk = Practitioner.objects.create(npi=npi[:20], text=name[:300]).pk
            self.summary.practitioners.created += 1
        elif pk not in self.practitioners_seen:
            self.summary.practitioners.unchanged += 1
        self.practitioners_seen.add(pk)
        self.practitioners.remember(pk, npi=npi)
        return pk

    # --- Patients ---

    def prepare_patients(self, items: list[tuple[str, PatientRecord]]) -> dict:
        """Load in a few queries what a chunk of patients needs.

        Tags and spreadsheet practitioners are created here, outside the
        per-record savepoints, so a failed record cannot roll back a row that
        the caches still point to.
        """
        if self.patients_unseen is None:
            self.patients_unseen = not Patient.objects.exists()
        existing, owners = {}, {}
        if not self.patients_unseen:
            existing = self._existing_patients(items)
            owners = _identifier_owners(items)

        providers = {}
        for _, record in items:
            for name in record.tags:
                self.tag_pk(name)
            key = (record.provider_npi, record.provider_name)
            if any(key) and key not in providers:
                providers[key] = self.csv_practitioner(*key)
        return {"existing": existing, "owners": owners, "providers": providers}

    def _existing_patients(self, items) -> dict[tuple[str, str], Patient]:
        existing = {}
        ids_by_source: dict[str, set] = {}
        for source, record in items:
            ids_by_source.setdefault(source, set()).add(record.source_id)
        for source, ids in ids_by_source.items():
            # A first import finds none, so the rows are loaded only if found.
            pks = list(_pks_by_source_id(Patient, source, ids).values())
            for patient in Patient.objects.filter(pk__in=pks) if pks else []:
                existing[(source, patient.source_id)] = patient
        return existing

    def tag_pk(self, name: str) -> int:
        if name not in self.tag_pks:
            tag, created = Tag.objects.get_or_create(name=name)
            self.tag_pks[name] = tag.pk
            self.summary.tags_created += created
        return self.tag_pks[name]

    def save_patient(self, item: tuple[str, PatientRecord], context: dict) -> str:
        source, record = item
        provider = context["providers"].get((record.provider_npi, record.provider_name))

        patient = self._matching_patient(source, record, context)
        provider_before = patient.primary_provider_id if patient else None
        if patient is None:
            patient = Patient(source=source, source_id=record.source_id)
            self._apply_fields(patient, record, provider)
            patient.set_email(record.email)
            patient.save()
            # A later record of the same chunk with this id updates this row.
            context["existing"][(source, record.source_id)] = patient
            outcome = "created"
        else:
            changed = self._apply_fields(patient, record, provider)
            if normalize_email(record.email) != patient.email_normalized:
                self._change_email(patient, record.email)
                changed = True
            if changed:
                patient.save()
            outcome = "updated" if changed else "unchanged"

        added = self._add_identifiers(patient, record, context["owners"])
        added += self._add_tags(patient, record.tags)
        if added and outcome == "unchanged":
            patient.save(update_fields=["updated_at"])
            outcome = "updated"

        if provider is not None and provider != provider_before:
            self.summary.providers_set += 1
        self._warn_about(record)
        record.pk = patient.pk
        return outcome

    def _warn_about(
        self, record: PatientRecord, email_valid: bool | None = None
    ) -> None:
        """Report the record's warnings; EMAIL_VALID saves checking the email again."""
        for warning in record.warnings:
            self.summary.warn(record.location, warning)
        if email_valid is None:
            email_valid = is_valid_email(record.email) if record.email else True
        if record.email and not email_valid:
            self.summary.warn(
                record.location,
                "email address is not valid; it is kept, and the patient cannot "
                "be invited until it is corrected",
            )

    def save_new_patients(
        self, items: list[tuple[str, PatientRecord]], context: dict
    ) -> list[str] | None:
        """Insert a chunk of patients that are all new; see _insert_new_patients()."""
        try:
            outcomes = self._insert_new_patients(items, context)
        except DatabaseError:
            self.patients_unseen = False
            raise
        if outcomes is None:
            self.patients_unseen = False
        return outcomes

    def _insert_new_patients(
        self, items: list[tuple[str, PatientRecord]], context: dict
    ) -> list[str] | None:
        """Insert a chunk of patients that are all new, in a few statements.

        A first import is nearly all new patients, and inserting each alone
        costs several statements. Returns None, having written nothing, when
        any record matches a saved patient or an identifier another patient
        has, or repeats an id or identifier of the chunk: those go one by one.
        """
        seen_ids = set()
        seen_identifiers = set()
        for source, record in items:
            key = (source, record.source_id)
            identifiers = set(record.identifiers)
            if (
                key in context["existing"]
                or key in seen_ids
                or any(pair in context["owners"] for pair in identifiers)
                or identifiers & seen_identifiers
            ):
                return None
            seen_ids.add(key)
            seen_identifiers |= identifiers

        now = timezone.now()
        rows = []
        for source, record in items:
            provider = context["providers"].get(
                (record.provider_npi, record.provider_name)
            )
            if provider is None and record.general_practitioner is not None:
                # Set now if it resolves already, which spares an update of
                # the row at the end; the end of the run checks it again.
                provider = self.practitioners.resolve(record.general_practitioner)
                record.provider_at_insert = provider
            rows.append(_new_patient_row(source, record, provider, now))
        ids = reserve_ids(Patient, len(rows))
        insert_rows(
            Patient,
            ["id", *NEW_PATIENT_FIELDS],
            [(pk, *row) for pk, row in zip(ids, rows, strict=True)],
        )
        pks = {
            (source, record.source_id): pk
            for pk, (source, record) in zip(ids, items, strict=True)
        }

        identifiers, tags = [], []
        for source, record in items:
            pk = pks[(source, record.source_id)]
            pairs = dict.fromkeys(record.identifiers)
            identifiers += [(pk, system, value) for system, value in pairs]
            tags += [(pk, self.tag_pks[name]) for name in dict.fromkeys(record.tags)]
        insert_rows(PatientIdentifier, ["patient_id", "system", "value"], identifiers)
        insert_rows(Patient.tags.through, ["patient_id", "tag_id"], tags)

        # Written only now, when every row is saved.
        email_valid = NEW_PATIENT_FIELDS.index("email_valid")
        for (source, record), row in zip(items, rows, strict=True):
            if (record.provider_npi, record.provider_name) in context["providers"]:
                self.summary.providers_set += 1
            self.summary.tags_added += len(set(record.tags))
            self._warn_about(record, row[email_valid])
            record.pk = pks[(source, record.source_id)]
        return ["created"] * len(items)

    def _matching_patient(self, source, record, context) -> Patient | None:
        """Return the saved patient with this source id, else with an identifier."""
        patient = context["existing"].get((source, record.source_id))
        if patient is not None:
            return patient
        for system, value in record.identifiers:
            owner = context["owners"].get((system, value))
            if owner is None:
                continue
            patient = Patient.objects.get(pk=owner)
            if (
                record.birth_date is not None
                and patient.birth_date is not None
                and record.birth_date != patient.birth_date
            ):
                # Two people given one identifier by mistake are never merged:
                # the record becomes a patient of its own.
                self.summary.warn(
                    record.location,
                    f"identifier {system}|{value} belongs to a patient with another "
                    "date of birth, so this record was not matched to that patient",
                )
                continue
            self.patient_aliases[(source, record.source_id)] = owner
            return patient
        return None

    def _apply_fields(
        self, patient: Patient, record: PatientRecord, provider: int | None
    ) -> bool:
        """Copy the record to the patient, except the email; return if it changed."""
        before = _patient_fields(patient)
        patient.set_name(record.family_name[:200], record.given_names[:200])
        patient.birth_date = record.birth_date
        patient.active = record.active
        patient.deceased = record.deceased
        patient.deceased_at = record.deceased_at
        # A row that names no provider keeps the one the patient has.
        if provider is not None:
            patient.primary_provider_id = provider
        return _patient_fields(patient) != before

    def _change_email(self, patient: Patient, address: str) -> None:
        """Store a new address through the product's email change."""
        revoked = change_email(
            patient, address, actor_label=ACTOR_LABEL, import_run=self.run_id
        )
        # The row now has the new address; the caller saves the other fields.
        patient.refresh_from_db(fields=EMAIL_FIELDS)
        self.summary.email_changes += 1
        self.summary.invitations_revoked += revoked

    def _add_identifiers(self, patient: Patient, record: PatientRecord, owners) -> int:
        new = []
        for system, value in record.identifiers:
            owner = owners.get((system, value))
            if owner == patient.pk:
                continue
            if owner is not None:
                self.summary.warn(
                    record.location,
                    f"identifier {system}|{value} already belongs to another "
                    "patient; it was not added to this one",
                )
                continue
            new.append(PatientIdentifier(patient=patient, system=system, value=value))
            owners[(system, value)] = patient.pk
        PatientIdentifier.objects.bulk_create(new)
        return len(new)

    def _add_tags(self, patient: Patient, names: list[str]) -> int:
        """Add the tags the patient lacks; an import never removes a tag."""
        if not names:
            return 0
        tag_ids = {self.tag_pk(name) for name in names}
        through = Patient.tags.through
        have = set(
            through.objects.filter(
                patient_id=patient.pk, tag_id__in=tag_ids
            ).values_list("tag_id", flat=True)
        )
        through.objects.bulk_create(
            [through(patient_id=patient.pk, tag_id=pk) for pk in tag_ids - have]
        )
        self.summary.tags_added += len(tag_ids - have)
        return len(tag_ids - have)

    def add_group_tags(self, members: list[tuple[str, str, Reference, object]]) -> None:
        """Tag the patients that Groups list, with each Group's name."""
        resolved = resolve_patients(
            ((source, reference) for source, _, reference, _ in members),
            self.patient_aliases,
        )
        pairs = set()
        for source, name, reference, location in members:
            pk = resolved.get((source, reference))
            if pk is None:
                self.summary.dangle(
                    location, str(reference), "Group.member; the tag was not added"
                )
            else:
                pairs.add((pk, self.tag_pk(name)))

        through = Patient.tags.through
        have = set(
            through.objects.filter(
                patient_id__in={pk for pk, _ in pairs},
                tag_id__in={tag for _, tag in pairs},
            ).values_list("patient_id", "tag_id")
        )
        new = pairs - have
        through.objects.bulk_create(
            [through(patient_id=pk, tag_id=tag) for pk, tag in new]
        )
        Patient.objects.filter(pk__in={pk for pk, _ in new}).update(
            updated_at=timezone.now()
        )
        self.summary.tags_added += len(new)

    # --- Appointments ---

    def prepare_appointments(self, items: list[tuple[str, AppointmentRecord]]) -> dict:
        keys = []
        for source, record in items:
            keys += [(source, reference) for reference in _patient_keys(record)]
        patients = resolve_patients(keys, self.patient_aliases)

        if self.appointments_unseen is None:
            self.appointments_unseen = not Appointment.objects.exists()
        existing = {}
        ids_by_source: dict[str, set] = {}
        for source, record in items:
            ids_by_source.setdefault(source, set()).add(record.source_id)
        if self.appointments_unseen:
            ids_by_source.clear()
        for source, ids in ids_by_source.items():
            pks = list(_pks_by_source_id(Appointment, source, ids).values())
            for appointment in Appointment.objects.filter(pk__in=pks) if pks else []:
                existing[(source, appointment.source_id)] = appointment

        providers = {}
        for _, record in items:
            key = (record.practitioner_npi, record.practitioner_name)
            if any(key) and key not in providers:
                providers[key] = self.csv_practitioner(*key)
        return {"patients": patients, "existing": existing, "providers": providers}

    def save_appointment(
        self, item: tuple[str, AppointmentRecord], context: dict
    ) -> str | None:
        values, dangles = self._appointment_values(item, context)
        for dangle in dangles:
            self.summary.dangle(*dangle)
        if values is None:
            return None
        source, record = item
        appointment = context["existing"].get((source, record.source_id))
        if appointment is None:
            context["existing"][(source, record.source_id)] = (
                Appointment.objects.create(
                    source=source, source_id=record.source_id, **values
                )
            )
            return "created"
        return _update_appointment(appointment, values)

    def save_appointments_together(
        self, items: list[tuple[str, AppointmentRecord]], context: dict
    ) -> list[str | None] | None:
        """Save a chunk of appointments, inserting the new ones in one statement.

        Returns None, having written nothing, when an id repeats in the chunk.
        """
        try:
            outcomes = self._save_appointments(items, context)
        except DatabaseError:
            self.appointments_unseen = False
            raise
        if outcomes is None:
            self.appointments_unseen = False
        return outcomes

    def _save_appointments(
        self, items: list[tuple[str, AppointmentRecord]], context: dict
    ) -> list[str | None] | None:
        keys = [(source, record.source_id) for source, record in items]
        if len(set(keys)) != len(keys):
            return None
        outcomes, new, dangles = [], [], []
        for item, key in zip(items, keys, strict=True):
            values, notes = self._appointment_values(item, context)
            dangles += notes
            appointment = context["existing"].get(key)
            if values is None:
                outcomes.append(None)
            elif appointment is None:
                new.append((*key, *(values[name] for name in APPOINTMENT_FIELDS)))
                outcomes.append("created")
            else:
                outcomes.append(_update_appointment(appointment, values))
        insert_rows(Appointment, ["source", "source_id", *APPOINTMENT_FIELDS], new)

        # Written only now, when every row is saved.
        for dangle in dangles:
            self.summary.dangle(*dangle)
        return outcomes

    def _appointment_values(
        self, item: tuple[str, AppointmentRecord], context: dict
    ) -> tuple[dict | None, list[tuple[str, str, str]]]:
        """Return the appointment's fields, or None to skip it, and what dangles."""
        source, record = item
        patient = next(
            (
                context["patients"][(source, reference)]
                for reference in _patient_keys(record)
                if (source, reference) in context["patients"]
            ),
            None,
        )
        if patient is None:
            named = str(record.patient) if record.patient else record.patient_identifier
            return None, [
                (
                    record.location,
                    named,
                    "Appointment patient not found; the appointment was not imported",
                )
            ]

        dangles = []
        practitioner = context["providers"].get(
            (record.practitioner_npi, record.practitioner_name)
        )
        if record.practitioner is not None:
            practitioner = self.practitioners.resolve(record.practitioner)
            if practitioner is None:
                dangles.append(
                    (
                        record.location,
                        str(record.practitioner),
                        "Appointment practitioner not found; imported without one",
                    )
                )
        values = {
            "patient_id": patient,
            "status": record.status,
            "start": record.start,
            "end": record.end,
            "practitioner_id": practitioner,
        }
        return values, dangles

    # --- Primary providers ---

    def set_providers(
        self, chosen: dict[int, int | None], at_insert: dict[int, int] | None = None
    ) -> None:
        """Set primary providers; ``chosen`` maps patient pk to practitioner pk.

        AT_INSERT maps patients to the provider that save_new_patients() gave
        them from generalPractitioner. Such a provider counts as set here,
        as if the patient had been inserted without one, and a None in
        CHOSEN takes it away again.
        """
        at_insert = at_insert or {}
        current = dict(select_in(Patient, ["id", "primary_provider_id"], "id", chosen))
        changed = {}
        for pk, provider in current.items():
            inserted = at_insert.get(pk)
            kept_from_insert = inserted is not None and provider == inserted
            wanted = chosen[pk]
            if wanted is None:
                if kept_from_insert:
                    changed[pk] = None
                continue
            if wanted != provider:
                changed[pk] = wanted
            if wanted != provider or kept_from_insert:
                self.summary.providers_set += 1
        _update_providers(changed, timezone.now())


def _identifier_owners(items) -> dict[tuple[str, str], int]:
    """Return {(system, value): patient pk} of the saved identifiers ITEMS use."""
    values = {value for _, record in items for _, value in record.identifiers}
    rows = select_in(
        PatientIdentifier, ["system", "value", "patient_id"], "value", values
    )
    return {(system, value): pk for system, value, pk in rows}


def _pks_by_source_id(model, source: str, ids) -> dict[str, int]:
    """Return {source id: pk} of the saved rows of MODEL from SOURCE with IDS."""
    return dict(select_in(model, ["source_id", "id"], "source_id", ids, source=source))


def _update_providers(providers: dict[int, int | None], now: datetime.datetime) -> None:
    """Set each patient's primary provider, PROVIDERS[pk], in one statement."""
    if not providers:
        return
    table = connection.ops.quote_name(Patient._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Two array parameters, where a list of values would be thousands
            # of parameters for psycopg to merge into the statement.
            cursor.execute(
                f"UPDATE {table} SET primary_provider_id = changes.provider, "  # noqa: S608
                "updated_at = %s "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS changes (id, provider) "
                f"WHERE {table}.id = changes.id",
                [now, list(providers), list(providers.values())],
            )
        else:
            # SQLite runs a prepared statement per row without a round trip.
            updated_at = sqlite_text(now)
            cursor.executemany(
                f"UPDATE {table} SET primary_provider_id = %s, updated_at = %s "  # noqa: S608
                "WHERE id = %s",
                [(provider, updated_at, pk) for pk, provider in providers.items()],
            )


def _patient_keys(record: AppointmentRecord) -> list[Reference]:
    """Return the references that may name an appointment's patient."""
    if record.patient is not None:
        return [record.patient]
    # A spreadsheet names the patient by the identifier column of the patient
    # file, or by any stored identifier value.
    return [
        Reference("id", resource_type="Patient", id=record.patient_identifier),
        Reference(
            "identifier", resource_type="Patient", value=record.patient_identifier
        ),
    ]


def _update_appointment(appointment: Appointment, values: dict) -> str:
    changed = [
        name for name, value in values.items() if getattr(appointment, name) != value
    ]
    for name in changed:
        setattr(appointment, name, values[name])
    if changed:
        appointment.save(update_fields=changed)
        return "updated"
    return "unchanged"
