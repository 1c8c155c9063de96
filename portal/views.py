"""The patient portal: login, logout, home, and forgotten password or username.

Only patients' own accounts use these pages. A staff account gets the same
login error as a wrong password, and a logged-in staff user gets 403 here.
"""

import functools
import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.views import (
    INTERNAL_RESET_SESSION_TOKEN,
    PasswordResetConfirmView,
)
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from config.redirects import next_url
from patients.models import Appointment
from patients.services import record_patient_login
from portal import services
from portal.forms import (
    EmailChangeForm,
    ForgotUsernameForm,
    PasswordResetRequestForm,
    PatientAuthenticationForm,
    ResetPasswordForm,
    is_patient_user,
)
from portal.ratelimit import count_attempt, too_many_attempts

logger = logging.getLogger(__name__)


def patient_required(view):
    """Let patients through, send anonymous users to the portal login, 403 others."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse('portal-login')}?{query}")
        if not is_patient_user(request.user):
            logger.warning(
                "Non-patient user %s was denied %s", request.user.pk, request.path
            )
            raise PermissionDenied("Only patients can open the patient portal.")
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


@sensitive_post_parameters("password")
@never_cache
def portal_login(request):
    form = PatientAuthenticationForm(request, data=request.POST or None)

    if request.method == "POST" and form.is_valid():
        user = form.get_user()
        auth_login(request, user)
        record_patient_login(user)
        return redirect(next_url(request, "portal-home"))

    context = {"form": form, "next": request.POST.get("next", request.GET.get("next"))}
    return render(request, "portal/login.html", context)


def login_locked(request, original_response=None, credentials=None):
    """Render the 429 page django-axes returns for a locked-out login."""
    context = {"wait_minutes": settings.LOGIN_LOCKOUT_MINUTES}
    return render(request, "portal/login_locked.html", context, status=429)


@require_POST
def portal_logout(request):
    if is_patient_user(request.user):
        record_patient_login(request.user, logged_out=True)
    auth_logout(request)
    # Added after logout, which empties the session the message could be in.
    messages.success(request, "You have logged out.")
    return redirect("portal-login")


@require_GET
@patient_required
def portal_home(request):
    patient = request.user.patient
    appointments = (
        patient.appointments.filter(start__gte=timezone.now())
        .exclude(status__in=Appointment.NOT_SCHEDULED)
        .order_by("start")
        .values_list("start", flat=True)
    )
    return render(request, "portal/home.html", {"appointment_starts": appointments})


# Forgotten password


@never_cache
def password_reset(request):
    form = PasswordResetRequestForm(request.POST or None)
    if request.method != "POST":
        return render(request, "portal/password_reset.html", {"form": form})

    if not count_attempt(request, "forgotten-details"):
        return too_many_attempts(request)
    if not form.is_valid():
        return render(request, "portal/password_reset.html", {"form": form})

    services.request_password_reset(form.cleaned_data["identifier"])
    return redirect("portal-password-reset-sent")


@require_GET
def password_reset_sent(request):
    return render(request, "portal/password_reset_sent.html")


class PatientPasswordResetConfirmView(PasswordResetConfirmView):
    """Django's reset-link page, for patients' accounts only.

    Django's view takes the token out of the address and checks it. This
    subclass sets the password through the audited service instead of
    saving the user itself, and treats a staff account's link as invalid.
    """

    form_class = ResetPasswordForm
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal-password-reset-complete")
    token_generator = default_token_generator

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        if user is None or not is_patient_user(user):
            return None
        return user

    def post(self, request, *args, **kwargs):
        # Each try at the date of birth counts, as on the invitation page.
        if self.validlink and not count_attempt(request, "reset-birth-date"):
            return too_many_attempts(request)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        services.complete_password_reset(form.user, form.cleaned_data["new_password1"])
        del self.request.session[INTERNAL_RESET_SESSION_TOKEN]
        return HttpResponseRedirect(self.get_success_url())

    def dispatch(self, *args, **kwargs):
        response = super().dispatch(*args, **kwargs)
        # Only the redirect away from the token's address needs no-referrer.
        # On the form page it would make browsers send "Origin: null", which
        # Django's CSRF check rejects.
        if response.status_code == 302:
            response["Referrer-Policy"] = "no-referrer"
        return response


password_reset_confirm = PatientPasswordResetConfirmView.as_view()


@require_GET
def password_reset_complete(request):
    return render(request, "portal/password_reset_complete.html")


# Forgotten username


@never_cache
def forgot_username(request):
    form = ForgotUsernameForm(request.POST or None)
    if request.method != "POST":
        return render(request, "portal/forgot_username.html", {"form": form})

    if not count_attempt(request, "forgotten-details"):
        return too_many_attempts(request)
    if not form.is_valid():
        return render(request, "portal/forgot_username.html", {"form": form})

    services.request_username_reminder(form.cleaned_data["email"])
    return redirect("portal-forgot-username-sent")


@require_GET
def forgot_username_sent(request):
    return render(request, "portal/forgot_username_sent.html")


# Changing the email address

# The session key for the id of the email change whose link was opened.
EMAIL_CHANGE_OPENED = "portal_email_change_id"


@sensitive_post_parameters("password")
@patient_required
def email_change(request):
    form = EmailChangeForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if not count_attempt(request, "email-change"):
            return too_many_attempts(request)
        if form.is_valid():
            services.request_email_change(request.user, form.cleaned_data["email"])
            return redirect("portal-email-sent")
    return render(request, "portal/email_change.html", {"form": form})


@require_GET
@patient_required
def email_change_sent(request):
    return render(request, "portal/email_change_sent.html")


@require_GET
def email_change_link(request, token: str):
    """Remember which change the link names, and take the token out of the address.

    Opening the link changes nothing, because mail scanners open links too;
    the patient confirms with a button on the next page.
    """
    change = services.find_email_change(token)
    request.session[EMAIL_CHANGE_OPENED] = change.pk if change else None
    response = redirect("portal-email-confirm")
    response["Referrer-Policy"] = "no-referrer"
    return response


@patient_required
def email_change_confirm(request):
    change = services.opened_email_change(request.session.get(EMAIL_CHANGE_OPENED))
    if change is None or change.patient.user_id != request.user.pk:
        return render(request, "portal/email_change_dead.html", status=404)
    if request.method == "POST":
        services.confirm_email_change(change, user=request.user)
        request.session.pop(EMAIL_CHANGE_OPENED, None)
        messages.success(request, "Your email address was changed.")
        return redirect("portal-home")
    return render(request, "portal/email_change_confirm.html", {"change": change})
