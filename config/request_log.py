"""One log line per request, naming the route instead of the path.

Invitation, password reset and email change links carry their token in the
path, so the line shows the URL pattern (/invite/<str:token>/) and never the
path or the query string. It replaces gunicorn's access log, which would print
the whole request line.
"""

import logging
import time
import uuid

from django.conf import settings
from django.urls import Resolver404, resolve

from config.logs import mask_secrets, request_id

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"


def describe_route(request) -> str:
    """Return the URL pattern that REQUEST matched, or its masked path."""
    match = request.resolver_match
    if match is None:
        # Middleware responded before the URL was resolved, with a redirect
        # to HTTPS, a static file or a lockout.
        try:
            match = resolve(request.path_info)
        except Resolver404:
            match = None
    if match is not None:
        return "/" + match.route
    if request.path_info.startswith(settings.STATIC_URL):
        return mask_secrets(request.path_info)
    # A path that matches nothing can hold anything a person typed, such as
    # a mistyped link or a patient's address, so it is not logged.
    return "<no route>"


class RequestLogMiddleware:
    """Log each request's method, route, status and duration, with a request id.

    The id is new for each request. It is sent back in X-Request-ID and added
    to every line logged while the request is handled.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        current = uuid.uuid4().hex
        token = request_id.set(current)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = current
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            route = describe_route(request)
            logger.info(
                "%s %s %s %.1fms",
                request.method,
                route,
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
            return response
        finally:
            request_id.reset(token)
