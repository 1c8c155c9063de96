"""Per-patient state that a run needs until the last file is read, kept on disk.

Patient.generalPractitioner and the Encounters that choose a primary
provider are resolved only after every file is read, because the
Practitioner they name may come in a later file. Held in Python, that
state grew by about 0.6 kB per patient. A Scratch keeps it in a private
temporary SQLite database instead. SQLite keeps a bounded page cache in
memory (2 MB by default) and writes the rest to a file that it deletes
when the connection closes, so the run's memory stays flat.

It is the importer's own store, apart from the product's database, and
never part of a chunk's transaction.
"""

import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from imports.fhir import Location, Reference

# Encounter candidates gathered in memory before they are merged into the
# scratch database: about 0.5 kB each.
ENCOUNTER_BUFFER = 5000
# References whose text is kept for reuse.
REFERENCE_CACHE = 1000

_SCHEMA = """
CREATE TABLE general_practitioner (
    patient INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    reference TEXT NOT NULL,
    location TEXT NOT NULL,
    provider_at_insert INTEGER
);
CREATE INDEX general_practitioner_seq ON general_practitioner (seq);
CREATE TABLE chosen (patient INTEGER PRIMARY KEY);
CREATE TABLE encounter (
    source TEXT NOT NULL,
    patient TEXT NOT NULL,
    seq INTEGER NOT NULL,
    checkup_started REAL NOT NULL,
    checkup_performer TEXT,
    checkup_location TEXT,
    latest_started REAL NOT NULL,
    latest_participant TEXT,
    latest_location TEXT,
    PRIMARY KEY (source, patient)
);
CREATE INDEX encounter_seq ON encounter (seq);
"""

# A patient seen again keeps its place (seq), as in a dict, and takes the
# newer reference. Only an insert sets a provider, so the first one stays.
_SAVE_GENERAL_PRACTITIONER = """
INSERT INTO general_practitioner
    (patient, seq, reference, location, provider_at_insert)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (patient) DO UPDATE
SET reference = excluded.reference, location = excluded.location,
    provider_at_insert = coalesce(provider_at_insert, excluded.provider_at_insert)
"""

# The candidates gathered later win ties, as a later Encounter does in
# Importer._remember_encounter(). SQLite evaluates every SET expression on
# the row as it was before the update.
_MERGE_ENCOUNTER = """
INSERT INTO encounter VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, patient) DO UPDATE SET
    checkup_started = CASE WHEN {checkup} THEN excluded.checkup_started
        ELSE checkup_started END,
    checkup_performer = CASE WHEN {checkup} THEN excluded.checkup_performer
        ELSE checkup_performer END,
    checkup_location = CASE WHEN {checkup} THEN excluded.checkup_location
        ELSE checkup_location END,
    latest_started = CASE WHEN {latest} THEN excluded.latest_started
        ELSE latest_started END,
    latest_participant = CASE WHEN {latest} THEN excluded.latest_participant
        ELSE latest_participant END,
    latest_location = CASE WHEN {latest} THEN excluded.latest_location
        ELSE latest_location END
""".format(
    checkup="excluded.checkup_performer IS NOT NULL "
    "AND excluded.checkup_started >= checkup_started",
    latest="excluded.latest_participant IS NOT NULL "
    "AND excluded.latest_started >= latest_started",
)


@dataclass
class Candidate:
    """The best Encounters seen so far for choosing one patient's provider."""

    checkup_started: float = -math.inf
    checkup_performer: Reference | None = None
    checkup_location: Location | None = None
    latest_started: float = -math.inf
    latest_participant: Reference | None = None
    latest_location: Location | None = None
    # The order in which the run first saw the patient's Encounters.
    seq: int = 0


class Scratch:
    def __init__(self):
        # An empty name opens a private database in a temporary file.
        self.db = sqlite3.connect("", isolation_level=None)
        self.db.executescript(_SCHEMA)
        self._seq = 0
        # Reference -> its text in the scratch database, for the most recent.
        self._reference_texts: dict[Reference, str] = {}
        # (source, patient reference) -> Candidate, not yet merged.
        self._encounters: dict[tuple[str, Reference], Candidate] = {}

    def _dump_reference(self, reference: Reference | None) -> str | None:
        # Many patients name the same few practitioners.
        text = self._reference_texts.get(reference)
        if text is None and reference is not None:
            if len(self._reference_texts) >= REFERENCE_CACHE:
                self._reference_texts.clear()
            text = self._reference_texts[reference] = _dump_reference(reference)
        return text

    def close(self) -> None:
        self.db.close()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # --- Patient.generalPractitioner ---

    def save_general_practitioners(
        self, items: list[tuple[int, Reference, Location, int | None]]
    ) -> None:
        """Remember each saved patient's generalPractitioner, by patient pk.

        Each item is the patient's pk, the reference, its location, and the
        provider the patient was inserted with from it, if any.
        """
        rows = [
            (
                pk,
                self._next_seq(),
                self._dump_reference(reference),
                _dump_location(place),
                provider,
            )
            for pk, reference, place, provider in items
        ]
        with self.db:
            self.db.executemany(_SAVE_GENERAL_PRACTITIONER, rows)

    def general_practitioners(
        self, size: int
    ) -> Iterator[list[tuple[int, Reference, Location, int | None]]]:
        """Yield the items saved, in lists of SIZE, first seen first."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT seq, patient, reference, location, provider_at_insert "
                "FROM general_practitioner WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            # Text -> Reference, as many rows name the same practitioner.
            references = {}
            for _, _, text, _, _ in rows:
                if text not in references:
                    references[text] = _load_reference(text)
            yield [
                (pk, references[text], _load_location(place), provider)
                for _, pk, text, place, provider in rows
            ]

    def mark_chosen(self, pks) -> None:
        """Note patients whose provider generalPractitioner has set."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO chosen VALUES (?)", [(pk,) for pk in pks]
            )

    def chosen_among(self, pks: list[int]) -> set[int]:
        """Return those of PKS whose provider generalPractitioner has set."""
        found = set()
        for start in range(0, len(pks), 500):
            part = pks[start : start + 500]
            marks = ", ".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT patient FROM chosen WHERE patient IN ({marks})",  # noqa: S608
                part,
            )
            found.update(pk for (pk,) in rows)
        return found

    # --- Encounters ---

    def encounter_candidate(self, key: tuple[str, Reference]) -> Candidate:
        """Return the candidate to update with one more Encounter of KEY's patient.

        It covers only the Encounters seen since its last merge, and merging keeps
        the better of it and the stored one.
        """
        candidate = self._encounters.get(key)
        if candidate is None:
            if len(self._encounters) >= ENCOUNTER_BUFFER:
                self._merge_encounters()
            candidate = self._encounters[key] = Candidate()
            # The first time this key is seen in the run fixes its place.
            candidate.seq = self._next_seq()
        return candidate

    def _merge_encounters(self) -> None:
        rows = []
        for (source, patient), candidate in self._encounters.items():
            rows.append(
                (
                    source,
                    _dump_reference(patient),
                    candidate.seq,
                    candidate.checkup_started,
                    _dump_reference(candidate.checkup_performer),
                    _dump_location(candidate.checkup_location),
                    candidate.latest_started,
                    _dump_reference(candidate.latest_participant),
                    _dump_location(candidate.latest_location),
                )
            )
        with self.db:
            self.db.executemany(_MERGE_ENCOUNTER, rows)
        self._encounters.clear()

    def encounter_candidates(
        self, size: int
    ) -> Iterator[list[tuple[tuple[str, Reference], Candidate]]]:
        """Yield ((source, patient reference), Candidate) in lists of SIZE."""
        self._merge_encounters()
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT * FROM encounter WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][2]
            yield [
                (
                    (source, _load_reference(patient)),
                    Candidate(
                        checkup_started,
                        _load_reference(checkup_performer),
                        _load_location(checkup_location),
                        latest_started,
                        _load_reference(latest_participant),
                        _load_location(latest_location),
                    ),
                )
                for (
                    source,
                    patient,
                    _,
                    checkup_started,
                    checkup_performer,
                    checkup_location,
                    latest_started,
                    latest_participant,
                    latest_location,
                ) in rows
            ]


def _dump_reference(reference: Reference | None) -> str | None:
    if reference is None:
        return None
    # In the order of Reference's fields, which _load_reference() passes back.
    return json.dumps(
        [
            reference.kind,
            reference.resource_type,
            reference.id,
            reference.url,
            reference.system,
            reference.value,
        ]
    )


def _load_reference(text: str | None) -> Reference | None:
    return None if text is None else Reference(*json.loads(text))


def _dump_location(place: Location | None) -> str | None:
    if place is None:
        return None
    return json.dumps([place.path, place.line, place.entry])


def _load_location(text: str | None) -> Location | None:
    return None if text is None else Location(*json.loads(text))
