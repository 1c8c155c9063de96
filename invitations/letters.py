"""Printed activation letters, for patients the practice cannot email.

A letter is an Invitation with channel "letter", so it behaves like an
emailed link. It expires and works once. A newer letter or invitation
replaces it, disabling portal access or changing the email address revokes
it, and wrong dates of birth lock it. Its delivery status is "printed", so
the delivery worker never picks it up.

The code on a letter exists only in the memory of the request that prints
it. The database holds its keyed hash (invitations.codes), and neither the
code nor anything derived from it is logged or audited.
"""

import datetime
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record, record_many
from invitations import codes
from invitations.models import Invitation
from invitations.services import CHUNK_SIZE, _supersede_pending
from patients import bulk
from patients.models import Patient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    """The content of one printed letter. CODE is the only copy of the code."""

    patient: Patient
    code: str
    expires_at: datetime.datetime
    invitation_id: int

    @property
    def printed_code(self) -> str:
        return codes.format_code(self.code)


@dataclass
class LetterPlan(bulk.Plan):
    """A carried-out bulk print: the counts, and the letters to show once."""

    letters: list[Letter] = field(default_factory=list)


def _new_letter(patient_id: int, actor, now) -> tuple[Invitation, str]:
    code = codes.new_code()
    invitation = Invitation(
        patient_id=patient_id,
        channel=Invitation.Channel.LETTER,
        email="",
        salt="",
        token_hash=codes.hash_code(code),
        created_by=actor,
        created_at=now,
        expires_at=now + datetime.timedelta(days=settings.ACTIVATION_LETTER_VALID_DAYS),
        delivery_status=Invitation.Delivery.PRINTED,
    )
    return invitation, code


def print_letters(patients, *, actor) -> LetterPlan:
    """Make one letter per eligible patient in PATIENTS; return them with the counts.

    Works in chunks, each one transaction holding the letters and their audit
    records. Each letter replaces the patient's pending invitations and
    letters. The letters come back sorted by name, for handing out.
    """
    planned = bulk.plan(patients, bulk.LETTER)
    result = LetterPlan(action=bulk.LETTER, skipped=planned.skipped)
    ids = list(bulk.eligible_ids(patients, bulk.LETTER))
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[start : start + CHUNK_SIZE]
        with transaction.atomic():
            now = timezone.now()
            # Re-checked under the lock, so a patient changed since the plan
            # was made, or printed for by a second click, is left out.
            eligible = list(
                bulk.annotate_reason(
                    Patient.objects.select_for_update().filter(pk__in=chunk),
                    bulk.LETTER,
                    now,
                ).filter(skip_reason=bulk.ELIGIBLE)
            )
            _supersede_pending(
                [patient.pk for patient in eligible], Invitation.Channel.LETTER
            )
            new_letters = [_new_letter(patient.pk, actor, now) for patient in eligible]
            invitations = Invitation.objects.bulk_create(
                [row for row, _ in new_letters]
            )
            record_many(
                AuditEvent.Action.LETTER,
                [invitation.patient_id for invitation in invitations],
                now=now,
                actor=actor,
                details=[{"invitation_id": letter.pk} for letter in invitations],
            )
        result.letters += [
            Letter(patient, code, invitation.expires_at, invitation.pk)
            for patient, invitation, (_, code) in zip(
                eligible, invitations, new_letters, strict=True
            )
        ]
    result.letters.sort(
        key=lambda letter: (letter.patient.sort_name, letter.patient.pk)
    )
    result.eligible = len(result.letters)
    logger.info("Activation letters printed: %d", result.eligible)
    # Patients printed for or changed by someone else between plan and print.
    missed = planned.eligible - result.eligible
    if missed > 0:
        result.skipped["recently_printed"] = (
            result.skipped.get("recently_printed", 0) + missed
        )
    return result


@transaction.atomic
def print_letter(patient: Patient, *, actor, override: str = "") -> Letter:
    """Make a letter for one patient from their portal page, replacing earlier ones.

    Raises bulk.SafetyCheckFailed with the reason when the patient cannot get
    a letter. OVERRIDE, a reason typed by a user with the override
    permission, sets aside an overridable check.
    """
    now = timezone.now()
    bulk.pass_safety_check(
        patient.pk, bulk.LETTER, actor=actor, override=override, allow_resend=True
    )
    patient = Patient.objects.get(pk=patient.pk)
    _supersede_pending([patient.pk], Invitation.Channel.LETTER)
    invitation, code = _new_letter(patient.pk, actor, now)
    invitation.save()
    record(
        AuditEvent.Action.LETTER,
        actor=actor,
        patient=patient,
        invitation_id=invitation.pk,
    )
    logger.info("Printed an activation letter, invitation %s", invitation.pk)
    return Letter(patient, code, invitation.expires_at, invitation.pk)


def find_letter(code: str, *, patient_id: int | None = None) -> Invitation | None:
    """Return the usable letter with CODE, a result of codes.parse_code(), or None.

    With PATIENT_ID, only a letter printed for that patient counts.
    """
    letters = Invitation.objects.usable().filter(
        channel=Invitation.Channel.LETTER, token_hash=codes.hash_code(code)
    )
    if patient_id is not None:
        letters = letters.filter(patient_id=patient_id)
    return letters.select_related("patient").first()
