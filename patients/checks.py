"""System checks that `manage.py check --deploy` runs for the staff pages."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def staff_two_factor_on(app_configs, **kwargs):
    """Warn when staff can log in with a password alone."""
    if settings.STAFF_TWO_FACTOR:
        return []
    return [
        Warning(
            "STAFF_TWO_FACTOR is off, so a staff password alone opens every "
            "patient's record.",
            hint="Remove STAFF_TWO_FACTOR=false from the environment, or set it "
            "to true, and have each staff member set up an authenticator app.",
            id="patients.W001",
        )
    ]
