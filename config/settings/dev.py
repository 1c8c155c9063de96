"""Settings for the demo and local development: DEBUG on, a fixed local secret."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-demo-secret-key-change-me-in-production")
os.environ.setdefault("DEBUG", "true")

from config.settings.base import *  # noqa: E402,F403
