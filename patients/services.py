"""Every change to a patient's portal status goes through a function here.

Each runs in one transaction and writes its audit record in that transaction.
Views and commands call these; they do not save the models themselves.
"""

import logging
import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record, record_many
from patients import bulk
from patients.models import Patient
from portal.bulk_writes import id_in

logger = logging.getLogger(__name__)

CHUNK_SIZE = 500


def enable_access(patients, *, actor) -> bulk.Plan:
    """Enable portal access for every eligible patient in ``patients``.

    Works in chunks, each its own transaction, so a large selection does not
    hold one long write lock. Returns the plan that was carried out, with the
    counts of patients changed and skipped.
    """
    result, ids = bulk.plan_with_ids(patients, bulk.ENABLE)
    changed = 0
    for start in range(0, len(ids), CHUNK_SIZE):
        with transaction.atomic():
            now = timezone.now()
            enabled = _grant_access(ids[start : start + CHUNK_SIZE], now)
            record_many(AuditEvent.Action.ENABLE_ACCESS, enabled, now=now, actor=actor)
        changed += len(enabled)
    logger.info("Enabled portal access for %d patients", changed)
    # Patients enabled by someone else between the plan and the change.
    if result.eligible > changed:
        result.skipped["already_enabled"] = (
            result.skipped.get("already_enabled", 0) + result.eligible - changed
        )
    result.eligible = changed
    return result


def _grant_access(patient_ids: list[int], now) -> list[int]:
    """Enable access for those of PATIENT_IDS who still qualify; return their ids.

    One statement both re-checks and changes each row, so a patient enabled,
    or marked deceased, by someone else since the plan was made is neither
    changed nor audited.
    """
    test, params = id_in("id", patient_ids)
    table = connection.ops.quote_name(Patient._meta.db_table)
    update = (
        f"UPDATE {table} SET portal_access = %s, portal_access_changed_at = %s "  # noqa: S608
        f"WHERE {test} AND NOT portal_access AND NOT deceased AND active "
        "RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            update,
            [True, connection.ops.adapt_datetimefield_value(now), *params],
        )
        return sorted(row[0] for row in cursor.fetchall())


@transaction.atomic
def set_access(patient: Patient, enabled: bool, *, actor, override: str = "") -> None:
    """Enable or disable one patient's portal access from their portal page.

    Enabling runs the safety checks and raises ValidationError with the
    reason a check failed. OVERRIDE, a reason typed by a user with the
    override permission, sets aside an overridable check.
    """
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if patient.portal_access == enabled:
        return
    if enabled:
        try:
            bulk.pass_safety_check(
                patient.pk, bulk.ENABLE, actor=actor, override=override
            )
        except bulk.SafetyCheckFailed as error:
            raise ValidationError(
                f"Portal access was not enabled: {error}.", code=error.reason
            ) from None
    patient.portal_access = enabled
    patient.portal_access_changed_at = timezone.now()
    patient.save(update_fields=["portal_access", "portal_access_changed_at"])
    if not enabled:
        # A disabled patient must not be able to finish sign-up from an old link.
        from invitations.models import Invitation

        patient.invitations.filter(status=Invitation.Status.PENDING).update(
            status=Invitation.Status.REVOKED
        )
        if patient.user_id:
            user = patient.user
            user.is_active = False
            user.save(update_fields=["is_active"])
    elif patient.user_id and not patient.user.is_active:
        user = patient.user
        user.is_active = True
        user.save(update_fields=["is_active"])
    action = (
        AuditEvent.Action.ENABLE_ACCESS if enabled else AuditEvent.Action.DISABLE_ACCESS
    )
    record(action, actor=actor, patient=patient)


def normalize_username(username: str) -> str:
    """Return the form a patient's username is stored and compared in.

    NFKC folds look-alike forms such as full-width letters into one, and
    case folding makes "Maren" and "MAREN" the same username, so logins
    ignore case too.
    """
    folded = unicodedata.normalize("NFKC", username).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


# Characters a username may hold besides letters, combining marks and digits.
USERNAME_PUNCTUATION = frozenset("._-")


def _script(char: str) -> str:
    """Return the script of a letter, as the first word of its Unicode name."""
    return unicodedata.name(char, "UNKNOWN").split(" ")[0]


def validate_username(username: str, *, exclude_user_id: int | None = None) -> str:
    """Return the cleaned username or raise ValidationError saying what to change."""
    cleaned = normalize_username(username)
    if not cleaned:
        raise ValidationError("Enter a username.")
    if len(cleaned) > 150:
        raise ValidationError("Use a username of at most 150 characters.")
    if any(ch.isspace() for ch in cleaned):
        raise ValidationError("A username cannot contain spaces.")

    if "@" in cleaned:
        raise ValidationError(
            "A username cannot be an email address. Choose a name you will "
            "remember, such as your first name and a number."
        )
    allowed = all(
        unicodedata.category(ch)[0] in "LM"
        or unicodedata.category(ch) == "Nd"
        or ch in USERNAME_PUNCTUATION
        for ch in cleaned
    )
    if not allowed:
        raise ValidationError(
            "Use only letters, digits, dots, hyphens and underscores in a username."
        )

    scripts = {_script(ch) for ch in cleaned if unicodedata.category(ch)[0] == "L"}
    if len(scripts) > 1:
        # Letters of two scripts, such as a Cyrillic "е" among Latin letters,
        # make a username that looks like another one.
        raise ValidationError(
            "Use letters of one alphabet only in a username, not a mix such "
            "as Latin and Cyrillic."
        )

    user_model = get_user_model()
    taken = user_model.objects.filter(username__iexact=cleaned)
    if exclude_user_id is not None:
        taken = taken.exclude(pk=exclude_user_id)
    if taken.exists():
        raise ValidationError("That username is not available. Choose another.")
    return cleaned


@transaction.atomic
def change_username(patient: Patient, new_username: str, *, actor) -> None:
    """Set or change the username of a patient who has finished account setup."""
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if patient.user is None:
        raise ValidationError(
            "This patient has not set up an account yet, so there is no username "
            "to change. Send an invitation instead."
        )
    user = patient.user
    cleaned = validate_username(new_username, exclude_user_id=user.pk)
    if cleaned == user.username:
        return
    user.username = cleaned
    user.save(update_fields=["username"])
    record(AuditEvent.Action.USERNAME_CHANGE, actor=actor, patient=patient)


@transaction.atomic
def record_patient_login(user, *, logged_out: bool = False) -> None:
    """Store the time of a patient's login (or logout) and audit it."""
    patient = Patient.objects.select_for_update().filter(user=user).first()
    if patient is None:
        return
    if not logged_out:
        patient.last_login_at = timezone.now()
        patient.save(update_fields=["last_login_at"])
    action = AuditEvent.Action.LOGOUT if logged_out else AuditEvent.Action.LOGIN
    record(action, actor=user, patient=patient)


@transaction.atomic
def record_staff_login(user, **detail) -> None:
    """Audit a staff member's login to the staff pages; DETAIL goes into the record."""
    record(AuditEvent.Action.STAFF_LOGIN, actor=user, **detail)


@transaction.atomic
def change_email(
    patient: Patient,
    address: str,
    *,
    actor=None,
    actor_label: str | None = None,
    **detail,
) -> int:
    """Store a patient's new email address as the security event it is.

    Every pending invitation stops working, and so does any password reset
    link, because those are tied to the address on the patient's login. The
    old address gets a notice without a link, the patient is marked "email
    changed recently" for EMAIL_CHANGE_HOLD_DAYS, and the change is audited
    with both addresses and who made it. A change of letter case or of
    surrounding space only is stored without any of this. Returns the number
    of invitations revoked; DETAIL goes into the audit record.
    """
    from invitations.models import Invitation
    from portal.tasks import send_email_change_notice

    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    old = patient.email
    old_normalized = patient.email_normalized
    patient.set_email(address)
    if patient.email_normalized == old_normalized:
        patient.save(update_fields=["email", "email_normalized", "email_valid"])
        return 0

    patient.email_changed_at = timezone.now()
    patient.save(
        update_fields=["email", "email_normalized", "email_valid", "email_changed_at"]
    )
    pending = Invitation.objects.filter(
        patient=patient, status=Invitation.Status.PENDING
    )
    pending.filter(delivery_status=Invitation.Delivery.QUEUED).update(
        delivery_status=Invitation.Delivery.CANCELLED
    )
    revoked = pending.update(status=Invitation.Status.REVOKED)
    if patient.user_id:
        user = patient.user
        user.email = patient.email
        user.save(update_fields=["email"])

    record(
        AuditEvent.Action.EMAIL_CHANGE,
        actor=actor,
        actor_label=actor_label,
        patient=patient,
        old=old,
        new=patient.email,
        invitations_revoked=revoked,
        **detail,
    )
    if old_normalized:
        send_email_change_notice.enqueue(patient.pk, old)
    return revoked
