"""Settings shared by every environment, read from environment variables.

Every variable is documented in the README and in .env.example.
"""

from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

from config.env import env_bool, env_int, env_list, env_str, parse_email_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

# Links in emails are built from this address, never from the request's Host header.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
PRACTICE_NAME = env_str("PRACTICE_NAME", "Your practice")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks_db",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "audit",
    "patients",
    "imports",
    "invitations",
    "portal",
    "demo",
    "worker",
]

MIDDLEWARE = [
    # Responds to /healthz before the others run: no session, no database
    # write, no Host check and no redirect to HTTPS for a load balancer's probe.
    "config.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Adds SECURE_CSP to every response without a Content-Security-Policy of
    # its own. The demo mailbox pages set stricter policies themselves.
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise, so that static files keep their caching headers.
    "config.security.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Tells whether the session's staff user has entered a code from their
    # authenticator app (request.user.is_verified()).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the messages middleware, so that it can show why a session ended.
    "config.session_limits.SessionLimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Returns 429 to a client locked out by failed logins. Keep it last.
    "axes.middleware.AxesMiddleware",
]

# Django-axes checks every authenticate() call, on the staff and the patient
# login alike, before the model backend checks the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.practice",
                "demo.context_processors.demo",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the worker write while the web process reads. IMMEDIATE
    # transactions take the write lock up front, so two writers wait for each
    # other instead of failing with "database is locked" halfway through.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA foreign_keys=ON;"
        ),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The planner overestimates the list's counts with a safety-check or
    # portal-state filter, so its JIT compiler would spend 300 to 500 ms on
    # queries that run in about 150 ms without it (make bench, 100,000
    # patients).
    database_options = DATABASES["default"].setdefault("OPTIONS", {})
    database_options["options"] = (
        database_options.get("options", "") + " -c jit=off"
    ).strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
    }
}

MAILERS = {"default": parse_email_url(env_str("EMAIL_URL", "console://"))}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "portal@localhost")

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
_VALIDATORS = "django.contrib.auth.password_validation"
# Length, common passwords and context, as NIST SP 800-63B requires, and no rules
# on which kinds of characters a password must contain.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {
        "NAME": f"{_VALIDATORS}.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 15, minimum=8)},
    },
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": "portal.passwords.ContextPasswordValidator"},
    {"NAME": "portal.passwords.RepetitionPasswordValidator"},
]

# How long a patient's emailed password reset link works, in seconds.
PASSWORD_RESET_TIMEOUT = 24 * 60 * 60

# Failed logins lock out one username from one client address for a while,
# and a success clears the count. Usernames and addresses stay out of the log.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# A float is read by django-axes as hours.
AXES_COOLOFF_TIME = LOGIN_LOCKOUT_MINUTES / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.clientip.client_address"
# Reverse proxies in front of the site that append the client's address to
# X-Forwarded-For. Rate limits and lockouts count per client address.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Tries made during a lockout do not start it again, so an attacker cannot
# keep a user locked out for good with one guess every few minutes.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
AXES_LOCKOUT_CALLABLE = "portal.views.login_locked"
AXES_CLIENT_STR_CALLABLE = "portal.ratelimit.describe_login_client"

LOGIN_URL = "staff-login"
LOGIN_REDIRECT_URL = "onboarding"

# Staff log in with their password and then a six-digit code from an
# authenticator app (TOTP). A staff user without an app sets one up at login.
STAFF_TWO_FACTOR = env_bool("STAFF_TWO_FACTOR", True)
# After each wrong code the next one is checked only after a wait that doubles:
# 1, 2, 4, 8 ... seconds. A correct code resets it.
OTP_TOTP_THROTTLE_FACTOR = 1
# The name that authenticator apps show beside the staff member's username.
OTP_TOTP_ISSUER = PRACTICE_NAME

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Sessions end on the server after this long without a request, and in any
# case this many hours after login.
STAFF_IDLE_MINUTES = env_int("STAFF_IDLE_MINUTES", 15, minimum=1)
PATIENT_IDLE_MINUTES = env_int("PATIENT_IDLE_MINUTES", 30, minimum=1)
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12, minimum=1)
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 60 * 60
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Pages load scripts, styles, images and fonts from this site only, and no
# inline script or style attribute runs. Templates link static files instead.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Product settings.
INVITATION_VALID_DAYS = env_int("INVITATION_VALID_DAYS", 14, minimum=1)
# A patient invited less than this many days ago, with that invitation still
# valid, is skipped by a bulk "Send Portal Invite(s)".
INVITATION_RESEND_AFTER_DAYS = env_int("INVITATION_RESEND_AFTER_DAYS", 3)
# Safety checks before enabling access or inviting. Ages are counted on the
# day of the action: below AGE_OF_MAJORITY a patient is skipped unless a user
# with the override permission includes them, and below OWN_ACCOUNT_MIN_AGE
# a patient can never be invited to an own account.
AGE_OF_MAJORITY = env_int("AGE_OF_MAJORITY", 18, minimum=1)
OWN_ACCOUNT_MIN_AGE = env_int("OWN_ACCOUNT_MIN_AGE", 12, minimum=0)
# Days after an email change during which the new address needs an override.
EMAIL_CHANGE_HOLD_DAYS = env_int("EMAIL_CHANGE_HOLD_DAYS", 14)
INVITATION_MAX_DOB_ATTEMPTS = env_int("INVITATION_MAX_DOB_ATTEMPTS", 5, minimum=1)
# Days the activation code of a printed letter works.
ACTIVATION_LETTER_VALID_DAYS = env_int("ACTIVATION_LETTER_VALID_DAYS", 30, minimum=1)
# When true, an emailed invitation link is not enough: after the date of birth
# the patient also types the code from an activation letter printed for them.
ACTIVATION_CODE_REQUIRED = env_bool("ACTIVATION_CODE_REQUIRED", False)
# Date-of-birth checks, and forgot-password or forgot-username requests, that
# one client address may make per window; more get 429 until the window ends.
# NOTE: the counters live in the default cache, which is per process unless
# CACHES points at a shared cache.
PATIENT_ATTEMPT_LIMIT = env_int("PATIENT_ATTEMPT_LIMIT", 20, minimum=1)
PATIENT_ATTEMPT_WINDOW_SECONDS = env_int(
    "PATIENT_ATTEMPT_WINDOW_SECONDS", 15 * 60, minimum=1
)
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", 8, minimum=1)
DELIVERY_RETRY_BASE_SECONDS = env_int("DELIVERY_RETRY_BASE_SECONDS", 30, minimum=1)
# The wait before a retry doubles after each failed attempt, up to this cap.
DELIVERY_RETRY_MAX_SECONDS = env_int("DELIVERY_RETRY_MAX_SECONDS", 3600, minimum=1)
# Invitations delivered by one task over one SMTP connection.
DELIVERY_BATCH_SIZE = env_int("DELIVERY_BATCH_SIZE", 100, minimum=1)
# A worker claims the invitations it is sending for this long, renewed while it
# works. If it dies, the recovery sweep queues them again once the claim ends.
DELIVERY_LEASE_SECONDS = env_int("DELIVERY_LEASE_SECONDS", 300, minimum=1)
# The recovery sweep, run by every `manage.py run_worker` this often and by
# `manage.py sweep`, queues again what crashed processes left behind.
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 60, minimum=1)
# Queued work untouched for this long, with no task due to take it, is queued
# again by the sweep.
SWEEP_GRACE_SECONDS = env_int("SWEEP_GRACE_SECONDS", 600, minimum=1)
# A task still shown as running this long after it started is taken to have
# lost its worker and is marked failed. The work itself is recovered above.
TASK_STALE_SECONDS = env_int("TASK_STALE_SECONDS", 6 * 3600, minimum=60)
ONBOARDING_PAGE_SIZE = env_int("ONBOARDING_PAGE_SIZE", 50, minimum=1)
# Files uploaded on the imports page wait in this private folder until the
# worker has imported them, and are deleted then. Never serve it to the web.
IMPORT_UPLOAD_DIR = Path(
    env_str("IMPORT_UPLOAD_DIR", str(BASE_DIR / "var" / "import-uploads"))
)
# The largest file the imports page accepts, in mebibytes.
IMPORT_UPLOAD_MAX_MB = env_int("IMPORT_UPLOAD_MAX_MB", 2048, minimum=1)
# Seconds between two writes of a running import's progress to the database.
IMPORT_PROGRESS_SECONDS = 2.0
# An uploaded import with no progress written for this long lost its worker,
# and the recovery sweep queues it again.
IMPORT_STALE_SECONDS = env_int("IMPORT_STALE_SECONDS", 300, minimum=10)
# An action on every matching patient runs in the background, with a progress
# page, when it covers more patients than this. Smaller ones finish inside
# the request.
BULK_BACKGROUND_THRESHOLD = env_int("BULK_BACKGROUND_THRESHOLD", 1000, minimum=0)
# Patients per committed chunk of a background bulk action.
BULK_JOB_CHUNK_SIZE = env_int("BULK_JOB_CHUNK_SIZE", 2000, minimum=1)
# A background bulk action with no progress for this long is resumed by the
# recovery sweep, and staff can resume it from its page.
BULK_JOB_STALE_SECONDS = env_int("BULK_JOB_STALE_SECONDS", 120, minimum=1)
# A folder of received demo mail that staff can read at /demo/mailbox/;
# empty outside the demo.
DEMO_MAILBOX_DIR = env_str("DEMO_MAILBOX_DIR", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Without handlers of its own, so that Django's default console handler
        # does not print each line a second time beside the root handler.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # The request logger prints full URLs, and invitation URLs carry tokens.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
    },
}
