from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self):
        # Registers the system checks, and connects the receiver that starts
        # a session's clock at login.
        import config.checks  # noqa: F401
        import config.session_limits  # noqa: F401
        import patients.checks  # noqa: F401

        # Sent after Django's own receiver has created the permissions of this
        # app and of the apps listed before it, which the roles use.
        post_migrate.connect(_ensure_roles_once, sender=self)


def _ensure_roles_once(sender, **kwargs):
    from patients.roles import ensure_roles

    ensure_roles()
