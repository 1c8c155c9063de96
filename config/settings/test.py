"""Settings for the test suite: fast hashing, memory mail, a throwaway database."""

import os

os.environ.setdefault(
    "SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789"
)

from config.settings.base import *  # noqa: E402,F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
PORTAL_BASE_URL = "http://portal.test"
PRACTICE_NAME = "Riverside Family Practice"
# Tests log staff in with a password only. The two-factor tests turn it on.
STAFF_TWO_FACTOR = False
STORAGES = {
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
# TEST_DATABASE_URL runs the suite on another database, such as PostgreSQL;
# the test runner creates and drops its own "test_" copy of the named one.
if os.environ.get("TEST_DATABASE_URL"):
    DATABASES["default"] = dj_database_url.parse(  # noqa: F405
        os.environ["TEST_DATABASE_URL"]
    )
else:
    DATABASES["default"] = {  # noqa: F405
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": ":memory:"},
    }
# Static files come straight from the app's folders; nothing is collected.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
