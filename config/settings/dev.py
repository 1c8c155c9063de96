"""Settings for the demo and local development: DEBUG on, a fixed local secret."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-demo-secret-key-change-me-in-production")
os.environ.setdefault("DEBUG", "true")
# The demo practice's name, shown on pages and in emails.
os.environ.setdefault("PRACTICE_NAME", "Lakeside Family Medicine")

from config.settings.base import *  # noqa: E402,F403
