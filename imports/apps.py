from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"

    def ready(self):
        import imports.checks  # noqa: F401
