"""The printable letters page, and the letter button of a patient's portal page.

The letters page is the response to the POST that makes the codes and has no
address of its own to open again. Its codes exist only in that response:
they are stored neither in clear nor in the session, so there is no
Post/Redirect/Get. Reloading the page makes the browser ask to send the form
again, and a form sent again carries the same one-time key, which is refused
with a message. A reload therefore never makes new codes silently, and a
printed code is never shown a second time. The page is sent with
Cache-Control: no-store, like every page of the site.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from invitations.letters import Letter
from patients import actions, bulk


def portal_page_context(patient) -> dict:
    """Return what the patient's portal page needs for its letter button."""
    return {
        "letter_blocked": bulk.blocked(patient.pk, bulk.LETTER),
        "letter_key": actions.new_idempotency_key(),
        "code_required": settings.ACTIVATION_CODE_REQUIRED,
    }


def letters_page(request, letters: list[Letter], *, back_url: str, plan=None):
    """Render the printable letters once, in response to the POST that made them."""
    context = {
        "letters": letters,
        "plan": plan,
        "activation_url": settings.PORTAL_BASE_URL + reverse("activate"),
        "code_required": settings.ACTIVATION_CODE_REQUIRED,
        "back_url": back_url,
    }
    return render(request, "patients/letters.html", context)


def bulk_letters_page(request, result, *, back_url: str):
    """Render the letters of a confirmed bulk print, or go back when there are none."""
    if not result.eligible:
        messages.info(request, actions.result_message(result))
        return redirect(back_url)
    return letters_page(request, result.letters, back_url=back_url, plan=result)
