"""Bulk portal actions: what they would change and why rows are skipped, then doing it.

Every function takes a queryset of the selected patients, which is either the
ids ticked on one page or everyone matching the list's filters, rebuilt on the
server. Reasons are computed by the database, so a preview of a hundred
thousand patients costs one grouped query.
"""

import datetime
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    OuterRef,
    Q,
    Value,
    When,
)
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from invitations.models import Invitation
from patients.models import Patient, Practitioner, normalize_email

ENABLE = "enable"
INVITE = "invite"
LETTER = "letter"
ACTIONS = {
    ENABLE: "Enable Portal Access",
    INVITE: "Send Portal Invite(s)",
    LETTER: "Print Activation Letters",
}

# Skip reasons, in the order they are checked: a patient is counted under the
# first that applies.
SKIP_REASONS = {
    "deceased": "Deceased",
    "inactive": "Record marked inactive in the EHR",
    "already_enabled": "Portal access already enabled",
    "access_not_enabled": "Portal access not enabled",
    "account_exists": "Already has a portal account",
    "has_email": "Has an email address: send an invitation instead",
    "no_email": "No email address",
    "invalid_email": "Email address is not valid",
    "no_birth_date": "No date of birth on file",
    "child": "Too young for an own account",
    "minor": "Minor (under the age of majority)",
    "shared_email": "Email address shared with another patient or a practitioner",
    "email_changed": "Email address changed recently",
    "delivery_failed": "Last delivery to this address failed",
    "possible_duplicate": "Another patient has the same name and date of birth",
    "recently_invited": "Invited in the last few days (link still valid)",
    "recently_printed": "Letter printed in the last few days (code still valid)",
}

# The reasons that come from the safety checks, which the list can filter by.
SKIP_REASONS_SAFETY = {
    reason: SKIP_REASONS[reason]
    for reason in (
        "no_email",
        "invalid_email",
        "no_birth_date",
        "child",
        "minor",
        "shared_email",
        "email_changed",
        "delivery_failed",
        "possible_duplicate",
    )
}

# Reasons a user with the override permission may set aside for one patient,
# with a reason. The others make the action impossible or pointless.
OVERRIDABLE = frozenset(
    {
        "minor",
        "shared_email",
        "email_changed",
        "delivery_failed",
        "possible_duplicate",
        "recently_invited",
        "recently_printed",
    }
)

ELIGIBLE = "eligible"

OVERRIDE_PERMISSION = "patients.override_safety_check"
OVERRIDE_REASON_MAX = 500


@dataclass
class Plan:
    """The outcome of a bulk action: how many patients change, how many skip and why."""

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
        """Return (reason, label, count) for each reason, in checking order.

        A stored result comes back from PostgreSQL's jsonb with its keys in
        another order.
        """
        order = list(SKIP_REASONS)
        return [
            (reason, SKIP_REASONS[reason], self.skipped[reason])
            for reason in sorted(self.skipped, key=order.index)
        ]


def _recent_invitation_cutoff(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(days=settings.INVITATION_RESEND_AFTER_DAYS)


def years_before(day: datetime.date, years: int) -> datetime.date:
    """Return the date YEARS before DAY; February 29 becomes February 28."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def practitioner_addresses() -> list[str]:
    """Return the practitioners' email addresses, normalized as patients' ones are.

    They are normalized in Python, as Patient.email_normalized is: SQLite's
    lower() leaves letters such as "Ü" as they are. A practice has few
    practitioners, so the list goes into the query as parameters.
    """
    addresses = Practitioner.objects.exclude(email="").values_list("email", flat=True)
    return sorted({normalize_email(address) for address in addresses} - {""})


def safety_conditions(now: datetime.datetime) -> dict[str, Q]:
    """Return each safety check as a condition on Patient, in checking order.

    Each condition holds on its own, so the list can filter by it. A
    patient skipped by an action counts under the first that applies, which
    is why "minor" there means from OWN_ACCOUNT_MIN_AGE up to the majority.
    """
    today = timezone.localdate(now)
    other_patient = Patient.objects.filter(
        email_normalized=OuterRef("email_normalized")
    ).exclude(pk=OuterRef("pk"))
    practitioner_emails = practitioner_addresses()
    failed_delivery = Invitation.objects.filter(
        patient=OuterRef("pk"),
        email__iexact=OuterRef("email"),
        delivery_status=Invitation.Delivery.FAILED,
    )
    twin = Patient.objects.filter(
        search_name=OuterRef("search_name"), birth_date=OuterRef("birth_date")
    ).exclude(pk=OuterRef("pk"))
    changed_since = now - datetime.timedelta(days=settings.EMAIL_CHANGE_HOLD_DAYS)
    return {
        "no_email": Q(email=""),
        "invalid_email": ~Q(email="") & Q(email_valid=False),
        "no_birth_date": Q(birth_date__isnull=True),
        "child": Q(birth_date__gt=years_before(today, settings.OWN_ACCOUNT_MIN_AGE)),
        "minor": Q(birth_date__gt=years_before(today, settings.AGE_OF_MAJORITY)),
        "shared_email": ~Q(email_normalized="")
        & (Q(Exists(other_patient)) | Q(email_normalized__in=practitioner_emails)),
        "email_changed": Q(email_changed_at__gte=changed_since),
        "delivery_failed": Q(Exists(failed_delivery)),
        "possible_duplicate": ~Q(search_name="") & Q(Exists(twin)),
    }


def recent_invitations(now: datetime.datetime):
    """Return the emailed invitations too recent to send another one.

    They are pending and unexpired. One that failed to arrive does not count,
    so the patient can be invited again at once.
    """
    return Invitation.objects.filter(
        channel=Invitation.Channel.EMAIL,
        status=Invitation.Status.PENDING,
        created_at__gte=_recent_invitation_cutoff(now),
        expires_at__gt=now,
    ).exclude(delivery_status=Invitation.Delivery.FAILED)


def record_conditions(now: datetime.datetime) -> dict[str, Q]:
    """Return the skip reasons that come from the record itself, as conditions.

    With safety_conditions() they make every skip reason a filter of the list.
    """
    recent_invitation = recent_invitations(now).filter(patient=OuterRef("pk"))
    return {
        "deceased": Q(deceased=True),
        "inactive": Q(active=False),
        "recently_invited": Q(Exists(recent_invitation)),
    }


def turning_adult(now: datetime.datetime, within_days: int) -> Q:
    """Return the condition for minors who reach the majority within WITHIN_DAYS."""
    today = timezone.localdate(now)
    majority = settings.AGE_OF_MAJORITY
    return Q(
        birth_date__gt=years_before(today, majority),
        birth_date__lte=years_before(
            today + datetime.timedelta(days=within_days), majority
        ),
    )


# The safety checks about the email address, which do not apply to letters.
EMAIL_CHECKS = frozenset(
    {"no_email", "invalid_email", "shared_email", "email_changed", "delivery_failed"}
)


def _safety_whens(now: datetime.datetime, *, email: bool = True) -> list[When]:
    """Return the checks shared by every action, after the action's own.

    Without EMAIL, the checks of the patient's address are left out, for
    letters, which are printed rather than emailed.
    """
    return [
        When(condition, then=Value(reason))
        for reason, condition in safety_conditions(now).items()
        if email or reason not in EMAIL_CHECKS
    ]


def _letter_whens(now: datetime.datetime, *, allow_resend: bool) -> list[When]:
    """Return the checks before printing an activation letter, in order.

    A patient with a usable address gets an emailed invitation instead,
    unless ACTIVATION_CODE_REQUIRED requires a letter as well as the email.
    """
    whens = [
        When(deceased=True, then=Value("deceased")),
        When(active=False, then=Value("inactive")),
        When(portal_access=False, then=Value("access_not_enabled")),
        When(user__isnull=False, then=Value("account_exists")),
    ]
    if not settings.ACTIVATION_CODE_REQUIRED:
        whens.append(When(~Q(email="") & Q(email_valid=True), then=Value("has_email")))
    whens += _safety_whens(now, email=False)
    if not allow_resend:
        recent_letter = Invitation.objects.filter(
            patient=OuterRef("pk"),
            channel=Invitation.Channel.LETTER,
            status=Invitation.Status.PENDING,
            created_at__gte=_recent_invitation_cutoff(now),
            expires_at__gt=now,
        )
        whens.append(When(Exists(recent_letter), then=Value("recently_printed")))
    return whens


def annotate_reason(
    patients,
    action: str,
    now: datetime.datetime | None = None,
    *,
    allow_resend: bool = False,
):
    """Annotate each patient with ``skip_reason``: a key of SKIP_REASONS, or "eligible".

    ``allow_resend`` drops the "recently invited" and "recently printed"
    reasons, for a deliberate resend to one patient from their portal page.
    """
    now = now or timezone.now()
    if action == ENABLE:
        whens = [
            When(deceased=True, then=Value("deceased")),
            When(active=False, then=Value("inactive")),
            When(portal_access=True, then=Value("already_enabled")),
            # Enabling access sends nothing, so the address is checked only
            # before an invitation goes out; a letter needs access without one.
            *_safety_whens(now, email=False),
        ]
    elif action == INVITE:
        recent_invitation = recent_invitations(now).filter(patient=OuterRef("pk"))
        whens = [
            When(deceased=True, then=Value("deceased")),
            When(active=False, then=Value("inactive")),
            When(portal_access=False, then=Value("access_not_enabled")),
            When(user__isnull=False, then=Value("account_exists")),
            *_safety_whens(now),
        ]
        if not allow_resend:
            whens.append(
                When(Exists(recent_invitation), then=Value("recently_invited"))
            )
    elif action == LETTER:
        whens = _letter_whens(now, allow_resend=allow_resend)
    else:
        raise ValueError(f"Unknown bulk action {action!r}; use one of {list(ACTIONS)}.")
    return patients.annotate(
        skip_reason=Case(*whens, default=Value(ELIGIBLE), output_field=CharField())
    )


def skip_reason(
    patient_id: int,
    action: str,
    now: datetime.datetime | None = None,
    *,
    allow_resend: bool = False,
    lock: bool = False,
) -> str:
    """Return one patient's skip reason for ACTION, or ELIGIBLE.

    LOCK selects the row FOR UPDATE, for a caller that acts on the result.
    """
    patients = Patient.objects.filter(pk=patient_id)
    if lock:
        patients = patients.select_for_update()
    annotated = annotate_reason(patients, action, now, allow_resend=allow_resend)
    return annotated.values_list("skip_reason", flat=True).get()


def can_override(reasons: list[str]) -> bool:
    """Tell whether an override may set aside all of REASONS together.

    A minor whose address is also someone else's cannot be included: the
    invitation would go to another person's mailbox, which the product never
    does for a minor.
    """
    if "minor" in reasons and "shared_email" in reasons:
        return False
    return all(reason in OVERRIDABLE for reason in reasons)


def failing_checks(
    patient_id: int,
    action: str,
    now: datetime.datetime | None = None,
    *,
    allow_resend: bool = False,
    lock: bool = False,
) -> list[str]:
    """Return every check that stops ACTION for one patient, in checking order.

    The checks that cannot be overridden come first in that order, so when
    the first one found can be overridden, the list names all that apply,
    and an override sets them aside together.
    """
    now = now or timezone.now()
    first = skip_reason(patient_id, action, now, allow_resend=allow_resend, lock=lock)
    if first == ELIGIBLE:
        return []
    if first not in OVERRIDABLE:
        return [first]
    patient = Patient.objects.filter(pk=patient_id)
    email_checked = action == INVITE
    others = [
        reason
        for reason, condition in safety_conditions(now).items()
        if reason in OVERRIDABLE
        and reason != first
        and (email_checked or reason not in EMAIL_CHECKS)
        and patient.filter(condition).exists()
    ]
    return [first, *others]


def blocked(patient_id: int, action: str) -> dict | None:
    """Describe what stops ACTION for one patient on their page, or return None.

    The result has the reasons' "label" joined for display and whether an
    override may set them all aside.
    """
    reasons = failing_checks(patient_id, action, allow_resend=True)
    if not reasons:
        return None
    return {
        "reasons": reasons,
        "label": "; ".join(SKIP_REASONS[reason] for reason in reasons),
        "overridable": can_override(reasons),
    }


class SafetyCheckFailed(ValueError):
    """Raised when safety checks skip the patient; the message lists their labels."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(SKIP_REASONS[reason] for reason in reasons))
        self.reasons = reasons
        self.reason = reasons[0]

    @property
    def overridable(self) -> bool:
        return can_override(self.reasons)


def pass_safety_check(
    patient_id: int, action: str, *, actor, override: str = "", **options
) -> None:
    """Check one patient before ACTION, or raise SafetyCheckFailed.

    With OVERRIDE, the reason typed by an ACTOR who has the override
    permission, overridable checks are set aside together and the override
    is audited with each of them. The caller runs this inside the
    transaction of the action.
    """
    reasons = failing_checks(patient_id, action, lock=True, **options)
    if not reasons:
        return
    override = override.strip()
    may_override = (
        override
        and can_override(reasons)
        and actor is not None
        and actor.has_perm(OVERRIDE_PERMISSION)
    )
    if not may_override:
        raise SafetyCheckFailed(reasons)
    record(
        AuditEvent.Action.OVERRIDE,
        actor=actor,
        patient=Patient.objects.get(pk=patient_id),
        attempted=action,
        checks=reasons,
        reason=override,
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


def plan_with_ids(
    patients, action: str, now: datetime.datetime | None = None
) -> tuple[Plan, list[int]]:
    """Return plan() of ACTION for PATIENTS, and the eligible ids in order.

    One query gives both, where plan() and eligible_ids() take one each.
    """
    rows = (
        annotate_reason(patients.order_by(), action, now)
        .values_list("pk", "skip_reason")
        .order_by("pk")
    )
    ids = []
    counts = Counter()
    for pk, reason in rows:
        if reason == ELIGIBLE:
            ids.append(pk)
        else:
            counts[reason] += 1
    result = Plan(action=action, eligible=len(ids))
    result.skipped = {
        reason: counts[reason] for reason in SKIP_REASONS if counts[reason]
    }
    return result, ids


def eligible_ids(patients, action: str, now: datetime.datetime | None = None):
    return (
        annotate_reason(patients.order_by(), action, now)
        .filter(skip_reason=ELIGIBLE)
        .values_list("pk", flat=True)
        .order_by("pk")
    )
