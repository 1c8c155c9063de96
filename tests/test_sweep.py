"""The recovery sweep and delivery claims, in one process on either database."""

import datetime
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from invitations import recovery, services
from invitations.models import Invitation
from invitations.tasks import deliver_invitations
from tests.conftest import make_invitation, make_patient
from tests.worker import queued_tasks, run_worker
from worker.sweep import mark_stale_tasks_failed, sweep


@pytest.fixture
def fast_sweep(settings):
    settings.DELIVERY_LEASE_SECONDS = 60
    settings.SWEEP_GRACE_SECONDS = 600
    settings.TASK_STALE_SECONDS = 3600
    return settings


def _queued(count=3):
    return [
        make_invitation(
            make_patient(given=f"Ines{number}", portal_access=True),
            created_at=timezone.now(),
        )
        for number in range(count)
    ]


def _ago(**delta):
    return timezone.now() - datetime.timedelta(**delta)


def test_claim_excludes_other_runs_until_expiry(db, fast_sweep):
    ids = [invitation.pk for invitation in _queued()]

    assert services.claim_delivery(ids, token="first") == ids
    assert services.claim_delivery(ids, token="second") == []
    # The same run may claim again, for instance after reconnecting.
    assert services.claim_delivery(ids, token="first") == ids

    Invitation.objects.filter(pk=ids[0]).update(claimed_until=_ago(seconds=1))
    assert services.claim_delivery(ids, token="second") == [ids[0]]


def test_claim_leaves_invitations_that_are_not_due(db, fast_sweep):
    waiting, due = _queued(2)
    Invitation.objects.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() + datetime.timedelta(minutes=5)
    )

    assert services.claim_delivery([waiting.pk, due.pk], token="run") == [due.pk]


def test_delivery_skips_invitations_another_run_holds(db, fast_sweep, smtp_server):
    held, free = _queued(2)
    services.claim_delivery([held.pk], token="other-worker")

    report = deliver_invitations.call([held.pk, free.pk])

    assert report["sent"] == 1
    assert report["skipped"] == 1
    assert [message["To"] for message in smtp_server.messages] == [free.email]


def test_sweep_queues_invitations_whose_claim_ran_out(db, fast_sweep, smtp_server):
    stuck, busy = _queued(2)
    # A worker claimed both and died; the claim of one has run out.
    services.claim_delivery([stuck.pk, busy.pk], token="dead-worker")
    Invitation.objects.filter(pk=stuck.pk).update(claimed_until=_ago(seconds=1))
    DBTaskResult.objects.all().delete()

    assert recovery.requeue_left_behind() == 1

    [task] = queued_tasks(deliver_invitations)
    assert task.args_kwargs["args"] == [[stuck.pk]]
    run_worker()
    stuck.refresh_from_db()
    assert stuck.delivery_status == Invitation.Delivery.SENT
    assert [message["To"] for message in smtp_server.messages] == [stuck.email]


def test_sweep_queues_unclaimed_invitations_left_without_a_task(db, fast_sweep):
    old, new = _queued(2)
    Invitation.objects.filter(pk=old.pk).update(created_at=_ago(minutes=11))
    # The task holding both was taken by a worker that died before claiming.
    DBTaskResult.objects.update(status=TaskResultStatus.RUNNING)

    assert recovery.requeue_left_behind() == 1
    [task] = queued_tasks(deliver_invitations)
    assert task.args_kwargs["args"] == [[old.pk]]


def test_sweep_leaves_invitations_a_due_task_will_send(db, fast_sweep):
    [old] = _queued(1)
    Invitation.objects.filter(pk=old.pk).update(created_at=_ago(minutes=11))

    assert recovery.requeue_left_behind() == 0
    assert queued_tasks(deliver_invitations).count() == 1


def test_sweep_leaves_retries_that_wait_for_their_time(db, fast_sweep):
    [waiting] = _queued(1)
    Invitation.objects.filter(pk=waiting.pk).update(
        created_at=_ago(hours=1), next_attempt_at=_ago(minutes=1)
    )
    DBTaskResult.objects.all().delete()

    # Due a minute ago: within the grace, its retry task is expected soon.
    assert recovery.requeue_left_behind() == 0
    Invitation.objects.filter(pk=waiting.pk).update(next_attempt_at=_ago(minutes=11))
    assert recovery.requeue_left_behind() == 1


def test_stale_running_tasks_are_marked_failed(db, fast_sweep):
    _queued(1)
    DBTaskResult.objects.update(
        status=TaskResultStatus.RUNNING, started_at=_ago(hours=2)
    )
    fresh = deliver_invitations.enqueue([1])
    DBTaskResult.objects.filter(pk=fresh.id).update(
        status=TaskResultStatus.RUNNING, started_at=_ago(minutes=5)
    )

    assert mark_stale_tasks_failed() == 1

    stale = DBTaskResult.objects.exclude(pk=fresh.id).get()
    assert stale.status == TaskResultStatus.FAILED
    assert stale.exception_class_path == "worker.sweep.WorkerLost"
    assert "stopped" in stale.traceback


def test_sweep_command_prints_what_it_did(db, fast_sweep):
    [invitation] = _queued(1)
    Invitation.objects.filter(pk=invitation.pk).update(
        claimed_until=_ago(seconds=1), claim_token="dead"
    )
    DBTaskResult.objects.all().delete()
    output = StringIO()

    call_command("sweep", stdout=output)

    assert json.loads(output.getvalue()) == {
        "invitations_requeued": 1,
        "jobs_resumed": 0,
        "imports_requeued": 0,
        "tasks_marked_failed": 0,
    }
    assert sweep().invitations_requeued == 0
