"""Remove a staff user's authenticator app, so that they set up a new one."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from patients import twofactor


class Command(BaseCommand):
    help = (
        "Delete the authenticator app of a staff user, for a lost or replaced "
        "phone. The user sets up a new one at their next login, and any session "
        "of theirs must enter a code from it. The reset is audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The staff user's username.")

    def handle(self, *args, username, **options):
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            matches = list(users.filter(username__iexact=username)[:2])
            user = matches[0] if len(matches) == 1 else None
        if user is None:
            raise CommandError(
                f"No user is named {username!r}. Give the username that the "
                "staff member logs in with."
            )
        deleted = twofactor.reset_devices(
            user, actor_label="manage.py reset_staff_two_factor"
        )
        name = user.get_username()
        if deleted:
            self.stdout.write(
                f"Removed the authenticator app of {name}. They set up a new one "
                "at their next staff login."
            )
        else:
            self.stdout.write(
                f"{name} has no authenticator app; nothing was changed. They set "
                "one up at their next staff login."
            )
