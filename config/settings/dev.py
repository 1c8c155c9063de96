"""Settings for the demo and local development: DEBUG on, a fixed local secret."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-demo-secret-key-change-me-in-production")
os.environ.setdefault("DEBUG", "true")
# The demo practice's name, shown on pages and in emails.
os.environ.setdefault("PRACTICE_NAME", "Lakeside Family Medicine")
# The demo's staff login is a username and password, with no authenticator
# app to set up first. STAFF_TWO_FACTOR=true turns the second step on.
os.environ.setdefault("STAFF_TWO_FACTOR", "false")

from config.settings.base import *  # noqa: E402,F403
