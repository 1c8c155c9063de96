"""Activation letters: choosing patients, the letter, the code, the patient's path."""

import datetime
import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from invitations import codes
from invitations.delivery import deliver
from invitations.letters import find_letter, print_letter, print_letters
from invitations.models import Invitation
from invitations.services import InvitationNotUsable, accept_invitation
from patients import bulk
from patients.models import BulkActionRequest, Patient
from patients.services import change_email, set_access
from tests.conftest import make_invitation, make_patient

BIRTH_DATE = datetime.date(1980, 5, 17)
PASSWORD = "tidal-basin-ferry-42"
CODE_PATTERN = re.compile(
    r"\b[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}\b"
)


@pytest.fixture(autouse=True)
def _fresh_counters(clear_attempt_counters):
    pass


def letter_patient(family="Lindqvist", given="Maren", **fields) -> Patient:
    """A patient with portal access and no email address: the one a letter is for."""
    fields.setdefault("email", "")
    fields.setdefault("birth_date", BIRTH_DATE)
    fields.setdefault("portal_access", True)
    return make_patient(family=family, given=given, **fields)


def enter_code(client, code: str):
    return client.post(reverse("activate"), {"code": code})


def post_birth_date(client, birth=BIRTH_DATE):
    return client.post(
        reverse("invitation-verify"),
        {"month": birth.month, "day": birth.day, "year": birth.year},
    )


def sign_up(client, username="maren"):
    return client.post(
        reverse("invitation-signup"),
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )


def bulk_post(client, patients, **extra):
    data = {"action": "letter", "patient": [p.pk for p in patients], **extra}
    return client.post(reverse("bulk-action"), data)


def bulk_print(client, patients, key="letters-1"):
    return bulk_post(client, patients, confirm="1", idempotency_key=key)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def dead_link_page(client):
    """The page a link that does not work ends on, to compare dead codes with."""
    client.get(reverse("invitation-link", args=["no-such-token-at-all"]))
    return client.get(reverse("invitation-verify"))


def stored_text() -> str:
    """Every row of every table, and every session decoded, as one string."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            # The table names come from the database itself.
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608
            chunks.append(repr(cursor.fetchall()))
    chunks += [repr(session.get_decoded()) for session in Session.objects.all()]
    return "\n".join(chunks)


# The code itself


@pytest.mark.parametrize(
    "typed",
    [
        "ABCD-EFGH-JKMN",
        "abcd-efgh-jkmn",
        "abcdefghjkmn",
        " AbCd efgh  JKMN ",
        "ABCD–EFGH—JKMN",
        "ＡＢＣＤ－ＥＦＧＨ－ＪＫＭＮ",
        "AB-CD-EF-GH-JK-MN",
    ],
)
def test_parse_code_ignores_case_spaces_dashes(typed):
    assert codes.parse_code(typed) == "ABCDEFGHJKMN"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter the activation code"),
        ("  -  ", "Enter the activation code"),
        ("ABCD-EFGH-JKM0", "You typed “0”, but activation codes never contain"),
        ("abcd-efgh-jkmo", "You typed “O”"),
        ("1BCD-EFGH-JKLI", "You typed “1”, “I”, “L”"),
        ("ABCD-EFGH-JK#N", "“#” cannot be part of an activation code"),
        ("<script>x</script>", "“/”, “<”, “>” cannot be part"),
        ("ABCD-EFGH\u200b-JKMN", r"an invisible character \(U\+200B\) cannot be"),
        ("ABCD-EFGH-JKM", "has 12 letters and digits, and you typed 11"),
        ("ABCD-EFGH-JKMN-P", "has 12 letters and digits, and you typed 13"),
    ],
)
def test_parse_code_rejects_with_reason(typed, message):
    with pytest.raises(codes.InvalidCode, match=message):
        codes.parse_code(typed)


def test_new_code_uses_alphabet_only():
    made = {codes.new_code() for _ in range(200)}

    assert len(made) == 200
    for code in made:
        assert len(code) == codes.CODE_LENGTH
        assert set(code) <= set(codes.ALPHABET)
    assert not set(codes.ALPHABET) & set("01OIL")
    assert codes.format_code("ABCDEFGHJKMN") == "ABCD-EFGH-JKMN"


def test_stored_hash_needs_the_secret_key(settings):
    code = codes.new_code()
    first = codes.hash_code(code)

    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"

    assert codes.hash_code(code) != first
    assert code not in first


# Choosing patients on the onboarding list


def test_confirmation_counts_letters_and_skips_by_reason(front_desk_client):
    no_email = letter_patient(given="NoEmail")
    bad_email = letter_patient(given="BadEmail", email="not an address")
    has_email = letter_patient(given="HasEmail", email="has.email@example.org")
    not_enabled = letter_patient(given="Off", portal_access=False)
    deceased = letter_patient(given="Gone", deceased=True)
    inactive = letter_patient(given="Inactive", active=False)
    no_birth = letter_patient(given="Undated", birth_date=None)
    today = timezone.localdate()
    child = letter_patient(given="Child", birth_date=today.replace(year=today.year - 8))
    minor = letter_patient(
        given="Minor", birth_date=today.replace(year=today.year - 15)
    )
    twin = letter_patient(family="Twin", given="Ada")
    letter_patient(family="Twin", given="Ada", source_id="twin-2")
    with_account = letter_patient(given="Account")
    with_account.user = get_user_model().objects.create_user("account-holder")
    with_account.save()
    chosen = [
        no_email,
        bad_email,
        has_email,
        not_enabled,
        deceased,
        inactive,
        no_birth,
        child,
        minor,
        twin,
        with_account,
    ]

    response = bulk_post(front_desk_client, chosen)

    assert response.status_code == 200
    plan = response.context["plan"]
    assert plan.eligible == 2
    assert plan.skipped == {
        "deceased": 1,
        "inactive": 1,
        "access_not_enabled": 1,
        "account_exists": 1,
        "has_email": 1,
        "no_birth_date": 1,
        "child": 1,
        "minor": 1,
        "possible_duplicate": 1,
    }
    page = response.text
    assert "<td>Has an email address: send an invitation instead</td><td>1</td>" in page
    assert '<strong id="plan-eligible">2</strong>' in page
    assert "will get an activation letter" in page
    assert "Print 2 activation letters" in page
    assert Invitation.objects.count() == 0


def test_letters_skip_none_of_the_email_checks(front_desk_client):
    # Two patients share an invalid address, and one had it changed just now:
    # for an email these are reasons to skip, for a letter they are not.
    first = letter_patient(given="First", email="shared")
    second = letter_patient(given="Second", email="shared")
    Patient.objects.filter(pk=second.pk).update(email_changed_at=timezone.now())

    plan = bulk_post(front_desk_client, [first, second]).context["plan"]

    assert plan.eligible == 2
    assert plan.skipped == {}


def test_required_code_prints_letters_for_patients_with_email(
    front_desk_client, settings
):
    settings.ACTIVATION_CODE_REQUIRED = True
    has_email = letter_patient(given="HasEmail", email="has.email@example.org")
    no_email = letter_patient(given="NoEmail")

    plan = bulk_post(front_desk_client, [has_email, no_email]).context["plan"]

    assert plan.eligible == 2
    assert "has_email" not in plan.skipped


def test_bulk_print_shows_letters_by_name(front_desk_client, front_desk):
    zeta = letter_patient(family="Zeta", given="Zoe")
    alpha = letter_patient(family="Alpha", given="Ari", email="bad@")
    skipped = letter_patient(family="Mail", given="Has", email="has@example.org")

    response = bulk_print(front_desk_client, [zeta, alpha, skipped])

    assert response.status_code == 200
    assert response.templates[0].name == "patients/letters.html"
    page = response.text
    names = re.findall(r'<strong class="letter-name">([^<]+)</strong>', page)
    assert names == ["Ari Alpha", "Zoe Zeta"]
    assert len(CODE_PATTERN.findall(page)) == 2
    assert '<tr data-reason="has_email"><td>Has an email address' in page

    letters = Invitation.objects.filter(channel=Invitation.Channel.LETTER)
    assert {letter.patient_id for letter in letters} == {zeta.pk, alpha.pk}
    for letter in letters:
        assert letter.delivery_status == Invitation.Delivery.PRINTED
        assert letter.get_delivery_status_display() == "Printed"
        assert letter.status == Invitation.Status.PENDING
        assert letter.created_by == front_desk
        assert letter.email == ""
        assert letter.salt == ""
    # Letters are never emailed, so nothing is queued for the worker.
    assert DBTaskResult.objects.count() == 0
    stored = BulkActionRequest.objects.get(idempotency_key="letters-1")
    assert stored.eligible == 2
    assert stored.skipped == {"has_email": 1}


def test_each_letter_is_audited_without_its_code(front_desk_client, front_desk):
    patients = [letter_patient(given=f"Reader{i}") for i in range(3)]

    page = bulk_print(front_desk_client, patients).text

    events = AuditEvent.objects.filter(action=AuditEvent.Action.LETTER)
    assert events.count() == 3
    letters = {
        letter.patient_id: letter.pk
        for letter in Invitation.objects.filter(channel=Invitation.Channel.LETTER)
    }
    for event in events:
        assert event.actor == front_desk
        assert event.actor_label == "frontdesk"
        assert event.get_action_display() == "Activation letter printed"
        assert event.detail == {"invitation_id": letters[event.patient_id]}
    for printed in CODE_PATTERN.findall(page):
        for form in (printed, printed.replace("-", "")):
            assert form not in repr(list(events.values()))


def test_codes_are_stored_nowhere_and_logged_nowhere(front_desk_client, caplog):
    caplog.set_level(logging.DEBUG)
    patient = letter_patient(family="Quist", given="Solveig")

    page = bulk_print(front_desk_client, [patient]).text
    (printed,) = CODE_PATTERN.findall(page)
    client = front_desk_client
    client.logout()
    enter_code(client, printed.lower())
    post_birth_date(client)
    sign_up(client, username="solveig")

    patient.refresh_from_db()
    assert patient.user is not None
    everything = stored_text()
    for form in (printed, printed.replace("-", ""), printed.lower()):
        assert form not in everything
        assert form not in caplog.text
    assert "Solveig" not in caplog.text
    assert "Quist" not in caplog.text


def test_repeated_confirmation_prints_nothing_again(front_desk_client):
    patient = letter_patient()
    first = bulk_print(front_desk_client, [patient], key="same-key")
    assert first.status_code == 200

    again = bulk_print(front_desk_client, [patient], key="same-key")

    assert again.status_code == 302
    assert "already carried out" in " ".join(messages_of(again))
    assert "1 activation letter printed" in " ".join(messages_of(again))
    assert Invitation.objects.count() == 1


def test_bulk_print_skips_recent_letter(front_desk_client):
    patient = letter_patient()
    bulk_print(front_desk_client, [patient], key="monday")

    response = bulk_print(front_desk_client, [patient], key="tuesday")

    assert response.status_code == 302
    assert messages_of(response) == [
        "0 activation letters printed, 1 skipped (Letter printed in the last few "
        "days (code still valid): 1)."
    ]
    assert Invitation.objects.count() == 1


def test_printing_needs_the_invitation_permission(read_only_client):
    patient = letter_patient()

    bulk = bulk_print(read_only_client, [patient])
    single = read_only_client.post(
        reverse("patient-letter", args=[patient.pk]), {"idempotency_key": "k"}
    )

    assert bulk.status_code == 403
    assert single.status_code == 403
    assert Invitation.objects.count() == 0


# The letter


def test_letter_content_without_clinical_data(front_desk_client, settings):
    settings.TIME_ZONE = "America/New_York"
    patient = letter_patient(family="Sørensen", given="Åse", email="bad-address")

    # A forged Host header must not change the address on the letter.
    response = front_desk_client.post(
        reverse("patient-letter", args=[patient.pk]),
        {"idempotency_key": "portal-page-1"},
        HTTP_HOST="localhost",
    )

    assert response.status_code == 200
    page = response.text
    article = page[page.index('<article class="letter"') :]
    assert "Riverside Family Practice" in article
    assert "Åse Sørensen" in article
    assert '<span class="letter-address">http://portal.test/activate/</span>' in article
    assert "localhost" not in article
    (printed,) = CODE_PATTERN.findall(article)
    letter = Invitation.objects.get(channel=Invitation.Channel.LETTER)
    assert letter.token_hash == codes.hash_code(printed.replace("-", ""))
    expiry = timezone.localtime(letter.expires_at)
    assert expiry.utcoffset() != datetime.timedelta(0)
    assert (
        f"until <strong>{expiry:%B} {expiry.day}, {expiry.year} at "
        f"{expiry.hour % 12 or 12}:{expiry:%M} {expiry:%p}</strong>"
    ) in article
    assert (
        letter.expires_at - letter.created_at
    ).days == settings.ACTIVATION_LETTER_VALID_DAYS
    for step in (
        "Open this address in a web browser",
        "Type this activation code",
        "Enter your date of birth",
        "Choose a username and a password",
    ):
        assert step in article
    for clinical in (
        "1980",
        "May 17",
        "05/17",
        "5/17",
        "bad-address",
        "Date of birth:",
    ):
        assert clinical not in page
    assert response["Cache-Control"] == "no-store"
    assert "style=" not in page
    assert "<script>" not in page


def test_portal_page_letter_button(front_desk_client):
    without = letter_patient(given="Without")
    with_email = letter_patient(given="With", email="with@example.org")

    offered = front_desk_client.get(reverse("patient-portal", args=[without.pk])).text
    refused = front_desk_client.get(
        reverse("patient-portal", args=[with_email.pk])
    ).text

    assert "Print an activation letter" in offered
    assert 'id="letter-blocked"' not in offered
    assert (
        "No letter can be printed. Has an email address: send an invitation instead."
        in refused
    )


def test_portal_page_letter_listed_as_printed(front_desk_client):
    patient = letter_patient()
    earlier = print_letter(patient, actor=None)

    response = front_desk_client.post(
        reverse("patient-letter", args=[patient.pk]), {"idempotency_key": "once"}
    )

    assert response.status_code == 200
    assert len(CODE_PATTERN.findall(response.text)) == 1
    assert Invitation.objects.get(pk=earlier.invitation_id).status == "superseded"
    assert AuditEvent.objects.filter(action="letter", patient=patient).count() == 2
    portal = front_desk_client.get(reverse("patient-portal", args=[patient.pk])).text
    assert portal.count("<td>Printed</td>") == 2


def test_reloading_the_letter_page_prints_no_new_code(front_desk_client):
    patient = letter_patient()
    url = reverse("patient-letter", args=[patient.pk])
    front_desk_client.post(url, {"idempotency_key": "reload-me"})

    again = front_desk_client.post(url, {"idempotency_key": "reload-me"})

    assert again.status_code == 302
    assert again.url == reverse("patient-portal", args=[patient.pk])
    assert "already printed" in " ".join(messages_of(again))
    assert Invitation.objects.count() == 1
    # The letters page has no address that a GET could open again.
    assert front_desk_client.get(url).status_code == 405


def test_portal_page_letter_refused_by_a_safety_check(front_desk_client):
    patient = letter_patient(email="someone@example.org")

    response = front_desk_client.post(
        reverse("patient-letter", args=[patient.pk]), {"idempotency_key": "k2"}
    )

    assert response.status_code == 302
    assert messages_of(response) == [
        "No letter was printed: Has an email address: send an invitation instead."
    ]
    assert Invitation.objects.count() == 0


def test_delivery_worker_leaves_letters_alone(db):
    letter = print_letter(letter_patient(), actor=None)
    invitation = Invitation.objects.get(pk=letter.invitation_id)

    report = deliver([invitation.pk])

    assert report.skipped == 1
    assert report.sent == 0
    assert mail.outbox == []
    invitation.refresh_from_db()
    assert invitation.delivery_status == Invitation.Delivery.PRINTED
    with pytest.raises(ValueError, match="printed letter"):
        _ = invitation.token


# The patient's path


def test_code_path_to_logged_in_patient(client, db):
    patient = letter_patient()
    letter = print_letter(patient, actor=None)

    form = client.get(reverse("activate"))
    assert form.status_code == 200
    assert "Activate your portal account" in form.text

    typed = " ".join(letter.printed_code.lower().split("-"))
    response = enter_code(client, typed)
    assert response.status_code == 302
    assert response.url == reverse("invitation-verify")
    assert client.session["invitation_id"] == letter.invitation_id

    assert post_birth_date(client).url == reverse("invitation-signup")
    assert sign_up(client).url == reverse("invitation-done")

    invitation = Invitation.objects.get(pk=letter.invitation_id)
    assert invitation.status == Invitation.Status.ACCEPTED
    login = client.post(
        reverse("portal-login"), {"username": "maren", "password": PASSWORD}
    )
    assert login.url == reverse("portal-home")
    home = client.get(login.url)
    assert home.status_code == 200
    patient.refresh_from_db()
    assert patient.last_login_at is not None


def test_mistyped_code_is_shown_again_with_the_reason(client, db):
    response = enter_code(client, "ABCD-EFGH-JKM0")

    assert response.status_code == 200
    assert "never contain the letters O, I or L or the digits 0 or 1" in response.text
    assert "invitation_id" not in client.session


def dead_code_page(client, code: str):
    response = enter_code(client, code)
    assert response.status_code == 302
    assert response.url == reverse("invitation-verify")
    return client.get(response.url)


def _used(patient, letter, client):
    enter_code(client, letter.code)
    post_birth_date(client)
    sign_up(client)


def _expired(patient, letter, client):
    Invitation.objects.filter(pk=letter.invitation_id).update(
        expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )


def _replaced_by_letter(patient, letter, client):
    print_letter(patient, actor=None)


def _access_disabled(patient, letter, client):
    set_access(patient, False, actor=None)


def _email_changed(patient, letter, client):
    change_email(patient, "new.address@example.org", actor=None)


def _locked(patient, letter, client):
    enter_code(client, letter.code)
    for _ in range(5):
        post_birth_date(client, datetime.date(1981, 1, 1))


@pytest.mark.parametrize(
    "kill",
    [
        _used,
        _expired,
        _replaced_by_letter,
        _access_disabled,
        _email_changed,
        _locked,
    ],
)
def test_dead_code_looks_like_a_dead_link(client, db, kill):
    patient = letter_patient()
    letter = print_letter(patient, actor=None)
    kill(patient, letter, client)

    from_code = dead_code_page(client, letter.code)
    from_link = dead_link_page(client)

    assert from_code.status_code == from_link.status_code == 404
    assert from_code.content == from_link.content
    assert "This link no longer works" in from_code.text


def test_unknown_code_looks_like_a_dead_link(client, db):
    letter_patient()

    assert dead_code_page(client, "ABCD-EFGH-JKMN").content == (
        dead_link_page(client).content
    )


def test_link_with_code_opens_nothing(client, db):
    letter = print_letter(letter_patient(), actor=None)

    client.get(reverse("invitation-link", args=[letter.code]))

    assert client.session["invitation_id"] is None


def test_new_letter_replaces_pending_invitation(db):
    patient = letter_patient(email="maren@example.org")
    invitation = make_invitation(patient)
    # The address disappears without an email change (one would revoke the
    # invitation itself), leaving a pending invitation to a patient without one.
    Patient.objects.filter(pk=patient.pk).update(
        email="", email_normalized="", email_valid=False
    )

    letter = print_letter(patient, actor=None)

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.SUPERSEDED
    assert invitation.delivery_status == Invitation.Delivery.CANCELLED
    assert find_letter(letter.code).pk == letter.invitation_id


def test_new_invitation_replaces_a_pending_letter(db, settings):
    patient = letter_patient(email="maren@example.org")
    settings.ACTIVATION_CODE_REQUIRED = True
    letter = print_letter(patient, actor=None)
    settings.ACTIVATION_CODE_REQUIRED = False

    make_invitation(patient)

    assert Invitation.objects.get(pk=letter.invitation_id).status == "superseded"
    assert find_letter(letter.code) is None


def test_wrong_dates_of_birth_lock_the_code(client, db):
    patient = letter_patient()
    letter = print_letter(patient, actor=None)
    enter_code(client, letter.code)

    for _ in range(4):
        response = post_birth_date(client, datetime.date(1981, 1, 1))
        # A wrong date of birth looks like a dead link; the code is typed again.
        assert response.status_code == 404
        enter_code(client, letter.code)
    last = post_birth_date(client, datetime.date(1981, 1, 1))

    assert last.status_code == 404
    invitation = Invitation.objects.get(pk=letter.invitation_id)
    assert invitation.status == Invitation.Status.LOCKED
    assert invitation.dob_failures == 5
    misses = AuditEvent.objects.filter(action="dob_mismatch", patient=patient)
    assert misses.count() == 5
    assert misses.first().detail["locked"] is True
    # The right date no longer helps.
    enter_code(client, letter.code)
    assert post_birth_date(client).status_code == 404


def test_code_tries_are_limited_per_client_address(client, db, settings):
    settings.PATIENT_ATTEMPT_LIMIT = 3
    letter = print_letter(letter_patient(), actor=None)
    for _ in range(3):
        assert enter_code(client, "ABCD-EFGH-JKMN").status_code == 302

    refused = enter_code(client, letter.code)

    assert refused.status_code == 429
    assert "Too many tries" in refused.text
    # Another address still gets through.
    other = client.post(
        reverse("activate"), {"code": letter.code}, REMOTE_ADDR="192.0.2.7"
    )
    assert other.status_code == 302
    assert client.session["invitation_id"] == letter.invitation_id


# With ACTIVATION_CODE_REQUIRED


@pytest.fixture
def required(settings):
    settings.ACTIVATION_CODE_REQUIRED = True


@pytest.fixture
def emailed_patient(db):
    return letter_patient(email="maren.lindqvist@example.org")


def open_link_and_confirm(client, invitation):
    client.get(reverse("invitation-link", args=[invitation.token]))
    return post_birth_date(client)


@pytest.mark.parametrize("letter_first", [True, False])
def test_required_mode_link_needs_letter_code(
    client, required, emailed_patient, letter_first
):
    if letter_first:
        letter = print_letter(emailed_patient, actor=None)
        invitation = make_invitation(emailed_patient)
    else:
        invitation = make_invitation(emailed_patient)
        letter = print_letter(emailed_patient, actor=None)
    other = print_letter(letter_patient(given="Other"), actor=None)

    assert open_link_and_confirm(client, invitation).url == reverse("invitation-signup")
    to_code = client.get(reverse("invitation-signup"))
    assert to_code.url == reverse("invitation-code")
    assert "Type your activation code" in client.get(to_code.url).text
    # Signing up without the code creates nothing.
    assert sign_up(client).url == reverse("invitation-code")

    wrong = client.post(reverse("invitation-code"), {"code": other.code})
    assert wrong.status_code == 200
    assert "That code does not work" in wrong.text

    right = client.post(
        reverse("invitation-code"), {"code": letter.printed_code.lower()}
    )
    assert right.url == reverse("invitation-signup")
    assert sign_up(client).url == reverse("invitation-done")

    emailed_patient.refresh_from_db()
    assert emailed_patient.user.username == "maren"
    for pk in (invitation.pk, letter.invitation_id):
        assert Invitation.objects.get(pk=pk).status == Invitation.Status.ACCEPTED
    assert find_letter(other.code) is not None
    accepted = AuditEvent.objects.get(action=AuditEvent.Action.ACCEPT)
    assert accepted.detail == {
        "invitation_id": invitation.pk,
        "letter_id": letter.invitation_id,
    }


def test_required_link_without_a_letter_goes_no_further(
    client, required, emailed_patient
):
    invitation = make_invitation(emailed_patient)
    open_link_and_confirm(client, invitation)

    response = client.post(reverse("invitation-code"), {"code": "ABCD-EFGH-JKMN"})

    assert "That code does not work" in response.text
    assert sign_up(client).url == reverse("invitation-code")
    emailed_patient.refresh_from_db()
    assert emailed_patient.user is None
    with pytest.raises(InvitationNotUsable):
        accept_invitation(invitation, username="maren", password=PASSWORD)


def test_required_mode_letter_works_alone(client, required, emailed_patient):
    letter = print_letter(emailed_patient, actor=None)

    enter_code(client, letter.code)
    post_birth_date(client)

    assert client.get(reverse("invitation-signup")).status_code == 200
    assert sign_up(client).url == reverse("invitation-done")


def test_without_the_setting_the_link_needs_no_code(client, emailed_patient):
    invitation = make_invitation(emailed_patient)
    open_link_and_confirm(client, invitation)

    assert client.get(reverse("invitation-code")).url == reverse("invitation-signup")
    assert sign_up(client).url == reverse("invitation-done")


def test_code_step_is_closed_before_the_birth_date(client, required, emailed_patient):
    invitation = make_invitation(emailed_patient)
    client.get(reverse("invitation-link", args=[invitation.token]))

    response = client.get(reverse("invitation-code"))

    assert response.status_code == 404
    assert "This link no longer works" in response.text


def test_required_mode_letters_keep_invitation(
    front_desk_client, required, emailed_patient
):
    invitation = make_invitation(emailed_patient)

    response = bulk_print(front_desk_client, [emailed_patient])

    assert response.status_code == 200
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING
    assert bulk.skip_reason(emailed_patient.pk, bulk.INVITE) == "recently_invited"
    # A letter printed days ago does not count as a recent invitation.
    Invitation.objects.filter(pk=invitation.pk).update(status="revoked")
    assert bulk.skip_reason(emailed_patient.pk, bulk.INVITE) == bulk.ELIGIBLE
    plan = print_letters(Patient.objects.filter(pk=emailed_patient.pk), actor=None)
    assert plan.skipped == {"recently_printed": 1}
