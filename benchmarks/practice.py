"""A fictional practice of any size: the same patients for the same seed.

It imitates demo.generator: households that share a surname and sometimes an
address, missing and invalid addresses, minors, deceased and inactive
records, tags, primary providers and past and upcoming appointments. Unlike
the demo it yields one patient at a time, so that a million patients never
sit in memory, and it gives each patient a portal state for the loader.
Ages and appointment dates are counted from TODAY.
"""

import datetime
import json
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from demo.generator import (
    DEMO_DOMAINS,
    FAMILY_NAMES,
    GIVEN_NAMES,
    INVALID_EMAILS,
    MRN_SYSTEM,
    NPI_SYSTEM,
    PRACTITIONERS,
    TAG_SYSTEM,
    npi_with_check_digit,
    stable_id,
)

# Tags: name, share of the patients that can have it, and minimum age.
TAGS = [
    ("Diabetes program", 0.10, 18),
    ("Hypertension clinic", 0.09, 18),
    ("Medicare wellness", 0.60, 65),
    ("New patients", 0.08, 0),
    ("Telehealth pilot", 0.04, 0),
]

# Portal states of patients who could be invited (living, active, adult, with
# an address of their own that is valid), with their weights. The others stay
# without portal access, except a few who have it without an invitation.
INVITABLE_STATES = {
    "not_enabled": 38,
    "enabled": 14,
    "invited": 14,
    "invite_failed": 2,
    "invite_lapsed": 6,
    "account_set_up": 8,
    "logged_in": 18,
}
OTHER_STATES = {"not_enabled": 95, "enabled": 5}

# One patient in this many has no date of birth on file.
NO_BIRTH_DATE_EVERY = 300


@dataclass(slots=True)
class PractitionerSpec:
    number: int
    fhir_id: str
    npi: str
    family: str
    given: tuple[str, ...]
    email: str


@dataclass(slots=True)
class Visit:
    start: datetime.datetime
    status: str


@dataclass(slots=True)
class PatientSpec:
    number: int
    fhir_id: str
    family: str
    given: tuple[str, ...]
    gender: str
    birth_date: datetime.date | None
    email: str
    email_valid: bool
    active: bool
    deceased: bool
    deceased_at: datetime.datetime | None
    # Index into Practice.practitioners, or None.
    provider: int | None
    # Indexes into TAGS.
    tags: tuple[int, ...]
    visits: list[Visit]
    # A Patient.PortalState value.
    state: str
    # Days since the newest invitation was created, for invited states.
    invited_days_ago: int
    # Whether an older invitation was replaced by the newest one.
    resent: bool


def ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()).lower()


class Practice:
    """A practice of PATIENTS patients; iterate patients() once per use."""

    def __init__(self, patients: int, *, seed: int = 1, today: datetime.date):
        if patients < 1:
            raise ValueError(f"A practice needs at least one patient, not {patients}.")
        self.patient_count = patients
        self.seed = seed
        self.today = today
        self.practitioners = self._practitioners()

    def _practitioners(self) -> list[PractitionerSpec]:
        # From 8 clinicians for a small practice to 200 for a large one.
        count = min(200, max(len(PRACTITIONERS), self.patient_count // 2500))
        rng = random.Random(f"{self.seed}-practitioners")
        specs = []
        for index in range(count):
            if index < len(PRACTITIONERS):
                family, given, _ = PRACTITIONERS[index]
            else:
                gender = rng.choice(["female", "male"])
                family = rng.choice(FAMILY_NAMES)
                given = [rng.choice(GIVEN_NAMES[gender])]
            email = (
                f"{ascii_slug(given[0])}.{ascii_slug(family)}.{index}"
                "@riverside.example.org"
            )
            specs.append(
                PractitionerSpec(
                    number=index + 1,
                    fhir_id=stable_id(self.seed, "practitioner", index),
                    npi=npi_with_check_digit(f"{123456000 + index * 7919:09d}"),
                    family=family,
                    given=tuple(given),
                    email=email,
                )
            )
        return specs

    def patients(self) -> Iterator[PatientSpec]:
        """Yield every patient in order, numbered from 1."""
        rng = random.Random(self.seed)
        # Some clinicians have many more patients than others.
        weights = [1 / (1 + index * 0.1) for index in range(len(self.practitioners))]
        cumulative = []
        total = 0.0
        for weight in weights:
            total += weight
            cumulative.append(total)
        providers = range(len(self.practitioners))

        number = 0
        household = 0
        while number < self.patient_count:
            household += 1
            size = 1 if rng.random() < 0.88 else rng.choice((2, 3))
            size = min(size, self.patient_count - number)
            family = rng.choice(FAMILY_NAMES)
            shared = ""
            if size > 1 and rng.random() < 0.7:
                shared = f"the.{ascii_slug(family)}.family{household}@example.net"
            for position in range(size):
                number += 1
                provider = rng.choices(providers, cum_weights=cumulative)[0]
                yield self._patient(
                    rng, number, family, size, position, shared, provider
                )

    def _age(self, rng: random.Random, size: int, position: int) -> int:
        if size > 1 and position == 0:
            return rng.randrange(30, 70)
        if size > 1 and rng.random() < 0.6:
            return rng.randrange(1, 18)
        roll = rng.random()
        if roll < 0.12:
            return rng.randrange(0, 18)
        if roll < 0.27:
            return rng.randrange(75, 96)
        return rng.randrange(18, 75)

    def _birth_date(self, rng: random.Random, age: int) -> datetime.date:
        last_birthday = self.today - datetime.timedelta(days=rng.randrange(365))
        if (last_birthday.month, last_birthday.day) == (2, 29):
            last_birthday = last_birthday.replace(day=28)
        return last_birthday.replace(year=last_birthday.year - age)

    def _email(self, rng, number, family, given, shared) -> tuple[str, bool]:
        if shared:
            return shared, True
        roll = rng.random()
        if roll < 0.12:
            return "", False
        if roll < 0.15:
            return rng.choice(INVALID_EMAILS), False
        local = ".".join(
            part for part in (ascii_slug(given), ascii_slug(family)) if part
        )
        return f"{local}.{number}@{rng.choice(DEMO_DOMAINS)}", True

    def _patient(self, rng, number, family, size, position, shared, provider):
        gender = rng.choice(("female", "male"))
        given = [rng.choice(GIVEN_NAMES[gender])]
        if rng.random() < 0.15:
            given.append(rng.choice(GIVEN_NAMES[gender]))
        age = self._age(rng, size, position)
        birth_date = self._birth_date(rng, age)
        if number % NO_BIRTH_DATE_EVERY == 0:
            birth_date = None
        email, email_valid = self._email(rng, number, family, given[0], shared)

        deceased = age >= 60 and rng.random() < 0.03
        deceased_at = None
        if deceased and rng.random() < 0.5:
            died = self.today - datetime.timedelta(days=rng.randrange(30, 1500))
            deceased_at = datetime.datetime(
                died.year, died.month, died.day, tzinfo=datetime.UTC
            )
        active = rng.random() >= 0.003

        tags = tuple(
            index
            for index, (_, share, min_age) in enumerate(TAGS)
            if age >= min_age and rng.random() < share
        )
        visits = self._visits(rng, deceased)

        invitable = (
            not deceased
            and active
            and age >= 18
            and birth_date is not None
            and email_valid
            and not shared
        )
        table = INVITABLE_STATES if invitable else OTHER_STATES
        if deceased or not active:
            table = {"not_enabled": 1}
        state = rng.choices(list(table), weights=list(table.values()))[0]
        if state in ("invited", "invite_failed"):
            invited_days_ago = rng.randrange(0, 10)
        elif state == "invite_lapsed":
            invited_days_ago = rng.randrange(20, 90)
        else:
            invited_days_ago = rng.randrange(15, 400)

        return PatientSpec(
            number=number,
            fhir_id=stable_id(self.seed, "patient", number),
            family=family,
            given=tuple(given),
            gender=gender,
            birth_date=birth_date,
            email=email,
            email_valid=email_valid,
            active=active,
            deceased=deceased,
            deceased_at=deceased_at,
            provider=None if rng.random() < 0.05 else provider,
            tags=tags,
            visits=visits,
            state=state,
            invited_days_ago=invited_days_ago,
            resent=rng.random() < 0.2,
        )

    def _visits(self, rng: random.Random, deceased: bool) -> list[Visit]:
        visits = []
        for _ in range(rng.randrange(3)):
            day = self.today - datetime.timedelta(days=rng.randrange(1, 400))
            status = rng.choices(("fulfilled", "noshow", "cancelled"), (8, 1, 1))[0]
            visits.append(Visit(self._slot(rng, day), status))
        if not deceased:
            for _ in range(rng.choice((0, 0, 1, 1, 2))):
                day = self.today + datetime.timedelta(days=rng.randrange(1, 90))
                status = rng.choices(("booked", "cancelled"), (9, 1))[0]
                visits.append(Visit(self._slot(rng, day), status))
        return visits

    @staticmethod
    def _slot(rng: random.Random, day: datetime.date) -> datetime.datetime:
        minutes = 8 * 60 + 15 * rng.randrange(34)
        return datetime.datetime(
            day.year,
            day.month,
            day.day,
            minutes // 60,
            minutes % 60,
            tzinfo=datetime.UTC,
        )


# FHIR R4 Bulk Data export of the same practice


def _fhir_instant(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def practitioner_resource(spec: PractitionerSpec) -> dict:
    return {
        "resourceType": "Practitioner",
        "id": spec.fhir_id,
        "identifier": [{"system": NPI_SYSTEM, "value": spec.npi}],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": spec.family,
                "given": list(spec.given),
                "prefix": ["Dr."],
            }
        ],
        "telecom": [{"system": "email", "value": spec.email, "use": "work"}],
    }


def patient_resource(spec: PatientSpec, practice: Practice) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": spec.fhir_id,
        "identifier": [{"system": MRN_SYSTEM, "value": f"RFP{100000 + spec.number}"}],
        "active": spec.active,
        "name": [{"use": "official", "family": spec.family, "given": list(spec.given)}],
        "gender": spec.gender,
        "telecom": [
            {
                "system": "phone",
                "value": f"951-555-01{spec.number % 100:02d}",
                "use": "mobile",
            }
        ],
        "address": [
            {
                "use": "home",
                "line": [f"{10 + spec.number % 9000} Oak St"],
                "city": "Riverside",
                "state": "CA",
                "postalCode": "92501",
            }
        ],
    }
    if spec.birth_date is not None:
        resource["birthDate"] = spec.birth_date.isoformat()
    if spec.email:
        resource["telecom"].append(
            {"system": "email", "value": spec.email, "use": "home"}
        )
    if spec.tags:
        resource["meta"] = {
            "tag": [
                {
                    "system": TAG_SYSTEM,
                    "code": ascii_slug(TAGS[index][0]),
                    "display": TAGS[index][0],
                }
                for index in spec.tags
            ]
        }
    if spec.provider is not None:
        reference = f"Practitioner/{practice.practitioners[spec.provider].fhir_id}"
        resource["generalPractitioner"] = [{"reference": reference}]
    if spec.deceased_at is not None:
        resource["deceasedDateTime"] = spec.deceased_at.date().isoformat()
    elif spec.deceased:
        resource["deceasedBoolean"] = True
    return resource


def appointment_resources(spec: PatientSpec, practice: Practice) -> Iterator[dict]:
    for index, visit in enumerate(spec.visits):
        participants = [
            {"actor": {"reference": f"Patient/{spec.fhir_id}"}, "status": "accepted"}
        ]
        if spec.provider is not None:
            practitioner = practice.practitioners[spec.provider].fhir_id
            participants.append(
                {
                    "actor": {"reference": f"Practitioner/{practitioner}"},
                    "status": "accepted",
                }
            )
        yield {
            "resourceType": "Appointment",
            "id": stable_id(practice.seed, "appointment", spec.number, index),
            "status": visit.status,
            "start": _fhir_instant(visit.start),
            "end": _fhir_instant(visit.start + datetime.timedelta(minutes=20)),
            "participant": participants,
        }


def write_fhir_export(practice: Practice, folder: Path) -> dict[str, Path]:
    """Write Practitioner, Patient and Appointment NDJSON files into FOLDER."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        kind: folder / f"{kind}.ndjson"
        for kind in ("Practitioner", "Patient", "Appointment")
    }
    with paths["Practitioner"].open("w", encoding="utf-8") as output:
        for practitioner in practice.practitioners:
            output.write(json.dumps(practitioner_resource(practitioner)) + "\n")
    with (
        paths["Patient"].open("w", encoding="utf-8") as patients,
        paths["Appointment"].open("w", encoding="utf-8") as appointments,
    ):
        for spec in practice.patients():
            resource = patient_resource(spec, practice)
            patients.write(json.dumps(resource, ensure_ascii=False) + "\n")
            for appointment in appointment_resources(spec, practice):
                appointments.write(json.dumps(appointment) + "\n")
    return paths
