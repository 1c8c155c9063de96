"""The staff roles: groups of permissions that match the jobs in a practice.

An administrator manages staff, overrides safety checks, changes email
addresses, imports patients from uploaded files and reads the audit log.
The front desk enables access, invites and changes usernames. Read-only
staff see the list and the patient pages. Every staff user with no role can
only view.
"""

from django.apps import apps as django_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission

ADMINISTRATOR = "Administrator"
FRONT_DESK = "Front desk"
READ_ONLY = "Read only"

FRONT_DESK_PERMISSIONS = [
    "patients.enable_portal_access",
    "patients.send_portal_invitation",
    "patients.change_portal_username",
]
ROLES = {
    ADMINISTRATOR: [
        *FRONT_DESK_PERMISSIONS,
        "patients.change_patient_email",
        "patients.override_safety_check",
        "audit.view_auditevent",
        "imports.run_import",
        "auth.add_user",
        "auth.change_user",
        "auth.view_user",
    ],
    FRONT_DESK: FRONT_DESK_PERMISSIONS,
    READ_ONLY: [],
}
# The names used on the command line, e.g. --role front-desk.
ROLE_OPTIONS = {name.lower().replace(" ", "-"): name for name in ROLES}


def _permissions(names: list[str]):
    # post_migrate reaches this app before the apps listed after it in
    # INSTALLED_APPS, such as imports, so their permissions are created here.
    for app_label in sorted({name.split(".")[0] for name in names}):
        create_permissions(django_apps.get_app_config(app_label), verbosity=0)
    permissions = []
    for name in names:
        app_label, codename = name.split(".")
        permissions.append(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return permissions


def ensure_roles(**kwargs) -> None:
    """Create each role's group with its permissions, if the group is missing.

    An existing group is left as it is, so a practice can change what a role
    may do. Connected to post_migrate, which runs after the permissions exist.
    """
    for name, permission_names in ROLES.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            group.permissions.set(_permissions(permission_names))
