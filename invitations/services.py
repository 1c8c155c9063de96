"""State changes of invitations: creating, checking, accepting and delivering them.

Each function runs in one transaction with its audit record. Delivery tasks
are enqueued inside the same transaction as the invitations they send, so a
rolled-back send leaves no task behind and sends no email.
"""

import datetime
import logging
from collections import Counter

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record, record_many
from invitations.models import Invitation, hash_token
from patients import bulk
from patients.models import Patient
from portal.bulk_writes import (
    commit_without_waiting_for_disk,
    insert_rows,
    reserve_ids,
)

logger = logging.getLogger(__name__)

CHUNK_SIZE = 500


def enqueue_delivery(invitation_ids: list[int]) -> None:
    from invitations.tasks import deliver_invitations

    batch = settings.DELIVERY_BATCH_SIZE
    for start in range(0, len(invitation_ids), batch):
        deliver_invitations.enqueue(invitation_ids[start : start + batch])


def _new_invitation(patient_id: int, email: str, actor, now) -> Invitation:
    salt = Invitation.new_salt()
    return Invitation(
        patient_id=patient_id,
        email=email,
        salt=salt,
        token_hash=hash_token(Invitation.token_for_salt(salt)),
        created_by=actor,
        created_at=now,
        expires_at=now + datetime.timedelta(days=settings.INVITATION_VALID_DAYS),
    )


def _supersede_pending(patient_ids, channel=Invitation.Channel.EMAIL) -> None:
    """Make older links and letters stop working; an unsent one is not sent at all.

    With ACTIVATION_CODE_REQUIRED an emailed link needs the code of a letter
    as well, so a new invitation of one CHANNEL replaces only earlier ones of
    that channel, and the link and the letter can be made in either order.
    """
    pending = Invitation.objects.filter(
        patient_id__in=patient_ids, status=Invitation.Status.PENDING
    )
    if settings.ACTIVATION_CODE_REQUIRED:
        pending = pending.filter(channel=channel)
    pending.update(
        status=Invitation.Status.SUPERSEDED,
        delivery_status=Case(
            When(
                delivery_status=Invitation.Delivery.QUEUED,
                then=Value(Invitation.Delivery.CANCELLED),
            ),
            default=F("delivery_status"),
        ),
    )


def send_invitations(patients, *, actor) -> bulk.Plan:
    """Create one invitation per eligible patient and queue their delivery.

    Works in chunks of the selected patients. Each chunk is one transaction
    that locks its patients, checks them, and writes their invitations, audit
    records and delivery tasks, so that two clicks, or two people, never
    invite one patient twice. Returns the plan carried out.
    """
    ids = list(patients.order_by("pk").values_list("pk", flat=True))
    result = bulk.Plan(action=bulk.INVITE)
    skipped = Counter()
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[start : start + CHUNK_SIZE]
        with transaction.atomic():
            now = timezone.now()
            checked = bulk.annotate_reason(
                Patient.objects.select_for_update().filter(pk__in=chunk),
                bulk.INVITE,
                now,
                allow_resend=True,
            )
            # Run now, so the rows are locked before the check below. That check
            # then reads the invitations of another send that locked them first.
            checked = list(checked.order_by().values_list("pk", "skip_reason", "email"))
            # The last check is made here for the whole chunk. Inside the query
            # above, PostgreSQL may choose to read every recent invitation.
            recent = set(
                bulk.recent_invitations(now)
                .filter(patient__in=chunk)
                .values_list("patient_id", flat=True)
            )
            eligible = []
            for pk, reason, email in checked:
                if reason == bulk.ELIGIBLE and pk in recent:
                    reason = "recently_invited"
                if reason == bulk.ELIGIBLE:
                    eligible.append((pk, email))
                else:
                    skipped[reason] += 1
            _create_invitations(eligible, actor, now)
        result.eligible += len(eligible)
    result.skipped = {
        reason: skipped[reason] for reason in bulk.SKIP_REASONS if skipped[reason]
    }
    logger.info("Queued %d invitations", result.eligible)
    return result


def _create_invitations(patients: list[tuple[int, str]], actor, now) -> None:
    """Invite each (patient id, email) of PATIENTS, audit it and queue delivery.

    The rows go to the database in bulk (portal.bulk_writes): a large send
    writes tens of thousands of invitations, audit records included.
    """
    patient_ids = [patient_id for patient_id, _ in patients]
    _supersede_pending(patient_ids)
    invitation_ids = reserve_ids(Invitation, len(patients))
    expires_at = now + datetime.timedelta(days=settings.INVITATION_VALID_DAYS)
    actor_id = actor.pk if actor is not None else None
    rows = []
    for invitation_id, (patient_id, email) in zip(
        invitation_ids, patients, strict=True
    ):
        salt = Invitation.new_salt()
        token_hash = hash_token(Invitation.token_for_salt(salt))
        rows.append(
            (invitation_id, patient_id, email, salt, token_hash)
            + (actor_id, now, expires_at)
        )
    insert_rows(
        Invitation,
        [
            "id",
            "patient",
            "email",
            "salt",
            "token_hash",
            "created_by",
            "created_at",
            "expires_at",
        ],
        rows,
    )
    record_many(
        AuditEvent.Action.INVITE,
        patient_ids,
        now=now,
        actor=actor,
        details=[{"invitation_id": pk} for pk in invitation_ids],
    )
    enqueue_delivery(invitation_ids)


@transaction.atomic
def send_invitation(patient: Patient, *, actor, override: str = "") -> Invitation:
    """Invite one patient from their portal page, replacing any pending invitation.

    Raises bulk.SafetyCheckFailed with the reason when the patient cannot be
    invited. OVERRIDE, a reason typed by a user with the override permission,
    sets aside an overridable check.
    """
    now = timezone.now()
    bulk.pass_safety_check(
        patient.pk, bulk.INVITE, actor=actor, override=override, allow_resend=True
    )
    email = Patient.objects.values_list("email", flat=True).get(pk=patient.pk)
    _supersede_pending([patient.pk])
    invitation = _new_invitation(patient.pk, email, actor, now)
    invitation.save()
    record(
        AuditEvent.Action.INVITE,
        actor=actor,
        patient=patient,
        invitation_id=invitation.pk,
    )
    enqueue_delivery([invitation.pk])
    return invitation


def find_invitation(token: str) -> Invitation | None:
    """Return the usable invitation for a link's token, or None for any other link."""
    if not token or len(token) > 100:
        return None
    return (
        Invitation.objects.usable()
        .select_related("patient")
        .filter(channel=Invitation.Channel.EMAIL, token_hash=hash_token(token))
        .first()
    )


@transaction.atomic
def check_date_of_birth(invitation: Invitation, birth_date: datetime.date) -> bool:
    """Check a typed date of birth; lock the invitation after repeated misses."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_usable:
        return False
    patient = invitation.patient
    if patient.birth_date is not None and patient.birth_date == birth_date:
        return True
    invitation.dob_failures += 1
    if invitation.dob_failures >= settings.INVITATION_MAX_DOB_ATTEMPTS:
        invitation.status = Invitation.Status.LOCKED
    invitation.save(update_fields=["dob_failures", "status"])
    record(
        AuditEvent.Action.DOB_MISMATCH,
        actor_label="patient",
        patient=patient,
        outcome=AuditEvent.Outcome.FAILURE,
        invitation_id=invitation.pk,
        failures=invitation.dob_failures,
        locked=invitation.status == Invitation.Status.LOCKED,
    )
    return False


class InvitationNotUsable(Exception):
    """The invitation was used, replaced, revoked, locked or expired meanwhile."""


@transaction.atomic
def accept_invitation(
    invitation: Invitation,
    *,
    username: str,
    password: str,
    letter: Invitation | None = None,
):
    """Create the patient's login from an invitation, exactly once.

    The caller has validated the username and password. An invitation that
    needs_letter_code also takes the LETTER whose code the patient typed,
    which is used up with it. Raises InvitationNotUsable when the link or
    the letter stopped working in the meantime, and django's IntegrityError
    when the username was taken in the meantime.
    """
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("patient")
        .get(pk=invitation.pk)
    )
    patient = Patient.objects.select_for_update().get(pk=invitation.patient_id)
    if not invitation.is_usable or patient.user_id is not None:
        raise InvitationNotUsable()
    if not patient.portal_access:
        raise InvitationNotUsable()
    used_letter = None
    if invitation.needs_letter_code:
        if letter is None:
            raise InvitationNotUsable()
        used_letter = Invitation.objects.select_for_update().get(pk=letter.pk)
        if (
            not used_letter.is_usable
            or used_letter.channel != Invitation.Channel.LETTER
            or used_letter.patient_id != invitation.patient_id
        ):
            raise InvitationNotUsable()

    user = get_user_model().objects.create_user(
        username=username, password=password, email=patient.email
    )
    patient.user = user
    patient.save(update_fields=["user"])
    accepted = [invitation] if used_letter is None else [invitation, used_letter]
    for row in accepted:
        row.status = Invitation.Status.ACCEPTED
        row.accepted_at = timezone.now()
        row.save(update_fields=["status", "accepted_at"])
    letter_detail = {} if used_letter is None else {"letter_id": used_letter.pk}
    record(
        AuditEvent.Action.ACCEPT,
        actor=user,
        patient=patient,
        invitation_id=invitation.pk,
        **letter_detail,
    )
    # Tells the address on file, so that an account set up by someone else
    # does not go unnoticed. Queued in this transaction, so it is sent only
    # when the account exists.
    from portal.tasks import send_account_created

    send_account_created.enqueue(user.pk)
    logger.info("Invitation %s accepted, account created", invitation.pk)
    return user


def retry_delay(attempts: int) -> datetime.timedelta:
    """Return the wait after ATTEMPTS failed deliveries: doubling, up to a cap."""
    seconds = settings.DELIVERY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return datetime.timedelta(seconds=min(seconds, settings.DELIVERY_RETRY_MAX_SECONDS))


@transaction.atomic
def record_delivery(invitation_id: int, *, sent: bool, error: str = "") -> Invitation:
    """Record that the SMTP server accepted an invitation, or rejected it for good.

    A sent invitation also sets the patient's "last invite sent". ERROR is the
    reason for a rejection, shown to staff, and must not contain the address.
    An invitation already recorded as sent is left as it is, so a repeated
    delivery neither writes a second audit record nor turns it into a failure.
    """
    # A delivery record lost to a crash of the database server means the
    # message is sent again, with the same link, and recorded then.
    commit_without_waiting_for_disk()
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("patient")
        .get(pk=invitation_id)
    )
    if invitation.delivery_status == Invitation.Delivery.SENT:
        return invitation

    now = timezone.now()
    invitation.delivery_attempts += 1
    invitation.next_attempt_at = None
    if sent:
        invitation.delivery_status = Invitation.Delivery.SENT
        invitation.sent_at = now
        invitation.delivery_error = ""
    else:
        invitation.delivery_status = Invitation.Delivery.FAILED
        invitation.delivery_error = error
    invitation.save(
        update_fields=[
            "delivery_status",
            "delivery_attempts",
            "delivery_error",
            "next_attempt_at",
            "sent_at",
        ]
    )

    if sent:
        # Two deliveries finishing out of order must not move the date back.
        Patient.objects.filter(pk=invitation.patient_id).exclude(
            last_invite_sent_at__gte=now
        ).update(last_invite_sent_at=now)
        record(
            AuditEvent.Action.DELIVERY,
            patient=invitation.patient,
            invitation_id=invitation.pk,
        )
    else:
        record(
            AuditEvent.Action.DELIVERY,
            patient=invitation.patient,
            outcome=AuditEvent.Outcome.FAILURE,
            invitation_id=invitation.pk,
            reason=error,
        )
    return invitation


@transaction.atomic
def record_sent(invitation_ids: list[int]) -> None:
    """Record that the SMTP server accepted these invitations, in one transaction.

    The same as record_delivery(sent=True) for each, with one audit record
    per invitation. Invitations already recorded as sent are left as they are.
    """
    # A delivery record lost to a crash of the database server means the
    # message is sent again, with the same link, and recorded then.
    commit_without_waiting_for_disk()
    now = timezone.now()
    rows = list(
        Invitation.objects.select_for_update()
        .filter(pk__in=invitation_ids)
        .exclude(delivery_status=Invitation.Delivery.SENT)
        .order_by("pk")
        .values_list("pk", "patient_id")
    )
    Invitation.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        delivery_status=Invitation.Delivery.SENT,
        sent_at=now,
        delivery_error="",
        next_attempt_at=None,
        delivery_attempts=F("delivery_attempts") + 1,
    )
    # Two deliveries finishing out of order must not move the date back.
    Patient.objects.filter(pk__in={patient_id for _, patient_id in rows}).exclude(
        last_invite_sent_at__gte=now
    ).update(last_invite_sent_at=now)
    record_many(
        AuditEvent.Action.DELIVERY,
        [patient_id for _, patient_id in rows],
        now=now,
        actor_label="system",
        details=[{"invitation_id": pk} for pk, _ in rows],
    )


@transaction.atomic
def cancel_delivery(invitation_id: int, *, reason: str) -> bool:
    """Stop a queued invitation from being sent; return whether it was still queued.

    The worker calls this for an invitation whose link no longer works or
    whose patient has a different email address by the time it is sent.
    """
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("patient")
        .get(pk=invitation_id)
    )
    if invitation.delivery_status != Invitation.Delivery.QUEUED:
        return False

    invitation.delivery_status = Invitation.Delivery.CANCELLED
    invitation.delivery_error = reason
    invitation.next_attempt_at = None
    invitation.save(
        update_fields=["delivery_status", "delivery_error", "next_attempt_at"]
    )
    record(
        AuditEvent.Action.DELIVERY,
        patient=invitation.patient,
        outcome=AuditEvent.Outcome.FAILURE,
        invitation_id=invitation.pk,
        reason=reason,
        cancelled=True,
    )
    return True


def _free_or_held_by(token: str, now):
    """Return a filter for invitations that are unclaimed or claimed by TOKEN's run."""
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    return free | Q(claim_token=token) if token else free


def claim_delivery(invitation_ids: list[int], *, token: str) -> list[int]:
    """Claim the queued, due invitations among these ids for one delivery run.

    Another run skips the invitations claimed by this one until the claim
    ends, after DELIVERY_LEASE_SECONDS. On PostgreSQL, rows that another run
    is claiming at the same moment are skipped rather than waited for (FOR
    UPDATE SKIP LOCKED).
    Returns the claimed ids in order.
    """
    now = timezone.now()
    with transaction.atomic():
        claimed = list(
            Invitation.objects.select_for_update(skip_locked=True)
            .filter(pk__in=invitation_ids, delivery_status=Invitation.Delivery.QUEUED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(_free_or_held_by(token, now))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        Invitation.objects.filter(pk__in=claimed).update(
            claimed_until=now
            + datetime.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS),
            claim_token=token,
        )
    return claimed


def extend_claim(invitation_ids: list[int], *, token: str) -> int:
    """Hold this run's still-queued invitations for another lease; return how many."""
    return Invitation.objects.filter(
        pk__in=invitation_ids,
        delivery_status=Invitation.Delivery.QUEUED,
        claim_token=token,
    ).update(
        claimed_until=timezone.now()
        + datetime.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    )


@transaction.atomic
def requeue_delivery(invitation_ids: list[int], *, token: str = "") -> None:
    """Queue a new delivery task now for invitations that were never tried.

    Claims held by the run with TOKEN end, so the new task can take them.
    """
    from invitations.tasks import deliver_invitations

    if token:
        Invitation.objects.filter(pk__in=invitation_ids, claim_token=token).update(
            claimed_until=None, claim_token=""
        )
    deliver_invitations.enqueue(invitation_ids)


@transaction.atomic
def retry_delivery(
    invitation_ids: list[int], *, error: str, token: str = ""
) -> list[Invitation]:
    """Count a temporary failure against queued invitations and queue another try.

    Each invitation waits retry_delay(attempts) before the next try. One with
    DELIVERY_MAX_ATTEMPTS attempts is marked failed with ERROR instead. The
    new tasks are enqueued in this transaction, so a retry is never lost
    between the failure being recorded and the next task existing. Returns
    the invitations that were still queued, with their new state.
    """
    now = timezone.now()
    invitations = list(
        Invitation.objects.select_for_update()
        .select_related("patient")
        .filter(pk__in=invitation_ids, delivery_status=Invitation.Delivery.QUEUED)
        # An invitation claimed by another delivery run is recorded by that run.
        .filter(_free_or_held_by(token, now))
        .order_by("pk")
    )

    retry_at: dict[datetime.datetime, list[int]] = {}
    for invitation in invitations:
        invitation.claimed_until = None
        invitation.claim_token = ""
        invitation.delivery_attempts += 1
        invitation.delivery_error = error
        if invitation.delivery_attempts >= settings.DELIVERY_MAX_ATTEMPTS:
            invitation.delivery_status = Invitation.Delivery.FAILED
            invitation.next_attempt_at = None
            record(
                AuditEvent.Action.DELIVERY,
                patient=invitation.patient,
                outcome=AuditEvent.Outcome.FAILURE,
                invitation_id=invitation.pk,
                reason=error,
                attempts=invitation.delivery_attempts,
            )
        else:
            invitation.next_attempt_at = now + retry_delay(invitation.delivery_attempts)
            retry_at.setdefault(invitation.next_attempt_at, []).append(invitation.pk)
    Invitation.objects.bulk_update(
        invitations,
        [
            "delivery_status",
            "delivery_attempts",
            "delivery_error",
            "next_attempt_at",
            "claimed_until",
            "claim_token",
        ],
    )

    from invitations.tasks import deliver_invitations

    for run_after, ids in retry_at.items():
        deliver_invitations.using(run_after=run_after).enqueue(ids)
    return invitations
