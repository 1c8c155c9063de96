"""Translate a CACHE_URL into one entry of Django's CACHES setting.

The default cache stores the patients' attempt counters (portal/ratelimit.py).
Every web process must see the same counters, so a site with more than one
process needs the database cache or Redis rather than the per-process memory
cache.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# The table of the database cache. Migration portal 0002 creates it, so that
# `manage.py migrate` is all a new database needs.
CACHE_TABLE = "portal_cache"

SUPPORTED = "db://, redis://host:6379/0, rediss://host:6380/0 or locmem://"


def parse_cache_url(url: str) -> dict:
    """Return the CACHES entry for URL.

    Accepted forms:
      db://                       Django's database cache, in the table
                                  portal_cache of the default database
      redis://[:password@]host[:port][/db]
      rediss://...                Django's Redis cache, rediss:// over TLS
      locmem://                   memory of one process, not shared
    """
    if "://" not in url:
        raise ImproperlyConfigured(
            f"CACHE_URL={_without_password(url)!r} has no scheme. Use {SUPPORTED}."
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()

    if scheme == "db":
        if parts.netloc or parts.path.strip("/"):
            raise ImproperlyConfigured(
                f"CACHE_URL={_without_password(url)!r} names a table, but the "
                f"database cache always uses the table {CACHE_TABLE}, which "
                "`manage.py migrate` creates. Use db:// alone."
            )
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
        }
    if scheme in {"redis", "rediss"}:
        if not parts.hostname:
            raise ImproperlyConfigured(
                f"CACHE_URL={_without_password(url)!r} has no host name. Use a "
                "form such as redis://127.0.0.1:6379/0."
            )
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
        }
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}

    raise ImproperlyConfigured(
        f"CACHE_URL={_without_password(url)!r} has the scheme {scheme!r}, which "
        f"is not supported. Use {SUPPORTED}."
    )


def _without_password(url: str) -> str:
    """Return URL with the password of its user part replaced by ***."""
    head, at, address = url.rpartition("@")
    if not at:
        return url
    scheme, slashes, user_part = head.rpartition("//")
    user, colon, _password = user_part.partition(":")
    return f"{scheme}{slashes}{user}{':***' if colon else ''}@{address}"
