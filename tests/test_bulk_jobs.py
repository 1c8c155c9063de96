"""Large bulk actions on every matching patient run as background jobs."""

import datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from invitations.models import Invitation
from patients import jobs
from patients.models import BulkActionRequest, Patient
from patients.tasks import run_bulk_job
from tests.conftest import make_patient
from tests.db_faults import allow_writes, reject_writes
from tests.worker import queued_tasks, run_worker


@pytest.fixture
def small_jobs(settings):
    settings.BULK_BACKGROUND_THRESHOLD = 3
    settings.BULK_JOB_CHUNK_SIZE = 2
    return settings


def _confirm_all(client, action, key="job-key", **filters):
    return client.post(
        reverse("bulk-action"),
        {
            "action": action,
            "scope": "all",
            "confirm": "1",
            "idempotency_key": key,
            **filters,
        },
    )


def _practice(count=5):
    patients = [make_patient(family=f"Lind{number}") for number in range(count)]
    # Skipped by both actions: no portal access possible.
    make_patient(family="Lind-deceased", deceased=True)
    return patients


def test_large_action_runs_in_worker(small_jobs, front_desk_client):
    patients = _practice()

    response = _confirm_all(front_desk_client, "enable")

    job = BulkActionRequest.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("bulk-job", args=[job.pk])
    assert job.chunked
    assert job.total == 6
    assert job.done == 0
    # Nothing changes inside the request.
    assert not Patient.objects.filter(portal_access=True).exists()
    assert queued_tasks(run_bulk_job).count() == 1

    run_worker()

    job.refresh_from_db()
    assert job.state == "finished"
    assert job.done == 6
    assert job.eligible == 5
    assert job.skipped == {"deceased": 1}
    assert Patient.objects.filter(portal_access=True).count() == len(patients)
    page = front_desk_client.get(response.url)
    assert page.context["job"].state == "finished"
    assert "Portal access enabled for 5 patients, 1 skipped" in page.content.decode()


def test_small_action_finishes_in_request(settings, front_desk_client):
    settings.BULK_BACKGROUND_THRESHOLD = 100
    settings.BULK_JOB_CHUNK_SIZE = 2
    _practice()

    response = _confirm_all(front_desk_client, "enable")

    assert response.url == reverse("onboarding")
    job = BulkActionRequest.objects.get()
    assert job.state == "finished"
    assert job.done == 6
    assert queued_tasks(run_bulk_job).count() == 0
    assert Patient.objects.filter(portal_access=True).count() == 5


def test_job_page_shows_progress_and_reloads_while_running(
    small_jobs, front_desk_client
):
    _practice()
    response = _confirm_all(front_desk_client, "enable")

    page = front_desk_client.get(response.url)

    html = page.content.decode()
    assert 'http-equiv="refresh"' in html
    assert '<progress max="6" value="0">' in html
    assert "Waiting for the background worker" in html


def test_job_acts_only_on_the_filter(small_jobs, front_desk_client):
    matching = {make_patient(family=f"Okafor{number}").pk for number in range(4)}
    make_patient(family="Lind")

    _confirm_all(front_desk_client, "enable", q="Okafor")
    run_worker()

    assert (
        set(Patient.objects.filter(portal_access=True).values_list("pk", flat=True))
        == matching
    )


def test_double_submit_makes_one_job(small_jobs, front_desk_client):
    _practice()

    first = _confirm_all(front_desk_client, "invite", key="same")
    second = _confirm_all(front_desk_client, "invite", key="same")
    run_worker()

    assert first.url == second.url
    assert BulkActionRequest.objects.count() == 1
    assert queued_tasks(run_bulk_job).count() == 0
    assert DBTaskResult.objects.filter(task_path=run_bulk_job.module_path).count() == 1


def test_invite_job_queues_one_invitation_each(small_jobs, front_desk_client):
    Patient.objects.all().delete()
    for number in range(5):
        make_patient(family=f"Ito{number}", portal_access=True)

    _confirm_all(front_desk_client, "invite")
    run_worker()

    assert Invitation.objects.count() == 5
    assert set(Invitation.objects.values_list("patient", flat=True)) == set(
        Patient.objects.values_list("pk", flat=True)
    )
    job = BulkActionRequest.objects.get()
    assert job.eligible == 5


def test_failed_chunk_resumes_after_committed_ones(
    small_jobs, front_desk_client, front_desk
):
    patients = _practice()
    # The third patient's audit record cannot be written, so the second
    # chunk (third and fourth patient) fails as a whole.
    reject_writes(
        "reject_third",
        event="INSERT",
        table="audit_auditevent",
        when=f"NEW.patient_id = {patients[2].pk}",
    )
    _confirm_all(front_desk_client, "enable")

    run_worker()

    job = BulkActionRequest.objects.get()
    assert job.state == "stopped"
    assert "unexpected error (IntegrityError)" in job.error
    assert job.done == 2
    enabled = set(
        Patient.objects.filter(portal_access=True).values_list("pk", flat=True)
    )
    assert enabled == {patients[0].pk, patients[1].pk}
    page = front_desk_client.get(reverse("bulk-job", args=[job.pk]))
    assert b"Resume" in page.content

    allow_writes("reject_third", table="audit_auditevent")
    front_desk_client.post(reverse("bulk-job-resume", args=[job.pk]))
    run_worker()

    job.refresh_from_db()
    assert job.state == "finished"
    assert job.eligible == 5
    assert Patient.objects.filter(portal_access=True).count() == 5
    # No patient was acted on twice: one audit record per enabled patient.
    events = AuditEvent.objects.filter(action=AuditEvent.Action.ENABLE_ACCESS)
    assert sorted(events.values_list("patient_id", flat=True)) == sorted(
        patient.pk for patient in patients
    )


def test_two_runs_of_one_job_act_once(small_jobs, front_desk_client):
    patients = _practice()
    _confirm_all(front_desk_client, "enable")
    job = BulkActionRequest.objects.get()
    # As if the sweep had queued the job again while its first run waited.
    run_bulk_job.enqueue(job.pk)

    run_worker()

    events = AuditEvent.objects.filter(action=AuditEvent.Action.ENABLE_ACCESS)
    assert events.count() == len(patients)
    job.refresh_from_db()
    assert job.done == 6
    assert job.eligible == 5


def test_sweep_resumes_a_stalled_job(small_jobs, front_desk_client):
    _practice()
    _confirm_all(front_desk_client, "enable")
    job = BulkActionRequest.objects.get()
    # The worker that took the task died: the task row is no longer ready.
    DBTaskResult.objects.update(status="RUNNING", started_at=timezone.now())
    assert jobs.resume_stalled() == 0

    BulkActionRequest.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    assert jobs.resume_stalled() == 1
    # A second sweep leaves the queued run alone.
    assert jobs.resume_stalled() == 0
    run_worker()

    job.refresh_from_db()
    assert job.state == "finished"
    assert Patient.objects.filter(portal_access=True).count() == 5


def test_job_page_needs_the_actions_permission(
    small_jobs, front_desk_client, read_only
):
    _practice()
    response = _confirm_all(front_desk_client, "enable")
    other = Client()
    other.force_login(read_only)

    assert other.get(response.url).status_code == 403
    resume = reverse("bulk-job-resume", args=[BulkActionRequest.objects.get().pk])
    assert other.post(resume).status_code == 403


def test_waiting_job_is_not_stalled(small_jobs, front_desk_client):
    _practice()
    response = _confirm_all(front_desk_client, "enable")
    job = BulkActionRequest.objects.get()
    BulkActionRequest.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    job.refresh_from_db()

    assert not jobs.is_stalled(job)
    assert b"Resume" not in front_desk_client.get(response.url).content


def test_resume_twice_queues_one_run(small_jobs, front_desk_client):
    _practice()
    _confirm_all(front_desk_client, "enable")
    job = BulkActionRequest.objects.get()
    DBTaskResult.objects.update(status="RUNNING", started_at=timezone.now())

    assert jobs.resume(job)
    assert not jobs.resume(job)
    assert queued_tasks(run_bulk_job).count() == 1


def test_list_links_the_users_unfinished_job(small_jobs, front_desk_client):
    _practice()
    response = _confirm_all(front_desk_client, "enable")

    page = front_desk_client.get(reverse("onboarding")).content.decode()

    assert 'id="unfinished-jobs"' in page
    assert f'href="{response.url}"' in page
    run_worker()
    page = front_desk_client.get(reverse("onboarding")).content.decode()
    assert 'id="unfinished-jobs"' not in page


def test_job_page_counts_patients_no_longer_matching(small_jobs, front_desk_client):
    patients = _practice()
    _confirm_all(front_desk_client, "enable", access="no")
    job = BulkActionRequest.objects.get()
    # Enabled by someone else before the worker reached them.
    Patient.objects.filter(pk__in=[patients[3].pk, patients[4].pk]).update(
        portal_access=True
    )

    run_worker()

    job.refresh_from_db()
    assert (job.total, job.done, job.eligible) == (6, 4, 3)
    page = front_desk_client.get(reverse("bulk-job", args=[job.pk])).content.decode()
    assert 'data-reason="no_longer_matching"' in page
    assert "no longer matched the filters when the action reached them" in page
    assert "<td>2</td>" in page
