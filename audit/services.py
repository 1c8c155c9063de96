from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent


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


def record_many(events: list[AuditEvent]) -> None:
    """Insert many audit records at once, for bulk actions; same rule as record()."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "audit.record_many() must run inside the transaction of the change."
        )
    AuditEvent.objects.bulk_create(events, batch_size=500)
