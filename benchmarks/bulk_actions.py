"""Enabling access and queueing invitations for every patient matching a filter.

The practice is first set back to the day it started onboarding: no patient
has portal access or a login, and earlier invitations no longer work. Each
action then runs the way a confirmed "all matching" bulk action does: the
filter form is cleaned, filter_patients() builds the queryset, and
patients.actions claims a one-time key. The action then runs as a whole job
of patients.jobs, chunk after chunk in this process, as a worker runs it.
"""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.http import QueryDict

from invitations.models import Invitation
from patients import actions, bulk, jobs
from patients.filters import PatientFilterForm, filter_patients
from patients.models import Patient

# Matches every patient once the practice is set back, because no patient
# has a username then.
FILTER = {"username": "no"}


def reset_portal_states() -> None:
    with transaction.atomic():
        Invitation.objects.filter(status=Invitation.Status.PENDING).update(
            status=Invitation.Status.REVOKED
        )
        Invitation.objects.filter(delivery_status=Invitation.Delivery.QUEUED).update(
            delivery_status=Invitation.Delivery.CANCELLED
        )
        Patient.objects.update(
            portal_access=False,
            portal_access_changed_at=None,
            user=None,
            last_login_at=None,
        )


def _matching_patients():
    query = QueryDict(mutable=True)
    query.update(FILTER)
    form = PatientFilterForm(query)
    if not form.is_valid():
        raise RuntimeError(f"The bulk action filter {FILTER} is invalid: {form.errors}")
    return filter_patients(form.cleaned_data), urlencode(form.active_params())


def _run(action: str, *, actor) -> dict:
    patients, filter_query = _matching_patients()
    matched = patients.count()
    started = time.perf_counter()
    claimed = actions.claim(actions.new_idempotency_key(), actor, action)
    jobs.start(claimed, filter_query, matched, queue=False)
    job = jobs.run(claimed.pk)
    seconds = time.perf_counter() - started
    if job.finished_at is None:
        raise RuntimeError(f"The {action} job stopped: {job.error}")
    return {
        "action": action,
        "label": bulk.ACTIONS[action],
        "filter": FILTER,
        "matched": matched,
        "changed": job.eligible,
        "skipped": job.skipped,
        "seconds": seconds,
        "chunk_size": settings.BULK_JOB_CHUNK_SIZE,
    }


def measure(*, actor) -> dict:
    started = time.perf_counter()
    reset_portal_states()
    reset_seconds = time.perf_counter() - started
    enable = _run(bulk.ENABLE, actor=actor)
    invite = _run(bulk.INVITE, actor=actor)
    queued = Invitation.objects.filter(
        delivery_status=Invitation.Delivery.QUEUED
    ).count()
    if queued != invite["changed"]:
        raise RuntimeError(
            f"{invite['changed']} invitations were reported queued, "
            f"but the database has {queued}."
        )
    return {"enable": enable, "invite": invite, "reset_seconds": reset_seconds}
