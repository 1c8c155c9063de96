"""Resolve references to practitioners and patients across all imported files.

References arrive in every form FHIR allows: urn:uuid fullUrls, relative and
absolute Type/id, conditional Type?identifier=system|value, and
identifier-only. Practitioners are few, so their keys are held in memory;
patients are many, so they are looked up in the database in batches.
"""

from collections import defaultdict
from collections.abc import Iterable

from imports.fhir import Reference
from imports.records import NPI_SYSTEM
from imports.rows import select_in
from patients.models import Patient, PatientIdentifier, Practitioner


class PractitionerIndex:
    """Every key by which a practitioner of this import can be referenced.

    Keys learned from this run's files come first. A miss falls back to the
    database (fhir_id and npi), so references to practitioners imported
    earlier still resolve.
    """

    def __init__(self):
        self.by_id: dict[str, int | None] = {}
        self.by_npi: dict[str, int | None] = {}
        self.by_identifier: dict[tuple[str, str], int] = {}
        self.by_url: dict[str, int] = {}
        # PractitionerRole keys -> the reference to its Practitioner.
        self.roles: dict[tuple, Reference] = {}

    def remember(self, pk: int, *, fhir_id="", npi="", full_url="", identifiers=()):
        if fhir_id:
            self.by_id[fhir_id] = pk
        if npi:
            self.by_npi[npi] = pk
        if full_url:
            self.by_url[full_url] = pk
        for pair in identifiers:
            self.by_identifier[pair] = pk

    def remember_role(
        self, practitioner: Reference, *, role_id="", full_url="", identifiers=()
    ):
        if role_id:
            self.roles[("id", role_id)] = practitioner
        if full_url:
            self.roles[("url", full_url)] = practitioner
        for system, value in identifiers:
            self.roles[("identifier", system, value)] = practitioner

    def forget_run_keys(self) -> None:
        """Drop keys learned this run, after a rolled-back chunk made them wrong."""
        self.by_id.clear()
        self.by_npi.clear()
        self.by_identifier.clear()
        self.by_url.clear()

    def find(self, *, fhir_id="", npi="") -> int | None:
        """Return the practitioner with this NPI, else this FHIR id."""
        if npi:
            pk = self._lookup(self.by_npi, npi, "npi")
            if pk is not None:
                return pk
        if fhir_id:
            return self._lookup(self.by_id, fhir_id, "fhir_id")
        return None

    def _lookup(self, cache: dict, key: str, field: str) -> int | None:
        if key not in cache:
            cache[key] = (
                Practitioner.objects.filter(**{field: key})
                .order_by("pk")
                .values_list("pk", flat=True)
                .first()
            )
        return cache[key]

    def resolve(self, reference: Reference | None, _depth: int = 0) -> int | None:
        """Return the pk of the practitioner a reference points to, or None."""
        if reference is None or reference.kind == "unsupported" or _depth > 2:
            return None
        kind = reference.resource_type

        if reference.url and reference.url in self.by_url:
            return self.by_url[reference.url]
        if reference.kind == "url":
            role = self.roles.get(("url", reference.url))
            if role is not None:
                return self.resolve(role, _depth + 1)
            if not reference.url.startswith("urn:uuid:"):
                return None
            # Synthea and others give a resource the same uuid as its fullUrl.
            ident = reference.url.removeprefix("urn:uuid:")
            role = self.roles.get(("id", ident))
            if role is not None and kind != "Practitioner":
                return self.resolve(role, _depth + 1)
            return self.find(fhir_id=ident)

        if reference.kind == "id":
            if kind == "PractitionerRole":
                return self.resolve(self.roles.get(("id", reference.id)), _depth + 1)
            if kind in ("Practitioner", ""):
                return self.find(fhir_id=reference.id)
            return None

        # An identifier, from a conditional or identifier-only reference.
        if kind == "PractitionerRole":
            role = self.roles.get(("identifier", reference.system, reference.value))
            return self.resolve(role, _depth + 1)
        if kind not in ("Practitioner", ""):
            return None
        if reference.system == NPI_SYSTEM:
            return self.find(npi=reference.value)
        pk = self.by_identifier.get((reference.system, reference.value))
        if pk is None and not reference.system:
            pk = self.find(npi=reference.value)
        return pk


def patient_id_of(reference: Reference) -> str:
    """Return the Patient id a Type/id or urn:uuid reference names, else ""."""
    if reference.kind == "id" and reference.resource_type in ("Patient", ""):
        return reference.id
    if reference.kind == "url" and reference.url.startswith("urn:uuid:"):
        return reference.url.removeprefix("urn:uuid:")
    return ""


def resolve_patients(
    keys: Iterable[tuple[str, Reference]], aliases: dict
) -> dict[tuple[str, Reference], int]:
    """Return {(source, reference): patient pk} for the references that resolve.

    ``aliases`` maps (source, id) to a patient pk for patients that this run
    matched by identifier, whose stored source id is different.
    """
    keys = list(keys)
    ids_by_source = defaultdict(set)
    values = set()
    for source, reference in keys:
        ident = patient_id_of(reference)
        if ident:
            ids_by_source[source].add(ident)
        elif reference.kind == "identifier" and reference.resource_type in (
            "Patient",
            "",
        ):
            values.add(reference.value)

    found = {}
    for source, ids in ids_by_source.items():
        rows = select_in(Patient, ["source_id", "id"], "source_id", ids, source=source)
        for source_id, pk in rows:
            found[(source, source_id)] = pk
    by_identifier = defaultdict(list)
    rows = select_in(
        PatientIdentifier, ["system", "value", "patient_id"], "value", values
    )
    for system, value, pk in rows:
        by_identifier[value].append((system, pk))

    resolved = {}
    for source, reference in keys:
        ident = patient_id_of(reference)
        if ident:
            pk = found.get((source, ident)) or aliases.get((source, ident))
        else:
            matches = [
                pk
                for system, pk in by_identifier.get(reference.value, [])
                if not reference.system or system == reference.system
            ]
            # Without a system, a value shared by two patients is ambiguous.
            pk = matches[0] if len(set(matches)) == 1 else None
        if pk is not None:
            resolved[(source, reference)] = pk
    return resolved
