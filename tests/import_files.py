"""Builders for the import tests: small FHIR resources and the files holding them."""

import datetime
import json
from pathlib import Path

from imports.services import import_patients

NPI = "http://hl7.org/fhir/sid/us-npi"
CHECKUP = {"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}
PROBLEM_VISIT = {"coding": [{"system": "http://snomed.info/sct", "code": "185347001"}]}
PRIMARY_PERFORMER = [{"coding": [{"code": "PPRF"}]}]


def patient(id="p1", family="Nguyen", given=("Thi", "Lan"), **fields) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": id,
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "birthDate": "1980-05-17",
    }
    resource.update(fields)
    return resource


def numbered_patient(number: int, **fields) -> dict:
    """Patient p<NUMBER>, whose given name and birth date no other number shares."""
    birth_date = datetime.date(1950, 1, 1) + datetime.timedelta(days=number)
    return patient(
        id=f"p{number}",
        given=(f"Ada{number}",),
        birthDate=birth_date.isoformat(),
        **fields,
    )


def practitioner(id="dr1", npi="1234567890", family="Ruiz", **fields) -> dict:
    resource = {
        "resourceType": "Practitioner",
        "id": id,
        "name": [{"family": family, "given": ["Ana"], "prefix": ["Dr."]}],
    }
    if npi:
        resource["identifier"] = [{"system": NPI, "value": npi}]
    resource.update(fields)
    return resource


def encounter(id, patient_ref, performer_ref, start, *, checkup=False, typed=True):
    participant = {"individual": {"reference": performer_ref}}
    if typed:
        participant["type"] = PRIMARY_PERFORMER
    return {
        "resourceType": "Encounter",
        "id": id,
        "status": "finished",
        "type": [CHECKUP if checkup else PROBLEM_VISIT],
        "subject": {"reference": patient_ref},
        "participant": [participant],
        "period": {"start": start},
    }


def write_bundle(path: Path, resources, *, full_urls=None, kind="collection") -> Path:
    entries = []
    for index, resource in enumerate(resources):
        entry = {"resource": resource}
        if full_urls:
            entry["fullUrl"] = full_urls[index]
        entries.append(entry)
    path.write_text(
        json.dumps({"resourceType": "Bundle", "type": kind, "entry": entries}),
        encoding="utf-8",
    )
    return path


def write_ndjson(path: Path, resources) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in resources]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_json(path: Path, resource) -> Path:
    path.write_text(json.dumps(resource), encoding="utf-8")
    return path


def run_import(*paths, source=None):
    """Import the paths and return the summary."""
    _, summary = import_patients([str(p) for p in paths], source=source)
    return summary


def reasons(summary) -> list[str]:
    return [item["reason"] for item in summary.skipped]
