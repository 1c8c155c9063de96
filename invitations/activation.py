"""The patient's side of activation letters: /activate/ and the code step.

/activate/ takes the code from a letter and, like an emailed link, stores
the letter's invitation id in the session and redirects to /invite/, where
the date of birth, the username and the password follow. Every well-formed
code gets that same redirect, so a code that is unknown, used, expired,
replaced or locked ends on the same page, with the same status, as a link
that no longer works.

With ACTIVATION_CODE_REQUIRED, a patient who came by an emailed link types
the code of their letter at /invite/code/, after the date of birth and
before choosing a username. The code must belong to a letter printed for
the same patient as the link.

Both pages count each try per client address (portal.ratelimit); the
arithmetic of why that is enough is in invitations.codes.
"""

from django import forms
from django.conf import settings
from django.shortcuts import redirect
from django.views.decorators.debug import sensitive_post_parameters

from invitations import codes
from invitations.letters import find_letter
from invitations.views import (
    LETTER_VERIFIED,
    OPENED,
    VERIFIED,
    _form_page,
    _not_usable,
    _opened_invitation,
    invitation_page,
)
from portal.ratelimit import count_attempt, too_many_attempts

ATTEMPT_SCOPE = "activation-code"


class ActivationCodeForm(forms.Form):
    code = forms.CharField(
        label="Activation code",
        max_length=64,
        help_text=(
            f"The {codes.CODE_LENGTH} letters and digits on your letter, "
            f"for example {codes.EXAMPLE}."
        ),
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "autocorrect": "off",
                "spellcheck": "false",
                "size": 16,
            }
        ),
    )

    def clean_code(self) -> str:
        try:
            return codes.parse_code(self.cleaned_data["code"])
        except codes.InvalidCode as error:
            raise forms.ValidationError(str(error)) from None


@sensitive_post_parameters("code")
@invitation_page
def activate(request):
    form = ActivationCodeForm(request.POST or None)
    if request.method != "POST":
        return _form_page(request, "invitations/activate.html", form)

    if not count_attempt(request, ATTEMPT_SCOPE):
        return too_many_attempts(request)
    if not form.is_valid():
        return _form_page(request, "invitations/activate.html", form)

    letter = find_letter(form.cleaned_data["code"])
    # The same session change and redirect as opening an emailed link.
    request.session.cycle_key()
    request.session[OPENED] = letter.pk if letter else None
    request.session.pop(VERIFIED, None)
    request.session.pop(LETTER_VERIFIED, None)
    return redirect("invitation-verify")


@sensitive_post_parameters("code")
@invitation_page
def invitation_code(request):
    invitation = _opened_invitation(request)
    if invitation is None or request.session.get(VERIFIED) != invitation.pk:
        return _not_usable(request)
    if not invitation.needs_letter_code:
        return redirect("invitation-signup")

    form = ActivationCodeForm(request.POST or None)
    if request.method != "POST":
        return _form_page(request, "invitations/code.html", form)

    if not count_attempt(request, ATTEMPT_SCOPE):
        return too_many_attempts(request)
    if not form.is_valid():
        return _form_page(request, "invitations/code.html", form)

    letter = find_letter(form.cleaned_data["code"], patient_id=invitation.patient_id)
    if letter is None:
        practice = settings.PRACTICE_NAME
        form.add_error(
            "code",
            "That code does not work. Check it against your letter from "
            f"{practice}. A code works once, only until the date on the letter, "
            f"and not after a newer letter was printed. Ask {practice} for a new "
            "letter if it still does not work.",
        )
        return _form_page(request, "invitations/code.html", form)

    request.session[LETTER_VERIFIED] = letter.pk
    return redirect("invitation-signup")
