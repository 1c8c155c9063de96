"""The demo mailbox pages, where staff read the mail the demo sent.

Every URL here returns 404 unless DEMO_MAILBOX_DIR is set.
"""

import re

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.clickjacking import xframe_options_sameorigin

from demo.mailbox import list_messages, read_message
from patients.views import require_permission, staff_required

MESSAGES_PER_PAGE = 50

# The message page and its HTML part show mail that arrived from anywhere.
# These policies keep them from loading anything off this site or running
# scripts. The HTML part has its own URL so that its policy arrives as a header,
# before the browser reads any of the HTML.
MESSAGE_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
)
HTML_PART_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; sandbox allow-top-navigation-by-user-activation"
)
# Put before the HTML part, so its links open in the whole window, because the
# portal's pages send X-Frame-Options: DENY and cannot open inside a frame.
HTML_PART_HEAD = '<base target="_top">'
# Characters that end a URL in plain text, as in "open http://... ." at the end
# of a sentence.
TRAILING_PUNCTUATION = ".,;:!?)]'\""


def _mailbox_dir() -> str:
    if not settings.DEMO_MAILBOX_DIR:
        raise Http404("The demo mailbox is not enabled.")
    return settings.DEMO_MAILBOX_DIR


def link_portal_urls(text: str) -> SafeString:
    """Escape TEXT and turn URLs that start with PORTAL_BASE_URL into links.

    Other URLs stay plain text, so the page links only to this portal.
    """
    pattern = re.compile(re.escape(settings.PORTAL_BASE_URL) + r"(?:/[^\s<>\"']*)?")
    pieces = []
    position = 0
    for match in pattern.finditer(text):
        url = match.group(0).rstrip(TRAILING_PUNCTUATION)
        pieces.append(escape(text[position : match.start()]))
        pieces.append(format_html('<a href="{}">{}</a>', url, url))
        position = match.start() + len(url)
    pieces.append(escape(text[position:]))
    return mark_safe("".join(pieces))  # noqa: S308 - every piece is escaped above


MAILBOX_PERMISSION = "patients.send_portal_invitation"


@staff_required
def mailbox(request):
    # The mailbox shows working invitation links, so only staff who may
    # invite can read it.
    require_permission(request, MAILBOX_PERMISSION)
    folder = _mailbox_dir()
    page = Paginator(list_messages(folder), MESSAGES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "demo/mailbox.html", {"page": page, "folder": folder})


def _message_or_404(key):
    message = read_message(_mailbox_dir(), key)
    if message is None:
        raise Http404("No such message in the demo mailbox.")
    return message


@staff_required
def mailbox_message(request, key):
    require_permission(request, MAILBOX_PERMISSION)
    message = _message_or_404(key)

    response = render(
        request,
        "demo/message.html",
        {"message": message, "text": link_portal_urls(message.text)},
    )
    response["Content-Security-Policy"] = MESSAGE_POLICY
    return response


@xframe_options_sameorigin
@staff_required
def mailbox_message_html(request, key):
    require_permission(request, MAILBOX_PERMISSION)
    message = _message_or_404(key)
    if not message.html:
        raise Http404("This message has no HTML part.")

    response = HttpResponse(HTML_PART_HEAD + message.html)
    response["Content-Security-Policy"] = HTML_PART_POLICY
    return response
