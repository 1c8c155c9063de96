"""Finding queued invitations that a crashed worker left behind."""

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from invitations.models import Invitation
from invitations.services import enqueue_delivery
from invitations.tasks import deliver_invitations
from worker.queue import runs_due

logger = logging.getLogger(__name__)


def requeue_left_behind() -> int:
    """Queue delivery again for invitations no worker will send; return how many.

    Two kinds are left behind. An invitation whose claim ran out was being
    sent by a worker that stopped. An unclaimed invitation that has been due
    for longer than SWEEP_GRACE_SECONDS while no delivery task is due belonged
    to a task whose worker stopped before claiming it. Queuing one twice is
    harmless: only one run can claim it.
    """
    now = timezone.now()
    grace = datetime.timedelta(seconds=settings.SWEEP_GRACE_SECONDS)
    queued = Invitation.objects.filter(delivery_status=Invitation.Delivery.QUEUED)
    with transaction.atomic():
        expired = list(
            queued.filter(claimed_until__lte=now).values_list("pk", flat=True)
        )
        queued.filter(pk__in=expired, claimed_until__lte=now).update(
            claimed_until=None, claim_token=""
        )
        waiting = []
        if not runs_due(deliver_invitations).exists():
            waiting = list(
                queued.filter(claimed_until__isnull=True)
                .filter(
                    Q(next_attempt_at__isnull=True, created_at__lte=now - grace)
                    | Q(next_attempt_at__lte=now - grace)
                )
                .values_list("pk", flat=True)
            )
        invitation_ids = sorted(set(expired) | set(waiting))
        enqueue_delivery(invitation_ids)
    if invitation_ids:
        logger.warning(
            "Queued delivery again for %d invitations left behind by a stopped "
            "worker (%d whose claim ran out, %d with no task due)",
            len(invitation_ids),
            len(expired),
            len(set(waiting) - set(expired)),
        )
    return len(invitation_ids)
