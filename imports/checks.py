"""System checks of the imports app."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, register


def _served_folders() -> list[Path]:
    folders = [Path(folder) for folder in settings.STATICFILES_DIRS]
    for name in ("STATIC_ROOT", "MEDIA_ROOT"):
        if getattr(settings, name, None):
            folders.append(Path(getattr(settings, name)))
    return folders


@register(Tags.security)
def upload_dir_not_served(app_configs, **kwargs):
    """Reject an IMPORT_UPLOAD_DIR inside a folder the site serves to the web."""
    uploads = Path(settings.IMPORT_UPLOAD_DIR).resolve()
    for folder in _served_folders():
        served = folder.resolve()
        if uploads == served or served in uploads.parents:
            return [
                Error(
                    f"IMPORT_UPLOAD_DIR ({uploads}) is inside {served}, which the "
                    "site serves to the web, so uploaded patient exports could "
                    "be downloaded.",
                    hint="Set IMPORT_UPLOAD_DIR to a private folder, such as "
                    "var/import-uploads in the project folder.",
                    id="imports.E001",
                )
            ]
    return []
