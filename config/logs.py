"""Log records as JSON lines or plain text on standard error, without secrets.

Both formats mask long path segments, query strings and email addresses in
the finished line. Request paths carry the tokens of invitation, password
reset and email change links, and query strings carry staff searches for
patients. Django and gunicorn print the path of a request that failed.
"""

import contextvars
import logging
import logging.config
import re
from datetime import UTC, datetime

from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.json import JsonFormatter

# The id of the request being handled, set by config.request_log.
request_id = contextvars.ContextVar("request_id", default=None)

LOG_FORMATS = ("json", "text")

# The secrets in link paths are far longer than 20 characters: invitation
# tokens are 43 characters of base64url, password reset tokens about 39 (a
# timestamp, a dash and 32 hex digits), email change tokens 64 hex digits.
# The fixed segments of this project's routes are all shorter.
_LONG_SEGMENT = re.compile(r"/[A-Za-z0-9_-]{20,}")
MASK = "/<masked>"
# A query string, as gunicorn quotes it in "Error handling request GET
# /?q=..." after a timeout: staff search for patients by name and birth date.
_QUERY = re.compile(r"(?<=[^\s?])\?[^\s\"'<>]+")
# An email address anywhere, such as in a mistyped path.
_ADDRESS = re.compile(r"[^\s\"'<>/@]+@[^\s\"'<>/@]+")
# gunicorn's line for a request that timed out or raised quotes its whole
# path, which may be anything a person typed.
_FAILED_REQUEST = re.compile(r"(Error handling request )(?:[A-Z]+ )?\S+")

# Record attributes that every JSON line carries, and their names there.
_FIELDS = {"levelname": "level", "name": "logger", "process": "process"}


def mask_secrets(text: str) -> str:
    """Mask request paths, long path segments, query strings and addresses."""
    text = _FAILED_REQUEST.sub(r"\1<request>", text)
    text = _LONG_SEGMENT.sub(MASK, text)
    text = _QUERY.sub("?<masked>", text)
    return _ADDRESS.sub("<address>", text)


class TextFormatter(logging.Formatter):
    """One line of text per record, with the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        current = request_id.get()
        if current:
            line = f"{line} request_id={current}"
        return mask_secrets(line)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: time, level, logger, message, process.

    The request id is added while a request is handled, the traceback as
    exc_info, and extra attributes only when they are plain numbers, strings
    or booleans.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", list(_FIELDS) + ["message"])
        kwargs.setdefault("rename_fields", _FIELDS)
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data, record, message_dict):
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(
            timespec="milliseconds"
        )
        super().add_fields(log_data, record, message_dict)

        # Django attaches the request to some records, and its text form
        # contains the path, so objects are left out.
        for key in list(log_data):
            value = log_data[key]
            if not (value is None or isinstance(value, str | int | float | bool)):
                del log_data[key]

        current = request_id.get()
        if current:
            log_data["request_id"] = current

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def configure_logging(config: dict) -> None:
    """Apply CONFIG, and log Python warnings through it, as LOGGING_CONFIG."""
    logging.config.dictConfig(config)
    # A warning then becomes a record of the py.warnings logger, in the same
    # format as every other line, instead of free text on standard error.
    logging.captureWarnings(True)


def build_logging(log_format: str, level: str) -> dict:
    """Return the LOGGING setting for LOG_FORMAT json or text, at LEVEL."""
    if log_format not in LOG_FORMATS:
        raise ImproperlyConfigured(
            f"LOG_FORMAT={log_format!r} is not supported. Use json or text."
        )
    formatter = {
        "json": {"()": "config.logs.JsonLineFormatter"},
        "text": {
            "()": "config.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    }[log_format]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "default"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Without handlers of their own, so that each line is printed once,
            # by the root handler.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "ERROR"},
            # gunicorn's master and workers log through the same handler.
            "gunicorn.error": {"handlers": [], "propagate": True},
            # Off: its lines would contain the full request path. Requests are
            # logged by config.request_log instead, with the route.
            "gunicorn.access": {
                "handlers": [],
                "propagate": False,
                "level": "CRITICAL",
            },
        },
    }
