import datetime
import itertools
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from portal.bulk_writes import insert_rows


def record(
    action: str,
    *,
    actor=None,
    actor_label: str | None = None,
    patient=None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    **detail,
) -> AuditEvent:
    """Insert an audit record; the caller must be inside the change's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "audit.record() must run inside the transaction of the change it records."
        )
    if actor_label is None:
        actor_label = actor.get_username() if actor is not None else "system"
    return AuditEvent.objects.create(
        created_at=timezone.now(),
        actor=actor,
        actor_label=actor_label,
        action=action,
        outcome=outcome,
        patient=patient,
        detail=detail,
    )


def record_many(
    action: str,
    patient_ids: Sequence[int],
    *,
    now: datetime.datetime,
    actor=None,
    actor_label: str | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    details: Sequence[dict] | None = None,
) -> None:
    """Insert one audit record per patient at once, for bulk actions.

    DETAILS, when given, contains each record's detail in the order of
    PATIENT_IDS. Same rule as record(): inside the change's transaction.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "audit.record_many() must run inside the transaction of the change."
        )
    if actor_label is None:
        actor_label = actor.get_username() if actor is not None else "system"
    actor_id = actor.pk if actor is not None else None
    if details is None:
        details = itertools.repeat({})
    elif len(details) != len(patient_ids):
        raise ValueError(
            f"record_many() needs one detail per patient, not {len(details)} details "
            f"for {len(patient_ids)} patients."
        )
    insert_rows(
        AuditEvent,
        ["created_at", "actor", "actor_label", "action", "outcome"]
        + ["patient", "detail"],
        (
            (now, actor_id, actor_label, action, outcome, patient_id, detail)
            # Not strict: without DETAILS every record has an empty detail.
            for patient_id, detail in zip(patient_ids, details, strict=False)
        ),
    )
