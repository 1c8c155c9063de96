"""A per-address attempt counter for the patient pages that can be guessed at.

Guessing a date of birth or probing the forgot-password form is limited to
PATIENT_ATTEMPT_LIMIT tries per client address per PATIENT_ATTEMPT_WINDOW_SECONDS.
"""

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render

from config.clientip import client_address

logger = logging.getLogger(__name__)


def _key(scope: str, request) -> str:
    # The address is hashed, so the cache contains no client address in clear text.
    digest = hashlib.sha256(client_address(request).encode()).hexdigest()
    return f"patient-attempts:{scope}:{digest}"


def count_attempt(request, scope: str) -> bool:
    """Count one attempt in SCOPE from this client and return False once over the limit.

    The window is fixed: it starts at the first attempt and the counter
    expires with it. The counter lives in Django's default cache.
    """
    key = _key(scope, request)
    cache.add(key, 0, timeout=settings.PATIENT_ATTEMPT_WINDOW_SECONDS)
    try:
        attempts = cache.incr(key)
    except ValueError:
        # The counter expired between add() and incr(), so a new window starts.
        cache.set(key, 1, timeout=settings.PATIENT_ATTEMPT_WINDOW_SECONDS)
        attempts = 1
    if attempts > settings.PATIENT_ATTEMPT_LIMIT:
        if attempts == settings.PATIENT_ATTEMPT_LIMIT + 1:
            logger.warning("Client reached the %s attempt limit", scope)
        return False
    return True


def too_many_attempts(request):
    """Render the page shown to a client over the limit, with status 429."""
    minutes = -(-settings.PATIENT_ATTEMPT_WINDOW_SECONDS // 60)
    context = {"wait_minutes": minutes}
    return render(request, "portal/too_many_attempts.html", context, status=429)


def describe_login_client(username, ip_address, user_agent, path_info, request):
    """Describe a login client for django-axes's log lines, without personal data.

    Patients sometimes type their email address as the username, so the
    username is left out and the address is reduced to a short hash.
    """
    digest = hashlib.sha256((ip_address or "").encode()).hexdigest()[:12]
    return f"client {digest} at {path_info}"
