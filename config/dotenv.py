"""Load settings from a .env file into the environment, without overriding it.

The format is the common subset of shell and Docker Compose env files:
``NAME=value`` lines, an optional ``export`` before the name, blank lines and
``#`` comments. A value may be wrapped in single or double quotes, which are
removed and keep the value as written. An unquoted value ends at " #". A line
in any other form raises an error that names the file and line, never the value,
because values are often secrets.
"""

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_LINE = re.compile(
    r"^(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$"
)


def parse(text: str, path: str = ".env") -> dict[str, str]:
    """Return the NAME=value pairs of an env file's text."""
    values = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ImproperlyConfigured(
                f"{path}, line {number}: expected NAME=value, such as "
                "DEBUG=false. Fix or remove the line."
            )
        values[match["name"]] = _unquote(match["value"], path, number)
    return values


def _unquote(value: str, path: str, number: int) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        rest = value[end + 1 :].strip() if end > 0 else ""
        if end < 0 or (rest and not rest.startswith("#")):
            raise ImproperlyConfigured(
                f"{path}, line {number}: the value opened with {quote} is not "
                f"closed by a matching {quote} at the end of the line."
            )
        return value[1:end]
    return value.split(" #", 1)[0].strip()


def load(path: Path) -> None:
    """Copy the variables in PATH, if it exists, into os.environ.

    A variable already in the environment keeps its value, so the environment
    wins over the file.
    """
    if not path.is_file():
        return
    for name, value in parse(path.read_text(encoding="utf-8"), str(path)).items():
        os.environ.setdefault(name, value)
