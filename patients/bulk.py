"""Bulk portal actions: what they would change and why rows are skipped, then doing it.

Every function takes a queryset of the selected patients, which is either the
ids ticked on one page or everyone matching the list's filters, rebuilt on the
server. Reasons are computed by the database, so a preview of a hundred
thousand patients costs one grouped query.
"""

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Case, CharField, Count, Exists, OuterRef, Value, When
from django.utils import timezone

from invitations.models import Invitation

ENABLE = "enable"
INVITE = "invite"
ACTIONS = {ENABLE: "Enable Portal Access", INVITE: "Send Portal Invite(s)"}

# Skip reasons, in the order they are checked: a patient is counted under the
# first that applies.
SKIP_REASONS = {
    "deceased": "Deceased",
    "inactive": "Record marked inactive in the EHR",
    "already_enabled": "Portal access already enabled",
    "access_not_enabled": "Portal access not enabled",
    "account_exists": "Already has a portal account",
    "no_email": "No email address",
    "invalid_email": "Email address is not valid",
    "recently_invited": "Invited in the last few days (link still valid)",
}

ELIGIBLE = "eligible"


@dataclass
class Plan:
    """What a bulk action would do: how many change, how many skip and why."""

    action: str
    eligible: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def total(self) -> int:
        return self.eligible + self.skipped_total

    def skipped_with_labels(self) -> list[tuple[str, str, int]]:
        return [
            (reason, SKIP_REASONS[reason], count)
            for reason, count in self.skipped.items()
        ]


def _recent_invitation_cutoff(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(days=settings.INVITATION_RESEND_AFTER_DAYS)


def annotate_reason(
    patients,
    action: str,
    now: datetime.datetime | None = None,
    *,
    allow_resend: bool = False,
):
    """Annotate each patient with ``skip_reason``: a key of SKIP_REASONS, or "eligible".

    ``allow_resend`` drops the "recently invited" reason, for a deliberate
    resend to one patient from their portal page.
    """
    now = now or timezone.now()
    if action == ENABLE:
        whens = [
            When(deceased=True, then=Value("deceased")),
            When(active=False, then=Value("inactive")),
            When(portal_access=True, then=Value("already_enabled")),
        ]
    elif action == INVITE:
        recent_invitation = Invitation.objects.filter(
            patient=OuterRef("pk"),
            status=Invitation.Status.PENDING,
            created_at__gte=_recent_invitation_cutoff(now),
            expires_at__gt=now,
        ).exclude(delivery_status=Invitation.Delivery.FAILED)
        whens = [
            When(deceased=True, then=Value("deceased")),
            When(active=False, then=Value("inactive")),
            When(portal_access=False, then=Value("access_not_enabled")),
            When(user__isnull=False, then=Value("account_exists")),
            When(email="", then=Value("no_email")),
            When(email_valid=False, then=Value("invalid_email")),
        ]
        if not allow_resend:
            whens.append(
                When(Exists(recent_invitation), then=Value("recently_invited"))
            )
    else:
        raise ValueError(f"Unknown bulk action {action!r}; use one of {list(ACTIONS)}.")
    return patients.annotate(
        skip_reason=Case(*whens, default=Value(ELIGIBLE), output_field=CharField())
    )


def plan(patients, action: str, now: datetime.datetime | None = None) -> Plan:
    """Count what ``action`` would do to ``patients`` without changing anything."""
    rows = (
        annotate_reason(patients.order_by(), action, now)
        .values("skip_reason")
        .annotate(count=Count("pk"))
    )
    result = Plan(action=action)
    counts = {row["skip_reason"]: row["count"] for row in rows}
    result.eligible = counts.pop(ELIGIBLE, 0)
    result.skipped = {
        reason: counts[reason] for reason in SKIP_REASONS if counts.get(reason)
    }
    return result


def eligible_ids(patients, action: str, now: datetime.datetime | None = None):
    return (
        annotate_reason(patients.order_by(), action, now)
        .filter(skip_reason=ELIGIBLE)
        .values_list("pk", flat=True)
        .order_by("pk")
    )
