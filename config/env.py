"""Strict readers for configuration taken from environment variables."""

import os
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_VALUES = {"true", "1", "yes", "on"}
FALSE_VALUES = {"false", "0", "no", "off"}


def env_str(name: str, default: str | None = None) -> str:
    """Read a string, taking it from the file named by NAME_FILE when that is set."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            with open(file_path, encoding="utf-8") as secret_file:
                return secret_file.read().strip()
        except OSError as error:
            raise ImproperlyConfigured(
                f"{name}_FILE={file_path!r} could not be read ({error.strerror}). "
                f"Point it at a readable file or set {name} instead."
            ) from error

    value = os.environ.get(name)
    if value is not None and value != "":
        return value
    if default is None:
        raise ImproperlyConfigured(
            f"The environment variable {name} is missing. Set it in the environment "
            f"or in the .env file (see .env.example)."
        )
    return default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in TRUE_VALUES:
        return True
    if raw.lower() in FALSE_VALUES:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean. Use true or false.")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a whole number. Use a number such as {default}."
        ) from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_email_url(url: str) -> dict:
    """Translate an EMAIL_URL into one entry of Django's MAILERS setting.

    Accepted forms:
      smtp://user:password@host:port      plain SMTP, upgraded with STARTTLS
                                          when ?tls=true is given
      smtp+tls://user:password@host:587   SMTP with STARTTLS
      smtps://user:password@host:465      SMTP over implicit TLS
      console://                          print messages to standard output
      file:///path/to/folder              write each message to a file
      memory://                           keep messages in memory (tests)
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}

    if scheme == "console":
        return {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme == "memory":
        return {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if scheme == "file":
        if not parts.path:
            raise ImproperlyConfigured(
                f"EMAIL_URL={url!r} has no folder. Use file:///absolute/folder."
            )
        return {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": unquote(parts.path)},
        }
    if scheme not in {"smtp", "smtp+tls", "smtps"}:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme {scheme!r} is not supported. Use smtp://, smtp+tls://, "
            "smtps://, console://, file:// or memory://."
        )
    if not parts.hostname:
        raise ImproperlyConfigured(
            "EMAIL_URL has no host name. Use a form such as smtp://127.0.0.1:1025."
        )

    # The part after any user:password@, so errors never show the password.
    address = parts.netloc.rpartition("@")[2]
    try:
        port = parts.port
    except ValueError:
        port = 0
    # None means no port was given, so the scheme's default applies.
    if port == 0:
        raise ImproperlyConfigured(
            f"EMAIL_URL has an invalid port in {address!r}. Use a number between "
            "1 and 65535, such as smtp://127.0.0.1:1025."
        )

    timeout = query.get("timeout", "30")
    if not timeout.isdigit() or int(timeout) == 0:
        raise ImproperlyConfigured(
            f"EMAIL_URL has timeout={timeout!r}. Use a whole number of seconds "
            "above 0, such as ?timeout=30."
        )

    use_ssl = scheme == "smtps"
    use_tls = scheme == "smtp+tls" or query.get("tls", "").lower() in TRUE_VALUES
    if use_ssl and use_tls:
        raise ImproperlyConfigured(
            "EMAIL_URL uses smtps://, which is already encrypted, together with "
            "STARTTLS (?tls=true). Remove ?tls=true, or use smtp+tls:// instead."
        )
    options: dict = {
        "host": parts.hostname,
        "port": port or (465 if use_ssl else 587 if use_tls else 25),
        "use_tls": use_tls,
        "use_ssl": use_ssl,
        "timeout": int(timeout),
    }
    if parts.username:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "")
    return {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": options,
    }
