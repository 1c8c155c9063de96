"""Idle and absolute time limits on logged-in sessions, enforced on the server.

A staff session ends after STAFF_IDLE_MINUTES without a request and a
patient's after PATIENT_IDLE_MINUTES; any session ends SESSION_MAX_HOURS
after login. Ending it flushes the session from the store, so the cookie
alone no longer opens anything.
"""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.shortcuts import redirect

STARTED = "session_started_at"
LAST_SEEN = "session_last_seen_at"


@receiver(user_logged_in)
def _start_clock(sender, request, user, **kwargs):
    now = time.time()
    request.session[STARTED] = now
    request.session[LAST_SEEN] = now


def _idle_limit_seconds(user) -> int:
    if user.is_staff:
        return settings.STAFF_IDLE_MINUTES * 60
    return settings.PATIENT_IDLE_MINUTES * 60


class SessionLimitMiddleware:
    """Log out a session that was idle too long or is older than the maximum."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated:
            now = time.time()
            started = request.session.get(STARTED, now)
            last_seen = request.session.get(LAST_SEEN, now)
            idle = now - last_seen > _idle_limit_seconds(user)
            too_old = now - started > settings.SESSION_MAX_HOURS * 3600
            if idle or too_old:
                return self._end(request, user, idle)
            request.session.setdefault(STARTED, started)
            # Saved on every request, so that the idle limit is exact; that
            # costs one session write per request.
            request.session[LAST_SEEN] = now
        return self.get_response(request)

    def _end(self, request, user, idle: bool):
        login_url = "staff-login" if user.is_staff else "portal-login"
        logout(request)
        if idle:
            minutes = _idle_limit_seconds(user) // 60
            unit = "minute" if minutes == 1 else "minutes"
            text = f"You were logged out after {minutes} {unit} without activity."
        else:
            text = (
                f"You were logged out because you logged in more than "
                f"{settings.SESSION_MAX_HOURS} hours ago."
            )
        messages.info(request, f"{text} Log in again to go on.")
        return redirect(login_url)
