from django.conf import settings


def demo(request):
    """Tell templates whether the demo mailbox exists, for the staff nav link."""
    return {"demo_mailbox_enabled": bool(settings.DEMO_MAILBOX_DIR)}
