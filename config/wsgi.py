import os
from pathlib import Path

from django.core.wsgi import get_wsgi_application

from config import dotenv

dotenv.load(Path(__file__).resolve().parent.parent / ".env")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
application = get_wsgi_application()
