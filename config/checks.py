"""System checks that `manage.py check --deploy` runs for the shared settings."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

# Backends whose entries only the process that wrote them can read, and what
# that does to the attempt limits.
PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache": (
        "Each web process then counts patients' date-of-birth and "
        "forgotten-login attempts separately, so a client gets "
        "PATIENT_ATTEMPT_LIMIT tries from every process."
    ),
    "django.core.cache.backends.dummy.DummyCache": (
        "It stores nothing, so patients' date-of-birth and forgotten-login "
        "attempts are never limited."
    ),
}


@register(Tags.caches, Tags.security, deploy=True)
def cache_shared(app_configs, **kwargs):
    """Warn when the default cache, where the attempt counters live, is per process."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [
        Warning(
            f"The default cache ({backend}) is not shared between processes. "
            + PER_PROCESS_CACHES[backend],
            hint="Set CACHE_URL=db:// (the default of config.settings.production) "
            "or CACHE_URL=redis://host:6379/0.",
            id="config.W001",
        )
    ]
