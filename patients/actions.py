"""Bulk actions from the onboarding list: the selection, one-time keys, the result.

A selection is either the ids ticked on one page or every patient matching
the list's filters. For the second, the queryset is rebuilt on the server
from the filter parameters, never from ids sent by the browser.
"""

import datetime
import logging
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from invitations.letters import print_letters
from invitations.services import send_invitations
from patients import bulk
from patients.filters import PatientFilterForm, filter_patients, is_valid_id
from patients.models import BulkActionRequest, Patient
from patients.services import enable_access

logger = logging.getLogger(__name__)

SCOPE_PAGE = "page"
SCOPE_ALL = "all"

PERMISSIONS = {
    bulk.ENABLE: "patients.enable_portal_access",
    bulk.INVITE: "patients.send_portal_invitation",
    bulk.LETTER: "patients.send_portal_invitation",
}


class SelectionError(ValueError):
    """Raised when the posted selection cannot be acted on; the message explains why."""


def selected_patients(post, filter_form: PatientFilterForm):
    """Return the queryset of patients a bulk action form refers to.

    Raises SelectionError when nothing is selected or the filters are invalid.
    """
    scope = post.get("scope", SCOPE_PAGE)
    if scope == SCOPE_ALL:
        if not filter_form.is_valid():
            raise SelectionError(
                "The filters have errors. Fix them before acting on every "
                "matching patient."
            )
        return filter_patients(filter_form.cleaned_data)

    if scope != SCOPE_PAGE:
        raise SelectionError(f"Unknown selection {scope!r}; use page or all.")
    ids = _ticked_ids(post.getlist("patient"))
    if not ids:
        raise SelectionError("Select at least one patient first.")
    return Patient.objects.filter(pk__in=ids)


def _ticked_ids(values: list[str]) -> list[int]:
    # The list shows one page of rows, so more ticked ids than that did not
    # come from it.
    limit = settings.ONBOARDING_PAGE_SIZE
    if len(values) > limit:
        raise SelectionError(
            f"{len(values)} patients were ticked, more than one page of {limit}. "
            "Use “Select all patients matching the filters” instead."
        )
    ids = []
    for value in values:
        if not is_valid_id(value):
            raise SelectionError(f"{value!r} is not a patient id.")
        ids.append(int(value))
    return ids


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


# A confirmation page older than this is not resubmitted by a browser, so
# its key no longer needs to be kept.
KEY_KEPT_FOR = datetime.timedelta(days=7)


def claim(key: str, user, action: str) -> BulkActionRequest | None:
    """Record that the confirmation with ``key`` is being carried out.

    Returns the new request, or None when that key was already claimed, in
    which case the caller must not act again. Finished requests older than
    KEY_KEPT_FOR are deleted on the way.
    """
    BulkActionRequest.objects.filter(
        finished_at__isnull=False, created_at__lt=timezone.now() - KEY_KEPT_FOR
    ).delete()
    try:
        with transaction.atomic():
            return BulkActionRequest.objects.create(
                idempotency_key=key, user=user, action=action
            )
    except IntegrityError:
        return None


def earlier_request(key: str, user) -> BulkActionRequest | None:
    return BulkActionRequest.objects.filter(idempotency_key=key, user=user).first()


def run(request_row: BulkActionRequest, patients, *, actor) -> bulk.Plan:
    """Carry out a claimed bulk action and store its result under the key.

    When the action fails, the claim is released so that a retry with the
    same key can act. The services re-check eligibility, so chunks already
    committed are skipped on that retry.
    """
    try:
        if request_row.action == bulk.ENABLE:
            result = enable_access(patients, actor=actor)
        elif request_row.action == bulk.LETTER:
            result = print_letters(patients, actor=actor)
        else:
            result = send_invitations(patients, actor=actor)
    except Exception:
        logger.exception(
            "Bulk action %s (request %s) failed", request_row.action, request_row.pk
        )
        BulkActionRequest.objects.filter(pk=request_row.pk).delete()
        raise

    request_row.finished_at = timezone.now()
    request_row.eligible = result.eligible
    request_row.skipped = result.skipped
    request_row.save(update_fields=["finished_at", "eligible", "skipped"])
    return result


def stored_plan(request_row: BulkActionRequest) -> bulk.Plan | None:
    """Return the result of an earlier request, or None while it is still running."""
    if request_row.finished_at is None:
        return None
    return bulk.Plan(
        action=request_row.action,
        eligible=request_row.eligible or 0,
        skipped=dict(request_row.skipped),
    )


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def result_message(result: bulk.Plan) -> str:
    """Say what a bulk action did, e.g. "3 invitations queued, 1 skipped: ..."."""
    if result.action == bulk.INVITE:
        done = _plural(result.eligible, "invitation", "invitations") + " queued"
    elif result.action == bulk.LETTER:
        letters = _plural(result.eligible, "activation letter", "activation letters")
        done = f"{letters} printed"
    else:
        patients = _plural(result.eligible, "patient", "patients")
        done = f"Portal access enabled for {patients}"

    message = f"{done}, {result.skipped_total} skipped"
    if result.skipped:
        reasons = "; ".join(
            f"{label}: {count}" for _, label, count in result.skipped_with_labels()
        )
        message += f" ({reasons})"
    return message + "."
