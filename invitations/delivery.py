"""Sending queued invitations over one SMTP connection, with retries.

The background task ``deliver_invitations`` calls deliver(). A run first
claims its invitations, so that other workers given the same ids leave them
alone, and renews the claim while it works. Each message's result is recorded
by a service function right after the SMTP server replies, so a crash loses at
most the record of the message being sent. When a worker dies, its claim runs
out and the recovery sweep queues the invitations again. The one whose result
was lost is then sent again with the same link, because the link's token is
derived from the invitation's stored salt.
"""

import datetime
import logging
import re
import secrets
import smtplib
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.mail import mailers
from django.utils import timezone

from invitations import emails, services
from invitations.models import Invitation
from patients.models import normalize_email

logger = logging.getLogger(__name__)

# Servers often quote the recipient in their replies ("<jane@example.org>:
# Recipient address rejected"), so the stored reason has it masked.
ADDRESS_PATTERN = re.compile(r"[^\s<>\"'()\[\]]+@[^\s<>\"'()\[\]]+")
MAX_REASON_LENGTH = 300


@dataclass
class DeliveryReport:
    """Counts of what one delivery run did with the invitations it was given."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    cancelled: int = 0
    skipped: int = 0
    # Not tried because the connection was lost before them, and queued again.
    requeued: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Failure:
    """An SMTP error sorted into what to do about it."""

    reason: str
    code: int | None
    permanent: bool
    # The connection cannot carry more messages, so the rest of the batch waits.
    connection_lost: bool


def deliver(invitation_ids: list[int]) -> DeliveryReport:
    """Send the still-queued invitations among INVITATION_IDS over one connection.

    Invitations already sent, failed or cancelled are skipped, so running this
    twice sends nothing twice. Temporary failures are retried later by a new
    task, and permanent ones mark the invitation failed.
    """
    report = DeliveryReport()
    requested = sorted(set(invitation_ids))
    claim = Claim(secrets.token_hex(16))
    queued = services.claim_delivery(requested, token=claim.token)
    claim.renewed()
    report.skipped = len(requested) - len(queued)
    logger.info(
        "Delivery started for %d queued invitations, ids %s to %s "
        "(%d no longer queued, not yet due or held by another worker)",
        len(queued),
        queued[0] if queued else "-",
        queued[-1] if queued else "-",
        report.skipped,
    )
    if not queued:
        return report

    connection = mailers.default
    try:
        connection.open()
    except (OSError, smtplib.SMTPException) as error:
        # Whatever the reply, a server that cannot be opened is tried again later.
        _retry_later({_describe(error): queued}, report, claim)
        _log_finished(report)
        return report

    try:
        _send_each(connection, queued, report, claim)
    finally:
        _close(connection)
    _log_finished(report)
    return report


@dataclass
class Claim:
    """This run's hold on its invitations, and when to renew it."""

    token: str
    renew_at: datetime.datetime | None = None

    def renewed(self) -> None:
        # Renewing halfway through the lease leaves the other half for one
        # slow message.
        self.renew_at = timezone.now() + datetime.timedelta(
            seconds=settings.DELIVERY_LEASE_SECONDS / 2
        )

    def renew_if_due(self, invitation_ids: list[int]) -> None:
        if timezone.now() >= self.renew_at:
            services.extend_claim(invitation_ids, token=self.token)
            self.renewed()


# Messages the SMTP server accepted are recorded together, this many at a
# time, in one transaction: recording each alone took longer than sending it.
# A worker that dies may therefore send up to this many again, with the same
# links.
RECORD_EVERY = 10


def _send_each(
    connection, invitation_ids: list[int], report: DeliveryReport, claim: Claim
) -> None:
    # Temporary failures are collected by reason and retried together at the
    # end, so that one retry task again shares one connection.
    deferred: dict[Failure, list[int]] = {}
    # Accepted by the server and not yet recorded.
    accepted: list[int] = []
    try:
        for start in range(0, len(invitation_ids), RECORD_EVERY):
            stopped = _send_group(
                connection, invitation_ids, start, claim, report, deferred, accepted
            )
            _record_accepted(accepted)
            if stopped:
                break
    finally:
        # Also when sending raised: what the server accepted is recorded.
        _record_accepted(accepted)

    if deferred:
        _retry_later(deferred, report, claim)


def _send_group(
    connection,
    invitation_ids: list[int],
    start: int,
    claim: Claim,
    report: DeliveryReport,
    deferred: dict[Failure, list[int]],
    accepted: list[int],
) -> bool:
    """Send the RECORD_EVERY invitations from START; return True to stop the run."""
    group = invitation_ids[start : start + RECORD_EVERY]
    # Read just before sending, since staff may have replaced an invitation
    # since the run claimed it. The claim token leaves out any invitation
    # given to another worker after this run's claim ran out.
    invitations = (
        Invitation.objects.select_related("patient")
        .filter(delivery_status=Invitation.Delivery.QUEUED, claim_token=claim.token)
        .in_bulk(group)
    )
    for position, invitation_id in enumerate(group, start):
        # Before each message, since one slow message can take the whole
        # SMTP timeout.
        claim.renew_if_due(invitation_ids[position:])
        invitation = invitations.get(invitation_id)
        if invitation is None:
            report.skipped += 1
            continue

        reason = reason_not_to_send(invitation)
        if reason:
            if services.cancel_delivery(invitation.pk, reason=reason):
                logger.info("Invitation %s not sent: %s", invitation.pk, reason)
                report.cancelled += 1
            continue

        failure = _send_one(connection, invitation)
        if failure is None:
            accepted.append(invitation.pk)
            report.sent += 1
        elif failure.permanent:
            services.record_delivery(invitation.pk, sent=False, error=failure.reason)
            if failure.code is None:
                # These reasons are fixed texts that never contain the address.
                logger.warning(
                    "Invitation %s marked failed: %s", invitation.pk, failure.reason
                )
            else:
                logger.warning(
                    "Invitation %s rejected with SMTP code %s, marked failed",
                    invitation.pk,
                    failure.code,
                )
            report.failed += 1
        elif failure.connection_lost and report.sent == 0:
            # Nothing got through this connection: the server is unavailable,
            # so the whole rest of the batch waits for a retry.
            deferred.setdefault(failure, []).extend(invitation_ids[position:])
            return True
        elif failure.connection_lost:
            # Many relays close a connection after a number of messages. Only
            # this invitation was tried, so the untried rest go to a new task
            # at once, which opens a new connection.
            deferred.setdefault(failure, []).append(invitation.pk)
            untried = invitation_ids[position + 1 :]
            if untried:
                services.requeue_delivery(untried, token=claim.token)
                report.requeued += len(untried)
            return True
        else:
            deferred.setdefault(failure, []).append(invitation.pk)
    return False


def _record_accepted(accepted: list[int]) -> None:
    if accepted:
        services.record_sent(accepted)
        accepted.clear()


def _send_one(connection, invitation: Invitation) -> Failure | None:
    """Send one invitation; return None once the server has accepted it."""
    try:
        message = emails.invitation_email(invitation)
    except emails.InvalidRecipient as error:
        return Failure(str(error), code=None, permanent=True, connection_lost=False)

    try:
        connection.send_messages([message])
    except (OSError, smtplib.SMTPException) as error:
        return _describe(error)
    except ValueError:
        # Django raises ValueError for an address it cannot encode; its
        # message quotes the address, so only the fact is kept.
        return Failure(
            "The sender or recipient address could not be encoded for SMTP. "
            "Check DEFAULT_FROM_EMAIL and the patient's email address.",
            code=None,
            permanent=True,
            connection_lost=False,
        )
    return None


def reason_not_to_send(invitation: Invitation) -> str:
    """Return why a queued invitation must not be emailed any more, or ""."""
    patient = invitation.patient
    if invitation.status != Invitation.Status.PENDING:
        return (
            "The invitation was not sent because its status changed to "
            f'"{invitation.get_status_display()}".'
        )
    if invitation.is_expired:
        return "The invitation expired before it could be sent."
    if normalize_email(invitation.email) != patient.email_normalized:
        return (
            "The invitation was not sent because the patient's email address "
            "changed after it was created."
        )
    if not patient.portal_access:
        return "The invitation was not sent because portal access is disabled."
    if patient.user_id is not None:
        return "The invitation was not sent because the patient has set up an account."
    return ""


def _describe(error: Exception) -> Failure:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        # One recipient per message, so one (code, reply) pair.
        code, reply = next(iter(error.recipients.values()))
    elif isinstance(error, smtplib.SMTPResponseException):
        code, reply = error.smtp_code, error.smtp_error
    else:
        detail = str(error) or type(error).__name__
        return Failure(
            f"The mail server could not be reached or closed the connection "
            f"({detail}).",
            code=None,
            permanent=False,
            connection_lost=True,
        )

    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    reply = ADDRESS_PATTERN.sub("<address>", " ".join(str(reply).split()))
    reason = f"The mail server answered {code} {reply}"[:MAX_REASON_LENGTH]
    return Failure(
        reason,
        code=code,
        permanent=500 <= code < 600,
        # smtplib closes the connection after a 421 reply.
        connection_lost=code == 421,
    )


def _retry_later(
    deferred: dict[Failure, list[int]], report: DeliveryReport, claim: Claim
) -> None:
    for failure, invitation_ids in deferred.items():
        invitations = services.retry_delivery(
            invitation_ids, error=failure.reason, token=claim.token
        )
        given_up = [
            invitation.pk
            for invitation in invitations
            if invitation.delivery_status == Invitation.Delivery.FAILED
        ]
        waiting = [
            invitation
            for invitation in invitations
            if invitation.delivery_status == Invitation.Delivery.QUEUED
        ]
        report.failed += len(given_up)
        report.retrying += len(waiting)
        if waiting:
            logger.warning(
                "Delivery of invitations %s failed temporarily (SMTP code %s), "
                "retrying at %s",
                [invitation.pk for invitation in waiting],
                failure.code,
                waiting[0].next_attempt_at.isoformat(),
            )
        if given_up:
            logger.warning(
                "Delivery of invitations %s failed on the last allowed attempt "
                "(SMTP code %s), marked failed",
                given_up,
                failure.code,
            )


def _close(connection) -> None:
    try:
        connection.close()
    except (OSError, smtplib.SMTPException) as error:
        # Every message already has its result recorded, so only QUIT failed.
        logger.warning("Closing the SMTP connection failed: %s", type(error).__name__)


def _log_finished(report: DeliveryReport) -> None:
    logger.info(
        "Delivery finished: %d sent, %d failed, %d to retry, %d cancelled, "
        "%d skipped, %d queued again untried",
        report.sent,
        report.failed,
        report.retrying,
        report.cancelled,
        report.skipped,
        report.requeued,
    )
