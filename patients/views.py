"""Staff pages: login, the onboarding list and its bulk actions, a patient's page.

Every page requires a logged-in staff user. Viewing needs nothing more, but each
action checks its own permission on the server, whatever the page showed.
"""

import functools
import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from audit.models import AuditEvent
from audit.services import record
from config.redirects import next_url
from invitations.services import send_invitation as send_one_invitation
from patients import actions, bulk, jobs, letter_pages, twofactor
from patients.filters import (
    DEFAULT_SORT,
    SORT_FIELDS,
    PatientFilterForm,
    filter_patients,
    order_patients,
    snapshot,
    with_portal_state,
)
from patients.forms import EmailForm, StaffAuthenticationForm, UsernameForm
from patients.models import Appointment, BulkActionRequest, Patient
from patients.services import (
    change_email,
    change_username,
    record_staff_login,
    set_access,
)

logger = logging.getLogger(__name__)

# The portal page lists this many of a patient's newest audit events.
AUDIT_EVENTS_SHOWN = 200
UPCOMING_APPOINTMENTS_SHOWN = 20


def staff_required(view):
    """Let staff users through, send anonymous users to the staff login, 403 others.

    A logged-in patient gets 403 rather than a redirect to a login page they
    are already past, which would loop. With STAFF_TWO_FACTOR on, a staff
    session that has not yet entered its code is sent to the code page.
    """

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not (request.user.is_active and request.user.is_staff):
            logger.warning(
                "Non-staff user %s was denied %s", request.user.pk, request.path
            )
            _record_refusal(request, "not staff")
            raise PermissionDenied("Only practice staff can open this page.")
        second_step = twofactor.unverified_redirect(request)
        if second_step is not None:
            return second_step
        return view(request, *args, **kwargs)

    return wrapper


def _record_refusal(request, reason: str, **detail) -> None:
    """Audit a refused request in its own transaction, which the 403 leaves alone."""
    with transaction.atomic():
        record(
            AuditEvent.Action.DENIED,
            actor=request.user if request.user.is_authenticated else None,
            outcome=AuditEvent.Outcome.FAILURE,
            method=request.method,
            path=request.path[:200],
            reason=reason,
            **detail,
        )


def require_permission(request, permission: str) -> None:
    if not request.user.has_perm(permission):
        logger.warning(
            "User %s was denied %s at %s",
            request.user.pk,
            permission,
            request.path,
        )
        _record_refusal(request, "missing permission", permission=permission)
        raise PermissionDenied(f"This action needs the {permission} permission.")


def _get_patient_for_user(request, pk: int) -> Patient:
    """Return a patient the staff user may see, or raise 404."""
    # Every staff user sees every patient of the practice; anything else
    # (an unknown id, a deleted record) is simply not found.
    patients = Patient.objects.select_related("primary_provider", "user")
    return get_object_or_404(patients, pk=pk)


class CountedPaginator(Paginator):
    """A paginator that takes the total from the snapshot instead of counting again."""

    def __init__(self, object_list, per_page, count: int):
        super().__init__(object_list, per_page)
        self._known_count = count

    @cached_property
    def count(self):
        return self._known_count


# Staff login and logout


@sensitive_post_parameters("password")
@never_cache
def staff_login(request):
    form = StaffAuthenticationForm(request, data=request.POST or None)

    if request.method == "POST" and form.is_valid():
        user = form.get_user()
        auth_login(request, user)
        if twofactor.is_required():
            # Audited as a login once the code from the second step matches.
            return redirect(twofactor.start(request, user))
        record_staff_login(user)
        return redirect(next_url(request, "onboarding"))

    context = {"form": form, "next": request.POST.get("next", request.GET.get("next"))}
    return render(request, "registration/staff_login.html", context)


@require_POST
def staff_logout(request):
    auth_logout(request)
    messages.info(request, "You have logged out.")
    return redirect("staff-login")


# The onboarding list


def _sort_columns(sort: str) -> dict[str, dict[str, str]]:
    """For each sortable header: the sort its link applies and its arrow."""
    columns = {}
    for key in SORT_FIELDS:
        if sort == key:
            columns[key] = {"next": f"-{key}", "arrow": "▲", "aria": "ascending"}
        elif sort == f"-{key}":
            columns[key] = {"next": key, "arrow": "▼", "aria": "descending"}
        else:
            columns[key] = {"next": key, "arrow": "", "aria": "none"}
    return columns


@staff_required
@require_GET
def onboarding(request):
    form = PatientFilterForm(request.GET)
    # With an invalid filter the list stays empty, so that staff never act on
    # patients chosen by only the valid part of the filters.
    if form.is_valid():
        patients = filter_patients(form.cleaned_data)
    else:
        patients = Patient.objects.none()

    counts = snapshot(patients)

    sort = request.GET.get("sort", DEFAULT_SORT)
    if sort.removeprefix("-") not in SORT_FIELDS:
        sort = DEFAULT_SORT
    searched = form.is_valid() and bool(form.cleaned_data.get("q"))
    ordered = order_patients(patients, sort, searched=searched)
    rows = with_portal_state(ordered).select_related("primary_provider")
    paginator = CountedPaginator(rows, settings.ONBOARDING_PAGE_SIZE, counts["total"])
    page = paginator.get_page(request.GET.get("page"))
    for patient in page:
        patient.state_label = Patient.PortalState(patient.portal_state_value).label

    context = {
        "form": form,
        "filter_params": form.active_params(),
        "page": page,
        "counts": counts,
        "sort": sort,
        "columns": _sort_columns(sort),
        "can_enable": request.user.has_perm(actions.PERMISSIONS[bulk.ENABLE]),
        "can_invite": request.user.has_perm(actions.PERMISSIONS[bulk.INVITE]),
        "actions": bulk.ACTIONS,
        # The user's own actions still running, so that their progress pages
        # can be found again after leaving them.
        "unfinished_jobs": BulkActionRequest.objects.filter(
            user=request.user, chunked=True, finished_at__isnull=True
        ).order_by("-created_at")[:5],
    }
    return render(request, "patients/onboarding.html", context)


def _list_url(filter_form: PatientFilterForm) -> str:
    query = urlencode(filter_form.active_params())
    return reverse("onboarding") + (f"?{query}" if query else "")


@staff_required
@require_POST
def bulk_action(request):
    """Show what a bulk action would do, then carry it out once on confirmation."""
    filter_form = PatientFilterForm(request.POST)
    list_url = _list_url(filter_form)

    action = request.POST.get("action", "")
    if action not in bulk.ACTIONS:
        messages.error(request, "Choose Enable Portal Access or Send Portal Invite(s).")
        return redirect(list_url)
    require_permission(request, actions.PERMISSIONS[action])

    try:
        patients = actions.selected_patients(request.POST, filter_form)
    except actions.SelectionError as error:
        messages.error(request, str(error))
        return redirect(list_url)

    if "confirm" not in request.POST:
        return _confirmation_page(request, action, patients, filter_form, list_url)

    key = request.POST.get("idempotency_key", "")
    if not key or len(key) > 64:
        messages.error(
            request, "The confirmation was incomplete. Start the action again."
        )
        return redirect(list_url)

    claimed = actions.claim(key, request.user, action)
    if claimed is None:
        earlier = actions.earlier_request(key, request.user)
        if earlier is not None and earlier.chunked and earlier.finished_at is None:
            return redirect("bulk-job", pk=earlier.pk)
        _report_earlier_request(request, key)
        return redirect(list_url)

    if request.POST.get("scope") == actions.SCOPE_ALL and action in jobs.ACTIONS:
        return _run_job(request, claimed, patients, filter_form, list_url)

    result = actions.run(claimed, patients, actor=request.user)
    if action == bulk.LETTER:
        return letter_pages.bulk_letters_page(request, result, back_url=list_url)
    messages.success(request, actions.result_message(result))
    return redirect(list_url)


def _run_job(request, claimed, patients, filter_form, list_url):
    """Act on every matching patient in chunks that can be resumed.

    A large selection goes to a worker and its progress page; a small one is
    carried out now. Either way a process killed midway leaves the job to be
    resumed from its last committed chunk.
    """
    count = patients.count()
    in_background = count > settings.BULK_BACKGROUND_THRESHOLD
    query = urlencode(filter_form.active_params())
    jobs.start(claimed, query, count, queue=in_background)
    if in_background:
        return redirect("bulk-job", pk=claimed.pk)
    job = jobs.run(claimed.pk)
    if job.finished_at is None:
        return redirect("bulk-job", pk=job.pk)
    messages.success(request, actions.result_message(jobs.result(job)))
    return redirect(list_url)


def _confirmation_page(request, action, patients, filter_form, list_url):
    scope = request.POST.get("scope", actions.SCOPE_PAGE)
    context = {
        "action": action,
        "action_label": bulk.ACTIONS[action],
        "plan": bulk.plan(patients, action),
        "scope": scope,
        "ticked_ids": request.POST.getlist("patient")
        if scope == actions.SCOPE_PAGE
        else [],
        "filter_params": filter_form.active_params(),
        "idempotency_key": actions.new_idempotency_key(),
        "list_url": list_url,
    }
    return render(request, "patients/confirm_action.html", context)


def _report_earlier_request(request, key: str) -> None:
    earlier = actions.earlier_request(key, request.user)
    result = actions.stored_plan(earlier) if earlier else None
    if result is None:
        messages.info(
            request,
            "This action is already being carried out. Reload the list in a moment "
            "to see the result.",
        )
    else:
        messages.info(
            request,
            "This confirmation was already carried out, so nothing was done again: "
            + actions.result_message(result),
        )


# A patient's portal page


class OverrideInvalid(ValueError):
    """Raised for an override reason that is blank or too long."""


def _override_text(request) -> str:
    """Return the typed override reason, after checking the permission for it.

    Raises OverrideInvalid when the override form was sent with a reason
    that is blank or longer than OVERRIDE_REASON_MAX.
    """
    if "override" not in request.POST:
        return ""
    require_permission(request, bulk.OVERRIDE_PERMISSION)
    text = request.POST["override"].strip()
    if not text:
        raise OverrideInvalid(
            "Type why this patient should be included anyway. The reason is kept "
            "in the audit log."
        )
    if len(text) > bulk.OVERRIDE_REASON_MAX:
        raise OverrideInvalid(
            f"The reason has {len(text)} characters. Shorten it to "
            f"{bulk.OVERRIDE_REASON_MAX} or fewer."
        )
    return text


def _render_portal_page(
    request, patient: Patient, username_form=None, email_form=None, status=200
):
    invitations = list(patient.invitations.all())
    upcoming = (
        patient.appointments.filter(start__gte=timezone.now())
        .exclude(status__in=Appointment.NOT_SCHEDULED)
        .select_related("practitioner")
        .order_by("start", "id")[:UPCOMING_APPOINTMENTS_SHOWN]
    )
    audit_events = patient.audit_events.all()
    state = patient.portal_state(invitations[0] if invitations else None)
    invite_blocked = bulk.blocked(patient.pk, bulk.INVITE)
    enable_blocked = (
        None if patient.portal_access else bulk.blocked(patient.pk, bulk.ENABLE)
    )

    context = {
        "patient": patient,
        "state": state,
        "state_label": Patient.PortalState(state).label,
        "tags": patient.tags.all(),
        "invitations": invitations,
        "appointments": upcoming,
        "audit_events": audit_events[:AUDIT_EVENTS_SHOWN],
        "audit_events_total": audit_events.count(),
        "invite_blocked": invite_blocked,
        "enable_blocked": enable_blocked,
        "can_override": request.user.has_perm(bulk.OVERRIDE_PERMISSION),
        "override_max": bulk.OVERRIDE_REASON_MAX,
        "username_form": username_form or UsernameForm(),
        "email_form": email_form or EmailForm(),
        "can_change_email": request.user.has_perm("patients.change_patient_email"),
        "can_enable": request.user.has_perm("patients.enable_portal_access"),
        "can_invite": request.user.has_perm("patients.send_portal_invitation"),
        "can_change_username": request.user.has_perm("patients.change_portal_username"),
        **letter_pages.portal_page_context(patient),
    }
    return render(request, "patients/portal_page.html", context, status=status)


@staff_required
@require_GET
def patient_portal(request, pk: int):
    patient = _get_patient_for_user(request, pk)
    return _render_portal_page(request, patient)


@staff_required
@require_POST
def patient_username(request, pk: int):
    require_permission(request, "patients.change_portal_username")
    patient = _get_patient_for_user(request, pk)

    form = UsernameForm(request.POST)
    if form.is_valid():
        try:
            change_username(patient, form.cleaned_data["username"], actor=request.user)
        except ValidationError as error:
            form.add_error("username", error)
    if not form.is_valid():
        return _render_portal_page(request, patient, username_form=form)

    messages.success(request, "Username changed.")
    return redirect("patient-portal", pk=patient.pk)


@staff_required
@require_POST
def patient_email(request, pk: int):
    require_permission(request, "patients.change_patient_email")
    patient = _get_patient_for_user(request, pk)

    form = EmailForm(request.POST)
    if not form.is_valid():
        return _render_portal_page(request, patient, email_form=form, status=400)
    had_address = bool(patient.email_normalized)
    revoked = change_email(patient, form.cleaned_data["email"], actor=request.user)
    text = "Email address changed."
    if had_address:
        text += " The old address was told, without a link."
    if revoked:
        text += (
            f" {revoked} pending invitation{'s' if revoked != 1 else ''} "
            "stopped working."
        )
    messages.success(request, text)
    shared = bulk.safety_conditions(timezone.now())["shared_email"]
    if Patient.objects.filter(pk=patient.pk).filter(shared).exists():
        messages.warning(
            request,
            "Another patient or a practitioner has this address too, so "
            "invitations skip this patient unless an administrator includes "
            "them with a reason.",
        )
    return redirect("patient-portal", pk=patient.pk)


@staff_required
@require_POST
def patient_access(request, pk: int):
    require_permission(request, "patients.enable_portal_access")
    patient = _get_patient_for_user(request, pk)

    choice = request.POST.get("enabled", "")
    if choice not in ("true", "false"):
        messages.error(
            request,
            f"{choice[:20]!r} is not a portal access choice. Use the Enable or "
            "Disable button on this page.",
        )
        return redirect("patient-portal", pk=patient.pk)
    enabled = choice == "true"
    try:
        override = _override_text(request)
    except OverrideInvalid as error:
        messages.error(request, f"Portal access was not enabled: {error}")
        return _render_portal_page(request, patient, status=400)
    try:
        set_access(patient, enabled, actor=request.user, override=override)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        if enabled:
            messages.success(request, "Portal access enabled.")
        else:
            messages.success(
                request,
                "Portal access disabled. Pending invitations no longer work and "
                "the patient's login is deactivated.",
            )
    return redirect("patient-portal", pk=patient.pk)


@staff_required
@require_POST
def patient_invite(request, pk: int):
    require_permission(request, "patients.send_portal_invitation")
    patient = _get_patient_for_user(request, pk)

    try:
        override = _override_text(request)
    except OverrideInvalid as error:
        messages.error(request, f"No invitation was sent: {error}")
        return _render_portal_page(request, patient, status=400)
    try:
        send_one_invitation(patient, actor=request.user, override=override)
    except bulk.SafetyCheckFailed as error:
        messages.error(request, f"No invitation was sent: {error}.")
    else:
        messages.success(
            request,
            "Invitation queued. Any earlier invitation link no longer works.",
        )
    return redirect("patient-portal", pk=patient.pk)
