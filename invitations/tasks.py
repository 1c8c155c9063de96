"""Background tasks of the invitations app, run by ``manage.py run_worker``."""

from django.tasks import task

from invitations import delivery


@task
def deliver_invitations(invitation_ids: list[int]) -> dict[str, int]:
    """Email the still-queued invitations among these ids over one SMTP connection.

    Safe to run again with the same ids, because an invitation already sent
    is not sent again. Returns the counts of sent, failed, retrying, cancelled and
    skipped invitations, which the worker stores as the task's result.

    NOTE: if the worker dies during a run, the invitations it had not yet
    recorded stay queued until their ids are enqueued again. No periodic
    sweep re-enqueues them yet.
    """
    return delivery.deliver(invitation_ids).as_dict()
