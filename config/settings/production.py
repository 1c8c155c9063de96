"""Settings for a real deployment behind HTTPS. SECRET_KEY must be set."""

from config.caches import parse_cache_url
from config.env import env_bool, env_int, env_str
from config.logs import build_logging
from config.settings.base import *  # noqa: F403

DEBUG = False
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# The preload flag consents to listing the domain in browsers' built-in
# HTTPS-only list. That list covers every subdomain and takes months to leave,
# so a practice turns it on itself with SECURE_HSTS_PRELOAD=true.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # security.W021 only reports that the flag is off, a choice made above.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STORAGES = {
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}
# The folder of static files, written by collectstatic and read by WhiteNoise.
STATIC_ROOT = env_str("STATIC_ROOT", str(STATIC_ROOT))  # noqa: F405

# The patients' attempt counters live in the default cache, which every web
# process must share. The database cache needs no other service, and migrate
# creates its table.
CACHES = {"default": parse_cache_url(env_str("CACHE_URL", "db://"))}

# A connection kept open (DATABASE_CONN_MAX_AGE above 0) is tested before a
# request reuses it, and replaced when a database restart has broken it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405

LOG_FORMAT = env_str("LOG_FORMAT", "json").lower()
LOGGING = build_logging(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))
LOGGING_CONFIG = "config.logs.configure_logging"

# One log line per request, right after the health check, so that probes
# leave no line. See config/request_log.py.
MIDDLEWARE = [*MIDDLEWARE]  # noqa: F405
MIDDLEWARE.insert(
    MIDDLEWARE.index("config.health.HealthCheckMiddleware") + 1,
    "config.request_log.RequestLogMiddleware",
)
