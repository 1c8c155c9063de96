"""The second step of the staff login: a six-digit code from an authenticator app.

With STAFF_TWO_FACTOR on, a correct staff password logs the session in but
leaves it unverified. Every staff page sends an unverified session to the code page,
or, for a staff user with no authenticator app yet, to the page that sets one
up. The session becomes verified when a code matches. Codes are time-based
(TOTP, RFC 6238) and checked by django-otp, which accepts each code only once
and makes the wait before the next check double after every wrong code.

Every code checked is audited as a staff login: a success once the code
matches, a failure for a wrong code or one sent before the wait was over.
"""

import base64

import django_otp
import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from audit.services import record
from patients.services import record_staff_login

DEVICE_NAME = "Authenticator app"
CODE_PAGE = "staff-login-code"
ENROL_PAGE = "staff-two-factor-enrol"
# Pixels per QR code module, and the quiet zone around the code in modules.
QR_SCALE = 4
QR_BORDER = 4


def is_required() -> bool:
    return settings.STAFF_TWO_FACTOR


def is_verified(request) -> bool:
    """Return whether the session's user has entered a code that matched."""
    check = getattr(request.user, "is_verified", None)
    return bool(check and check())


def has_device(user) -> bool:
    """Return whether USER has a confirmed authenticator app."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def next_target(request) -> str:
    target = request.POST.get("next") or request.GET.get("next", "")
    is_safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and is_safe else ""


def step_url(request, user, next_path: str | None = None) -> str:
    """Return the URL of the code page, or of the set-up page if USER has no device.

    The URL carries NEXT_PATH (by default the request's own safe "next"), so
    that the requested page opens once the code matches.
    """
    name = CODE_PAGE if has_device(user) else ENROL_PAGE
    target = next_target(request) if next_path is None else next_path
    if not target:
        return reverse(name)
    query = QueryDict(mutable=True)
    query["next"] = target
    # Slashes stay as they are, as in the redirect to the login page.
    return f"{reverse(name)}?{query.urlencode(safe='/')}"


def start(request, user) -> str:
    """Forget any earlier code after a correct password, and return the next step."""
    request.session.pop(DEVICE_ID_SESSION_KEY, None)
    return step_url(request, user)


def unverified_redirect(request):
    """Return a redirect to the second step, or None when the staff page may open.

    The caller has already checked that the user is logged-in, active staff.
    """
    if not is_required() or is_verified(request):
        return None
    return redirect(step_url(request, request.user, request.get_full_path()))


def complete(request, device) -> None:
    """Mark the session verified by DEVICE, under a new session key."""
    request.session.cycle_key()
    django_otp.login(request, device)


def enrolment_device(user) -> TOTPDevice:
    """Return the unconfirmed device USER is setting up, creating it on first use.

    The same secret is shown until a code confirms it, so that reloading the
    page does not invalidate what the app has already scanned.
    """
    with transaction.atomic():
        # Two pages opened at once wait for each other here, and share a device.
        get_user_model().objects.select_for_update().get(pk=user.pk)
        device = (
            TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
        )
        if device is None:
            device = TOTPDevice.objects.create(
                user=user, name=DEVICE_NAME, confirmed=False
            )
    return device


def secret_text(device: TOTPDevice) -> str:
    """Return the secret as people type it into an app: base32 in groups of four."""
    secret = base64.b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_code(device: TOTPDevice) -> dict:
    """Return the device's otpauth:// address as a QR code for an img element.

    "src" is an SVG image in a data: URI, made on this server, and "size" its
    width and height in pixels.
    """
    code = segno.make(device.config_url, error="m")
    size, _ = code.symbol_size(scale=QR_SCALE, border=QR_BORDER)
    src = code.svg_data_uri(scale=QR_SCALE, border=QR_BORDER, dark="#000", light="#fff")
    return {"src": src, "size": size}


def verify_code(user, code: str, *, enrolling: bool = False) -> TOTPDevice | None:
    """Check CODE against USER's device and audit the outcome.

    ENROLLING checks the device being set up and confirms it when the code
    matches. Returns the device that matched, or None.
    """
    with transaction.atomic():
        devices = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=not enrolling)
            .order_by("pk")
        )
        matched = None
        waiting = False
        for device in devices:
            allowed, _ = device.verify_is_allowed()
            if not allowed:
                waiting = True
            elif device.verify_token(code):
                matched = device
                break
        if matched is None:
            record(
                AuditEvent.Action.STAFF_LOGIN,
                actor=user,
                outcome=AuditEvent.Outcome.FAILURE,
                second_factor="totp",
                reason="too soon after a wrong code" if waiting else "wrong code",
            )
            return None
        detail = {"second_factor": "totp"}
        if enrolling:
            matched.confirmed = True
            matched.save(update_fields=["confirmed"])
            detail["enrolled"] = True
        record_staff_login(user, **detail)
    return matched


@transaction.atomic
def reset_devices(user, *, actor_label: str) -> int:
    """Delete every authenticator app of USER and audit it; return how many."""
    devices = TOTPDevice.objects.select_for_update().filter(user=user)
    deleted = len(devices)
    devices.delete()
    if deleted:
        record(
            AuditEvent.Action.TWO_FACTOR_RESET,
            actor_label=actor_label,
            user_id=user.pk,
            username=user.get_username(),
            devices=deleted,
        )
    return deleted
