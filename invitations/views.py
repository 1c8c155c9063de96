"""The pages a patient reaches from an invitation email.

The link's token leaves the address bar at once: opening /invite/<token>/
stores the invitation's id in the session and redirects to /invite/. Opening
the link does not use it up, because mail scanners open links before people
do. Every link that does not work, for whatever reason, leads to one and the
same page, so the page reveals nothing about the link or the patient until
the date of birth matches.
"""

import functools
import logging

from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET

from invitations.models import Invitation
from invitations.services import (
    InvitationNotUsable,
    accept_invitation,
    check_date_of_birth,
    find_invitation,
)
from portal.forms import DateOfBirthForm, SignupForm
from portal.ratelimit import count_attempt, too_many_attempts

logger = logging.getLogger(__name__)

# Session keys: the invitation whose link was opened in this browser, the
# invitation whose date of birth this browser has matched, and, when the link
# needs a letter's code as well, the letter whose code was typed.
OPENED = "invitation_id"
VERIFIED = "invitation_verified_id"
LETTER_VERIFIED = "invitation_letter_id"

NOT_USABLE_STATUS = 404


def invitation_page(view):
    """Keep these pages out of caches, and their addresses out of Referer headers.

    A page with a form is the exception: under no-referrer, browsers send
    "Origin: null" with the form, which Django's CSRF check rejects. Such a
    page sets same-origin itself, which keeps its address from other sites.
    """

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return never_cache(wrapper)


def _form_page(request, template: str, form):
    response = render(request, template, {"form": form})
    response["Referrer-Policy"] = "same-origin"
    return response


def _not_usable(request):
    return render(request, "invitations/not_usable.html", status=NOT_USABLE_STATUS)


def _opened_invitation(request) -> Invitation | None:
    """Return the usable invitation whose link this browser opened, or None."""
    invitation_id = request.session.get(OPENED)
    if invitation_id is None:
        return None
    return (
        Invitation.objects.usable()
        .select_related("patient")
        .filter(pk=invitation_id)
        .first()
    )


@require_GET
@invitation_page
def invitation_link(request, token: str):
    invitation = find_invitation(token)

    # Every token, usable or not, gets the same redirect. The next page
    # decides what to show from the session.
    request.session.cycle_key()
    request.session[OPENED] = invitation.pk if invitation else None
    request.session.pop(VERIFIED, None)
    request.session.pop(LETTER_VERIFIED, None)
    return redirect("invitation-verify")


@sensitive_post_parameters("month", "day", "year")
@invitation_page
def invitation_verify(request):
    invitation = _opened_invitation(request)
    if invitation is None:
        return _not_usable(request)
    if request.session.get(VERIFIED) == invitation.pk:
        return redirect("invitation-signup")

    form = DateOfBirthForm(request.POST or None)
    if request.method != "POST":
        return _form_page(request, "invitations/verify.html", form)

    if not count_attempt(request, "date-of-birth"):
        return too_many_attempts(request)
    if not form.is_valid():
        return _form_page(request, "invitations/verify.html", form)

    if check_date_of_birth(invitation, form.cleaned_data["birth_date"]):
        request.session.cycle_key()
        request.session[VERIFIED] = invitation.pk
        return redirect("invitation-signup")

    # A wrong date of birth gets the same page as a link that does not work,
    # so that the response never shows whether the link was a real one. The
    # patient can open the link from the email again and retry until the
    # invitation locks.
    return _not_usable(request)


@sensitive_post_parameters("password1", "password2")
@invitation_page
def invitation_signup(request):
    invitation = _opened_invitation(request)
    if invitation is None or request.session.get(VERIFIED) != invitation.pk:
        return _not_usable(request)

    letter = None
    if invitation.needs_letter_code:
        letter = _typed_letter(request, invitation)
        if letter is None:
            return redirect("invitation-code")

    form = SignupForm(request.POST or None, patient=invitation.patient)
    if request.method != "POST" or not form.is_valid():
        return _form_page(request, "invitations/signup.html", form)

    try:
        accept_invitation(
            invitation,
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password1"],
            letter=letter,
        )
    except InvitationNotUsable:
        return _not_usable(request)
    except IntegrityError:
        # Someone took the username between the form's check and the insert.
        logger.info("Username taken during sign-up for invitation %s", invitation.pk)
        form.add_error("username", "That username is not available. Choose another.")
        return _form_page(request, "invitations/signup.html", form)

    request.session.pop(OPENED, None)
    request.session.pop(VERIFIED, None)
    request.session.pop(LETTER_VERIFIED, None)
    return redirect("invitation-done")


def _typed_letter(request, invitation: Invitation) -> Invitation | None:
    """Return the usable letter of the invitation's patient whose code was typed."""
    letter_id = request.session.get(LETTER_VERIFIED)
    if letter_id is None:
        return None
    return (
        Invitation.objects.usable()
        .filter(
            pk=letter_id,
            channel=Invitation.Channel.LETTER,
            patient_id=invitation.patient_id,
        )
        .first()
    )


@require_GET
@invitation_page
def invitation_done(request):
    return render(request, "invitations/done.html")
