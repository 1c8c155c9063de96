"""The steps that prepare the demo database, in the order rundemo runs them.

Every change to a patient goes through the product's own service functions,
as it would when staff and patients click through the pages.
"""

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django.test.utils import override_settings

from demo.generator import build_export, write_export
from demo.mailbox import start_server
from imports.services import import_patients
from invitations import delivery
from invitations.models import Invitation
from invitations.services import accept_invitation, send_invitations
from patients import roles
from patients.models import Patient
from patients.roles import ensure_roles
from patients.services import enable_access, record_patient_login

logger = logging.getLogger(__name__)

# The import source of the demo practice's patients.
DEMO_SOURCE = "demo"
STAFF_USERNAME = "frontdesk"

# Shares of the living, active patients with a valid email address that the
# seed moves to each state. Each state includes the ones after it, so 45%
# have access, 30% were invited, 15% set up an account and 8% logged in.
ENABLED_SHARE = 0.45
INVITED_SHARE = 0.30
ACCOUNT_SHARE = 0.15
LOGGED_IN_SHARE = 0.08
# Patients without a usable address who get portal access anyway, so the
# invite action has some to skip with a reason.
ENABLED_WITHOUT_EMAIL = 5


def migrate() -> None:
    call_command("migrate", interactive=False, verbosity=0)


def generate(folder: Path, *, patients: int = 400, seed: int = 1) -> dict:
    """Write the demo practice into FOLDER and return the resource counts by type."""
    export = build_export(patients=patients, seed=seed)
    write_export(export, folder)
    return {kind: export.count(kind) for kind in export.resources}


def import_demo(folder: Path):
    """Import the demo export with the product's importer and return its summary."""
    _, summary = import_patients([str(folder)], source=DEMO_SOURCE)
    return summary


def is_fresh() -> bool:
    """Return whether no demo patient has been imported into this database yet."""
    return not Patient.objects.filter(source=DEMO_SOURCE).exists()


@transaction.atomic
def reset_staff_user(password: str | None = None) -> tuple[object, str]:
    """Create or update the front-desk login with a new password.

    Returns the user and the password. The user is staff with the
    administrator role, so that every page can be tried, and any login
    lockout on it is lifted.
    """
    from axes.utils import reset as reset_lockouts

    ensure_roles()
    group = Group.objects.get(name=roles.ADMINISTRATOR)

    password = password or secrets.token_urlsafe(12)
    user, _ = get_user_model().objects.get_or_create(username=STAFF_USERNAME)
    user.is_staff = True
    user.is_active = True
    user.set_password(password)
    user.save()
    user.groups.add(group)
    reset_lockouts(username=STAFF_USERNAME)
    return user, password


@dataclass
class SeedReport:
    enabled: int = 0
    invited: int = 0
    sent: int = 0
    accounts: int = 0
    logged_in: int = 0


def _share(ids: list[int], share: float) -> list[int]:
    return ids[: round(len(ids) * share)]


def seed_demo_states(*, actor, mailbox_dir: Path, smtp_port: int) -> SeedReport:
    """Put some demo patients in each portal state, as staff and patients would.

    Invitations are emailed to a demo mailbox started on 127.0.0.1:SMTP_PORT
    for the length of this call, storing into MAILBOX_DIR, so the mailbox
    contains them and the staff screen shows when they were sent. Run this once,
    on a database just imported; a second run would invite more patients.
    """
    report = SeedReport()
    living = Patient.objects.filter(
        source=DEMO_SOURCE, deceased=False, active=True
    ).order_by("source_id")
    with_email = list(living.filter(email_valid=True).values_list("pk", flat=True))
    without_email = list(living.filter(email_valid=False).values_list("pk", flat=True))[
        :ENABLED_WITHOUT_EMAIL
    ]

    to_enable = _share(with_email, ENABLED_SHARE) + without_email
    plan = enable_access(Patient.objects.filter(pk__in=to_enable), actor=actor)
    report.enabled = plan.eligible

    to_invite = _share(with_email, INVITED_SHARE)
    plan = send_invitations(Patient.objects.filter(pk__in=to_invite), actor=actor)
    report.invited = plan.eligible
    report.sent = _deliver_now(to_invite, mailbox_dir, smtp_port)

    for patient in Patient.objects.filter(pk__in=_share(with_email, ACCOUNT_SHARE)):
        invitation = patient.invitations.usable().order_by("-created_at").first()
        if invitation is None:
            continue
        # These passwords are shown nowhere, because a demo user signs up a
        # patient of their own from an invitation in the demo mailbox.
        accept_invitation(
            invitation,
            username=f"patient{patient.pk}",
            password=secrets.token_urlsafe(16),
        )
        report.accounts += 1

    logged_in = Patient.objects.filter(
        pk__in=_share(with_email, LOGGED_IN_SHARE), user__isnull=False
    ).select_related("user")
    for patient in logged_in:
        record_patient_login(patient.user)
        report.logged_in += 1

    logger.info("Demo states seeded: %s", report)
    return report


def _deliver_now(patient_ids: list[int], mailbox_dir: Path, smtp_port: int) -> int:
    """Send the patients' queued invitations to the demo mailbox and return the count.

    The tasks that send_invitations queued stay queued. The worker runs them
    later and skips these invitations, because they are already sent.
    """
    invitation_ids = list(
        Invitation.objects.filter(
            patient_id__in=patient_ids, delivery_status=Invitation.Delivery.QUEUED
        ).values_list("pk", flat=True)
    )
    server = start_server(mailbox_dir, smtp_port)
    mailer = {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {"host": "127.0.0.1", "port": smtp_port, "timeout": 10},
    }
    try:
        with override_settings(MAILERS={**settings.MAILERS, "default": mailer}):
            result = delivery.deliver(invitation_ids)
    finally:
        server.stop()
    return result.sent
