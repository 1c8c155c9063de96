#!/usr/bin/env python
import os
import sys
from pathlib import Path


def main():
    from django.core.exceptions import ImproperlyConfigured

    from config import dotenv

    try:
        dotenv.load(Path(__file__).resolve().parent / ".env")
    except ImproperlyConfigured as error:
        sys.exit(f"error: {error}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
