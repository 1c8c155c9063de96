"""gunicorn settings for the web processes: gunicorn -c config/gunicorn.conf.py

Read from the environment, or from the .env file of the project folder:
  GUNICORN_BIND     address and port to listen on, default 127.0.0.1:8000;
                    several addresses are separated by commas
  GUNICORN_WORKERS  worker processes, default 2 per CPU plus 1, at most 8
  GUNICORN_TIMEOUT  seconds a worker may spend on one request before it is
                    restarted, default 30
  LOG_FORMAT        json (the default with config.settings.production) or text

gunicorn's access log is off, because it prints each request's path and the
invitation, password reset and email change links carry their token there.
With config.settings.production Django logs one line per request with the URL
pattern instead (config/request_log.py). gunicorn's own messages go to
standard error in the same format as the application's.
"""

import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# gunicorn reads this file before it changes into `chdir`.
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from config import dotenv  # noqa: E402
from config.env import env_int, env_list, env_str  # noqa: E402
from config.logs import build_logging  # noqa: E402

dotenv.load(PROJECT_DIR / ".env")


def _default_workers() -> int:
    # 2 per CPU plus 1 is gunicorn's suggestion for sync workers. The cap keeps
    # a few machines, each worker with its own database connection, within
    # PostgreSQL's default max_connections of 100.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return min(2 * cpus + 1, 8)


def _default_log_format() -> str:
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    return "json" if settings_module == "config.settings.production" else "text"


wsgi_app = "config.wsgi:application"
chdir = str(PROJECT_DIR)
bind = env_list("GUNICORN_BIND", ["127.0.0.1:8000"])
workers = env_int("GUNICORN_WORKERS", _default_workers(), minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)

# No control socket for gunicornc: systemd manages the processes with signals,
# and instances run by one user would share its default path.
control_socket_disable = True

accesslog = None
errorlog = "-"
logconfig_dict = build_logging(
    env_str("LOG_FORMAT", _default_log_format()).lower(),
    env_str("LOG_LEVEL", "INFO"),
)
