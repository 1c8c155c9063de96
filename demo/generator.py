"""Build a demo practice as a FHIR R4 Bulk Data export (NDJSON, one file per type).

The practice is fictional. Ids, names, emails and birthdays come from a seeded
random generator, so the same seed gives the same resources and re-importing
updates the same patients. Ages and appointment dates are counted from
``today``, so the demo always has minors and upcoming appointments.
Every email address is under example.com, example.org or example.net, the
domains reserved for documentation (RFC 2606), and every phone number is in
the 555-0100 to 555-0199 range kept for fiction.
"""

import datetime
import json
import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
MRN_SYSTEM = "http://riverside.example.org/fhir/sid/mrn"
TAG_SYSTEM = "http://riverside.example.org/fhir/CodeSystem/patient-tag"
SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/practitioner-role"

DEMO_DOMAINS = ("example.com", "example.org", "example.net")
RESOURCE_TYPES = (
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "Group",
    "Appointment",
    "Encounter",
)

# Tags carried in each patient's meta.tag.
META_TAGS = {
    "diabetes-program": "Diabetes program",
    "hypertension-clinic": "Hypertension clinic",
}

# Ids are UUIDs derived from the seed and a name, never from the clock.
_NAMESPACE = uuid.UUID("6f1c1d52-3a0e-4f51-9a43-6d2d3b7f0e10")

PRACTITIONERS = [
    ("Ruiz", ["Ana"], "female"),
    ("Nguyễn", ["Văn", "An"], "male"),
    ("Raman", ["Priya"], "female"),
    ("Mensah", ["Kwame"], "male"),
    ("Sørensen", ["Ingrid"], "female"),
    ("Goldberg", ["Leah"], "female"),
    ("Fernández", ["María", "José"], "female"),
    ("Okonkwo", ["Emeka"], "male"),
]

# The first patients always have these names, so every demo shows them.
FIXED_NAMES = [
    ("Núñez", ["José"], "male"),
    ("Brontë", ["Zoë"], "female"),
    ("Đặng", ["Thị", "Mai"], "female"),
    ("Åberg", ["Søren"], "male"),
    ("王", ["芳"], "female"),
    ("Müller", ["Jürgen"], "male"),
    ("O'Brien", ["Siobhán"], "female"),
    ("Çelik", ["Ayşe"], "female"),
]

FAMILY_NAMES = [
    "Lopez", "Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis",
    "Martinez", "Hernández", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez",
    "Clark", "Ramírez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams",
    "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Kowalski", "Nowak", "Schröder", "Dubois", "Lefèvre", "Rossi", "Bianchi",
    "Kim", "Park", "Tanaka", "Sato", "Haddad", "Khoury", "Okafor", "Adeyemi",
    "Ivanova", "Petrov", "Papadopoulos", "Öztürk", "Yılmaz", "Lindqvist",
]  # fmt: skip

GIVEN_NAMES = {
    "female": [
        "Maria", "Emma", "Olivia", "Sofía", "Isabella", "Mia", "Chloé", "Amelia",
        "Hannah", "Fatima", "Aisha", "Yuki", "Min-ji", "Ingrid", "Léa", "Ana",
        "Grace", "Ruth", "Dorothy", "Margaret", "Elena", "Priya", "Chiamaka",
        "Renée", "Agnieszka", "Björk", "Noa", "Camila", "Lucía", "Helen",
    ],
    "male": [
        "James", "John", "Robert", "Michael", "David", "José", "Luis", "Mateo",
        "Noah", "Liam", "Omar", "Ahmed", "Hiroshi", "Jae-won", "Lars", "François",
        "Giorgos", "Kwabena", "Tomás", "Dmitri", "Arjun", "Wei", "Andrés",
        "Walter", "Harold", "Ernest", "Chinedu", "Mikael", "Pedro", "Samuel",
    ],
}  # fmt: skip

STREETS = ["Oak St", "Maple Ave", "River Rd", "Hillcrest Dr", "Elm St", "Pine Ln"]
CITY = ("Riverside", "CA", "92501")

# Invalid addresses as they appear in real exports: unfinished, doubled dots,
# no @ at all.
INVALID_EMAILS = [
    "maria.lopez@",
    "john..smith@example.com",
    "no-at-sign.example.org",
    "@example.net",
]


@dataclass
class Export:
    """The resources of one demo practice, by resourceType, in file order."""

    resources: dict[str, list[dict]] = field(
        default_factory=lambda: {kind: [] for kind in RESOURCE_TYPES}
    )

    def add(self, resource: dict) -> None:
        self.resources[resource["resourceType"]].append(resource)

    def count(self, kind: str) -> int:
        return len(self.resources[kind])


def stable_id(seed: int, *parts) -> str:
    return str(uuid.uuid5(_NAMESPACE, ":".join(str(part) for part in (seed, *parts))))


def npi_with_check_digit(base: str) -> str:
    """Append the Luhn check digit that a 9-digit NPI base needs (prefix 80840)."""
    digits = [int(d) for d in "80840" + base]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return base + str((10 - total % 10) % 10)


def _ascii_slug(text: str) -> str:
    """Return a lower-case ASCII form of a name for an email local part."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()).lower()


class _Builder:
    def __init__(self, seed: int, patients: int, today: datetime.date):
        self.seed = seed
        self.patient_count = patients
        self.today = today
        self.random = random.Random(seed)
        self.export = Export()
        self.practitioner_ids: list[str] = []
        self.role_ids: list[str] = []
        self.used_emails: set[str] = set()

    # --- Practitioners ---

    def practitioners(self) -> None:
        for index, (family, given, gender) in enumerate(PRACTITIONERS):
            ident = stable_id(self.seed, "practitioner", index)
            npi = npi_with_check_digit(f"{123456000 + index * 7919:09d}")
            self.practitioner_ids.append(ident)
            self.export.add(
                {
                    "resourceType": "Practitioner",
                    "id": ident,
                    "identifier": [{"system": NPI_SYSTEM, "value": npi}],
                    "active": True,
                    "name": [
                        {
                            "use": "official",
                            "family": family,
                            "given": given,
                            "prefix": ["Dr."],
                        }
                    ],
                    "telecom": [
                        {
                            "system": "email",
                            "value": f"{_ascii_slug(given[0])}.{_ascii_slug(family)}"
                            "@riverside.example.org",
                            "use": "work",
                        }
                    ],
                    "gender": gender,
                }
            )
            role_id = stable_id(self.seed, "role", index)
            self.role_ids.append(role_id)
            self.export.add(
                {
                    "resourceType": "PractitionerRole",
                    "id": role_id,
                    "active": True,
                    "practitioner": {"reference": f"Practitioner/{ident}"},
                    "code": [
                        {
                            "coding": [
                                {
                                    "system": ROLE_CODE,
                                    "code": "doctor",
                                    "display": "Doctor",
                                }
                            ]
                        }
                    ],
                }
            )

    # --- Patients ---

    def birth_date(self, age: int) -> datetime.date:
        """Return a birthday on which someone is AGE years old today."""
        days_since_birthday = self.random.randrange(365)
        last_birthday = self.today - datetime.timedelta(days=days_since_birthday)
        if (last_birthday.month, last_birthday.day) == (2, 29):
            last_birthday = last_birthday.replace(day=28)
        return last_birthday.replace(year=last_birthday.year - age)

    def pick_age(self) -> int:
        roll = self.random.random()
        if roll < 0.12:
            return self.random.randrange(0, 18)
        if roll < 0.27:
            return self.random.randrange(75, 96)
        return self.random.randrange(18, 75)

    def personal_email(self, family: str, given: list[str]) -> str:
        domain = self.random.choice(DEMO_DOMAINS)
        # Names in scripts without Latin letters, such as 王芳, give no slug.
        parts = [_ascii_slug(given[0]), _ascii_slug(family)]
        local = ".".join(part for part in parts if part) or "patient"
        address = f"{local}@{domain}"
        number = 2
        while address in self.used_emails:
            address = f"{local}{number}@{domain}"
            number += 1
        self.used_emails.add(address)
        return address

    def households(self) -> list[list[tuple[str, list[str], str, int]]]:
        """Split the patients into households of one to three people.

        Returns per household its members as (family, given, gender, age).
        """
        households = []
        count = 0
        fixed = list(FIXED_NAMES)
        while count < self.patient_count:
            if fixed:
                family, given, gender = fixed.pop(0)
                households.append([(family, given, gender, self.pick_age())])
                count += 1
                continue
            size = 1 if self.random.random() < 0.88 else self.random.choice([2, 3])
            size = min(size, self.patient_count - count)
            family = self.random.choice(FAMILY_NAMES)
            members = []
            for position in range(size):
                gender = self.random.choice(["female", "male"])
                given = [self.random.choice(GIVEN_NAMES[gender])]
                if self.random.random() < 0.15:
                    given.append(self.random.choice(GIVEN_NAMES[gender]))
                # The first member of a family is an adult, and the others are
                # often their children.
                if size == 1:
                    age = self.pick_age()
                elif position == 0:
                    age = self.random.randrange(30, 70)
                elif self.random.random() < 0.6:
                    age = self.random.randrange(1, 18)
                else:
                    age = self.pick_age()
                members.append((family, given, gender, age))
            households.append(members)
            count += size
        return households

    def patients(self) -> list[dict]:
        patients = []
        number = 0
        for household_index, members in enumerate(self.households()):
            shared_email = ""
            if len(members) > 1 and self.random.random() < 0.7:
                family = _ascii_slug(members[0][0]) or "family"
                shared_email = f"the.{family}.family{household_index}@example.net"
            street = f"{self.random.randrange(10, 9999)} {self.random.choice(STREETS)}"
            for family, given, gender, age in members:
                number += 1
                patients.append(
                    self.patient(number, family, given, gender, age, shared_email)
                )
                patients[-1]["address"] = [
                    {
                        "use": "home",
                        "line": [street],
                        "city": CITY[0],
                        "state": CITY[1],
                        "postalCode": CITY[2],
                        "country": "US",
                    }
                ]
        return patients

    def patient_email(self, family, given, shared_email) -> str:
        if shared_email:
            return shared_email
        roll = self.random.random()
        if roll < 0.12:
            return ""
        if roll < 0.15:
            return self.random.choice(INVALID_EMAILS)
        return self.personal_email(family, given)

    def patient(self, number, family, given, gender, age, shared_email) -> dict:
        ident = stable_id(self.seed, "patient", number)
        resource = {
            "resourceType": "Patient",
            "id": ident,
            "identifier": [
                {
                    "type": {"coding": [{"system": IDENTIFIER_TYPE, "code": "MR"}]},
                    "system": MRN_SYSTEM,
                    "value": f"RFP{100000 + number}",
                }
            ],
            "active": True,
            "name": [{"use": "official", "family": family, "given": given}],
            "gender": gender,
            "birthDate": self.birth_date(age).isoformat(),
        }

        telecom = [
            {
                "system": "phone",
                "value": f"951-555-01{self.random.randrange(100):02d}",
                "use": "mobile",
            }
        ]
        email = self.patient_email(family, given, shared_email)
        if email:
            telecom.append({"system": "email", "value": email, "use": "home"})
        resource["telecom"] = telecom

        tags = [
            code
            for code, chance in (
                ("diabetes-program", 0.12),
                ("hypertension-clinic", 0.1),
            )
            if age >= 18 and self.random.random() < chance
        ]
        if tags:
            resource["meta"] = {
                "tag": [
                    {"system": TAG_SYSTEM, "code": code, "display": META_TAGS[code]}
                    for code in tags
                ]
            }

        # Most patients name their provider directly and some through a
        # PractitionerRole. The rest have one only through their Encounters.
        provider = self.random.randrange(len(self.practitioner_ids))
        resource["_provider"] = provider
        roll = self.random.random()
        if roll < 0.75:
            reference = f"Practitioner/{self.practitioner_ids[provider]}"
            resource["generalPractitioner"] = [{"reference": reference}]
        elif roll < 0.9:
            reference = f"PractitionerRole/{self.role_ids[provider]}"
            resource["generalPractitioner"] = [{"reference": reference}]
        return resource

    def mark_deceased(self, patients: list[dict]) -> None:
        """Mark a few adults as deceased, half by date and half by flag."""
        born_before = self.today.replace(year=self.today.year - 60, day=1).isoformat()
        adults = [
            p for p in patients[len(FIXED_NAMES) :] if p["birthDate"] < born_before
        ]
        count = min(len(adults), max(3, len(patients) // 60))
        for position, patient in enumerate(self.random.sample(adults, count)):
            if position % 2 == 0:
                days_ago = self.random.randrange(30, 1500)
                died = self.today - datetime.timedelta(days=days_ago)
                patient["deceasedDateTime"] = died.isoformat()
            else:
                patient["deceasedBoolean"] = True

    # --- Groups, appointments, encounters ---

    def groups(self, patients: list[dict]) -> None:
        born_before = self.today.replace(year=self.today.year - 65, day=1).isoformat()
        medicare = [
            p
            for p in patients
            if p["birthDate"] < born_before and self.random.random() < 0.6
        ]
        new_patients = self.random.sample(patients, max(1, len(patients) // 10))
        for key, name, members in (
            ("medicare-wellness", "Medicare wellness", medicare),
            ("new-patients", f"New patients {self.today.year}", new_patients),
        ):
            self.export.add(
                {
                    "resourceType": "Group",
                    "id": stable_id(self.seed, "group", key),
                    "type": "person",
                    "actual": True,
                    "name": name,
                    "quantity": len(members),
                    "member": [
                        {"entity": {"reference": f"Patient/{p['id']}"}}
                        for p in sorted(members, key=lambda p: p["id"])
                    ],
                }
            )

    def appointment_time(self, days_from_today: int) -> datetime.datetime:
        day = self.today + datetime.timedelta(days=days_from_today)
        minutes = 8 * 60 + 15 * self.random.randrange(34)
        return datetime.datetime(
            day.year,
            day.month,
            day.day,
            minutes // 60,
            minutes % 60,
            tzinfo=datetime.UTC,
        )

    def visits(self, patient: dict, number: int) -> None:
        practitioner = self.practitioner_ids[patient["_provider"]]
        # Everyone alive has at least one past visit, so a primary provider
        # can be derived from Encounters when generalPractitioner is absent.
        past = 1 + self.random.randrange(3)
        future = self.random.choice([0, 0, 1, 1, 2])
        if "deceasedDateTime" in patient or "deceasedBoolean" in patient:
            future = 0
        for visit in range(past + future):
            if visit < past:
                start = self.appointment_time(-self.random.randrange(1, 400))
                status = self.random.choices(
                    ["fulfilled", "noshow", "cancelled"], weights=[8, 1, 1]
                )[0]
            else:
                start = self.appointment_time(self.random.randrange(1, 90))
                status = self.random.choices(["booked", "cancelled"], weights=[9, 1])[0]
            self.appointment(patient, practitioner, number, visit, start, status)

    def appointment(self, patient, practitioner, number, visit, start, status):
        ident = stable_id(self.seed, "appointment", number, visit)
        end = start + datetime.timedelta(minutes=20)
        participant_status = "declined" if status == "cancelled" else "accepted"
        self.export.add(
            {
                "resourceType": "Appointment",
                "id": ident,
                "status": status,
                "serviceType": [{"text": "Office visit"}],
                "start": start.isoformat().replace("+00:00", "Z"),
                "end": end.isoformat().replace("+00:00", "Z"),
                "minutesDuration": 20,
                "participant": [
                    {
                        "actor": {"reference": f"Patient/{patient['id']}"},
                        "status": participant_status,
                    },
                    {
                        "actor": {"reference": f"Practitioner/{practitioner}"},
                        "status": participant_status,
                    },
                ],
            }
        )
        if status != "fulfilled":
            return

        self.export.add(
            {
                "resourceType": "Encounter",
                "id": stable_id(self.seed, "encounter", number, visit),
                "status": "finished",
                "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "type": [
                    {
                        "coding": [
                            {
                                "system": SNOMED,
                                "code": "185349003",
                                "display": "Encounter for check up",
                            }
                        ]
                    }
                ],
                "subject": {"reference": f"Patient/{patient['id']}"},
                "participant": [
                    {
                        "type": [
                            {"coding": [{"system": PARTICIPATION_TYPE, "code": "PPRF"}]}
                        ],
                        "individual": {"reference": f"Practitioner/{practitioner}"},
                    }
                ],
                "appointment": [{"reference": f"Appointment/{ident}"}],
                "period": {
                    "start": start.isoformat().replace("+00:00", "Z"),
                    "end": end.isoformat().replace("+00:00", "Z"),
                },
            }
        )

    def build(self) -> Export:
        self.practitioners()
        patients = self.patients()
        self.mark_deceased(patients)
        # Two records marked inactive in the EHR, as merged or moved patients are.
        others = patients[len(FIXED_NAMES) :]
        for patient in self.random.sample(others, min(2, len(others))):
            if "deceasedDateTime" not in patient and "deceasedBoolean" not in patient:
                patient["active"] = False
        for number, patient in enumerate(patients, start=1):
            self.visits(patient, number)
        self.groups(patients)
        for patient in patients:
            del patient["_provider"]
            self.export.add(patient)
        return self.export


def build_export(
    *, patients: int = 400, seed: int = 1, today: datetime.date | None = None
) -> Export:
    """Build the demo practice's resources without writing anything."""
    if patients < len(FIXED_NAMES):
        raise ValueError(
            f"A demo practice needs at least {len(FIXED_NAMES)} patients, "
            f"not {patients}."
        )
    return _Builder(seed, patients, today or datetime.date.today()).build()


def write_export(export: Export, folder: Path) -> dict[str, Path]:
    """Write one NDJSON file per resource type into FOLDER; return the paths.

    Each file is written under a temporary name and renamed, so an
    interrupted run never leaves a half-written file behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, resources in export.resources.items():
        path = folder / f"{kind}.ndjson"
        partial = path.with_suffix(".ndjson.partial")
        with partial.open("w", encoding="utf-8", newline="\n") as output:
            for resource in resources:
                output.write(json.dumps(resource, ensure_ascii=False) + "\n")
        partial.replace(path)
        written[kind] = path
    return written
