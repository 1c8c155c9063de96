"""The address of the client that sent a request, seen through trusted proxies."""

from django.conf import settings


def client_address(request) -> str:
    """Return the client's IP address for rate limits and login lockouts.

    Without a proxy this is REMOTE_ADDR. Behind TRUSTED_PROXY_COUNT reverse
    proxies, each of which appends the address it received the request from
    to X-Forwarded-For, it is the entry that the outermost trusted proxy
    appended. Entries further left were written by the client and could be
    forged, so they are never used.
    """
    count = settings.TRUSTED_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR", "")
    if count == 0:
        return remote
    forwarded = [
        entry.strip()
        for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if entry.strip()
    ]
    if len(forwarded) < count:
        # The request did not pass through every proxy, so it reached the
        # site some other way; its direct address is all that can be trusted.
        return remote
    return forwarded[-count]
