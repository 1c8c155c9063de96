"""The page to open after a login form, taken only from paths on this site."""

from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def next_url(request, fallback: str) -> str:
    """Return the form's "next" target if it stays on this site, else FALLBACK's URL."""
    target = request.POST.get("next") or request.GET.get("next", "")
    is_safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and is_safe else reverse(fallback)
