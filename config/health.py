"""The health check at /healthz, for load balancers and process managers.

It returns 200 {"status": "ok"} when the database returns the result of a
trivial query, and 503 {"status": "unavailable"} when it does not. The
middleware comes first in MIDDLEWARE and responds before all the others, so a
probe never opens a session, never writes to the database, never needs a CSRF
token or an allowed Host header, and is not redirected to HTTPS. The body
contains nothing but the status.
"""

import logging

from django.db import Error, connection
from django.http import HttpResponseNotAllowed, JsonResponse

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"

# Whether the previous check in this process succeeded, so that a database
# outage is logged when it starts and when it ends, not at every probe.
_last_check_ok = True


class HealthCheckMiddleware:
    """Respond to /healthz before any other middleware runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == HEALTH_PATH:
            return health_check(request)
        return self.get_response(request)


def health_check(request):
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Error as error:
        _record_outcome(ok=False, error=error)
        response = _response("unavailable", 503)
    else:
        _record_outcome(ok=True)
        response = _response("ok", 200)
    if request.method == "HEAD":
        # gunicorn logs a warning for every HEAD response that has a body.
        response.content = b""
    return response


def _record_outcome(*, ok: bool, error: Exception | None = None) -> None:
    global _last_check_ok
    if not ok and _last_check_ok:
        logger.error(
            "Health check failed: the database query failed (%s: %s)",
            type(error).__name__,
            str(error).strip(),
        )
    elif ok and not _last_check_ok:
        logger.info("Health check passed: the database query succeeded again")
    _last_check_ok = ok


def _response(status: str, http_status: int) -> JsonResponse:
    response = JsonResponse({"status": status}, status=http_status)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    # Django would log every 503 probe as an error. _record_outcome already
    # logged the outage once, so the flag that Django sets on a response it
    # has logged is set here.
    response._has_been_logged = True
    return response
