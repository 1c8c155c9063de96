"""The pages of the staff login's second step: enter a code, or set up an app.

Both need a session logged in with a staff password and not yet verified. A
verified session, or any session while STAFF_TWO_FACTOR is off, goes straight
on to the page it asked for.
"""

import functools
import re

from django import forms
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from config.redirects import next_url
from patients import twofactor

# The same message for every rejected code, whether it was wrong, used before,
# or sent too soon after a wrong one.
CODE_REJECTED = (
    "That code was not accepted. Wait a few seconds, then enter the newest code "
    "from your authenticator app."
)


class CodeForm(forms.Form):
    # CODE_REJECTED on the empty form shown after a rejected code.
    rejected = ""

    code = forms.CharField(
        label="Six-digit code",
        max_length=20,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
            }
        ),
    )

    def clean_code(self):
        code = re.sub(r"[\s-]", "", self.cleaned_data["code"])
        if not re.fullmatch(r"[0-9]{6}", code):
            raise forms.ValidationError(
                "Enter the six digits that your authenticator app shows.",
                code="format",
            )
        return code


def _second_step(view):
    """Open VIEW only for a logged-in staff session that still needs its code."""

    @functools.wraps(view)
    def wrapper(request):
        user = request.user
        if not user.is_authenticated:
            return redirect("staff-login")
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("Only practice staff can open this page.")
        if not twofactor.is_required() or twofactor.is_verified(request):
            return redirect(next_url(request, "onboarding"))
        return view(request, user)

    return sensitive_post_parameters("code")(never_cache(wrapper))


def _take_code(request, user, *, enrolling=False):
    """Check a posted code. Return (redirect, None) once it matched, else (None, form).

    After a rejected code the field is empty again, ready for the next code.
    """
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        device = twofactor.verify_code(user, code, enrolling=enrolling)
        if device is not None:
            twofactor.complete(request, device)
            return redirect(next_url(request, "onboarding")), None
        form = CodeForm()
        form.rejected = CODE_REJECTED
    return None, form


def _render(request, template, form, **extra):
    context = {"form": form, "next": twofactor.next_target(request), **extra}
    return render(request, template, context)


@_second_step
def staff_login_code(request, user):
    if not twofactor.has_device(user):
        return redirect(twofactor.step_url(request, user))
    done, form = _take_code(request, user)
    if done is not None:
        return done
    return _render(request, "registration/staff_login_code.html", form)


@_second_step
def staff_two_factor_enrol(request, user):
    if twofactor.has_device(user):
        return redirect(twofactor.step_url(request, user))
    done, form = _take_code(request, user, enrolling=True)
    if done is not None:
        return done
    device = twofactor.enrolment_device(user)
    return _render(
        request,
        "registration/staff_two_factor_enrol.html",
        form,
        qr_code=twofactor.qr_code(device),
        secret=twofactor.secret_text(device),
    )
