"""The staff view that prints an activation letter from a patient's portal page.

The bulk print goes through the onboarding list's bulk action; both answer
with patients.letter_pages.letters_page().
"""

import logging

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from invitations.letters import print_letter
from patients import actions, bulk
from patients.letter_pages import letters_page
from patients.views import (
    OverrideInvalid,
    _get_patient_for_user,
    _override_text,
    require_permission,
    staff_required,
)

logger = logging.getLogger(__name__)

PERMISSION = actions.PERMISSIONS[bulk.LETTER]


@staff_required
@require_POST
def patient_letter(request, pk: int):
    require_permission(request, PERMISSION)
    patient = _get_patient_for_user(request, pk)
    back = reverse("patient-portal", args=[patient.pk])

    key = request.POST.get("idempotency_key", "")
    if not key or len(key) > 64:
        messages.error(
            request,
            "The form was incomplete, so no letter was printed. Use the "
            "“Print an activation letter” button on this page.",
        )
        return redirect(back)
    try:
        override = _override_text(request)
    except OverrideInvalid as error:
        messages.error(request, f"No letter was printed: {error}")
        return redirect(back)
    claimed = actions.claim(key, request.user, bulk.LETTER)
    if claimed is None:
        messages.info(
            request,
            "That letter was already printed, and its code cannot be shown again. "
            "To print another, use “Print an activation letter”: the new letter "
            "replaces the earlier one.",
        )
        return redirect(back)

    try:
        letter = print_letter(patient, actor=request.user, override=override)
    except bulk.SafetyCheckFailed as error:
        _finish(claimed, eligible=0, skipped={error.reason: 1})
        messages.error(request, f"No letter was printed: {error}.")
        return redirect(back)
    _finish(claimed, eligible=1, skipped={})
    return letters_page(request, [letter], back_url=back)


def _finish(claimed, *, eligible: int, skipped: dict[str, int]) -> None:
    claimed.finished_at = timezone.now()
    claimed.eligible = eligible
    claimed.skipped = skipped
    claimed.save(update_fields=["finished_at", "eligible", "skipped"])
