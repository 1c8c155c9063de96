"""Create a staff login with one of the roles, and print its first password."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from patients.roles import ROLE_OPTIONS, ensure_roles


class Command(BaseCommand):
    help = (
        "Create a staff user with a role (administrator, front-desk or read-only) "
        "and print a random first password. Change it with: manage.py "
        "changepassword USERNAME."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            required=True,
            choices=sorted(ROLE_OPTIONS),
            help="What the user may do on the staff pages.",
        )
        parser.add_argument("--email", default="", help="The staff member's email.")

    def handle(self, *args, username, role, email, **options):
        user_model = get_user_model()
        if user_model.objects.filter(username__iexact=username).exists():
            raise CommandError(
                f"A user named {username!r} already exists. Choose another name, "
                "or change that user's groups instead."
            )
        password = secrets.token_urlsafe(15)
        with transaction.atomic():
            ensure_roles()
            user = user_model.objects.create_user(
                username=username, email=email, password=password, is_staff=True
            )
            user.groups.add(Group.objects.get(name=ROLE_OPTIONS[role]))
        self.stdout.write(
            f"Created staff user {username} ({ROLE_OPTIONS[role]}). "
            f"First password: {password}"
        )
