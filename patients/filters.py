"""The onboarding list's filters, search, portal state, sorting and snapshot counts.

Everything here builds querysets; the database does the filtering, counting
and sorting, so the list stays fast however many patients a practice has.
Filters that look into related tables use EXISTS subqueries, which never
repeat a patient the way a join would.
"""

import datetime
import re

from django import forms
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Lower
from django.db.models.lookups import In
from django.utils import timezone

from invitations.models import Invitation
from patients import bulk
from patients.models import Appointment, Patient, Practitioner, Tag, fold_name

ANY_YES_NO = [("", "Any"), ("yes", "Yes"), ("no", "No")]

# Sort keys offered by the column headers, and the field each one orders by.
SORT_FIELDS = {
    "name": "sort_name",
    "dob": "birth_date",
    "invite": "last_invite_sent_at",
    "login": "last_login_at",
}
DEFAULT_SORT = "name"

# The largest primary key the databases store (a signed 64-bit integer).
MAX_ID = 2**63 - 1
# Appointment dates outside these years are typing mistakes, and the end of
# the range must leave room to add a day.
EARLIEST_DATE = datetime.date(1900, 1, 1)
LATEST_DATE = datetime.date(2199, 12, 31)


def is_valid_id(value: str) -> bool:
    """Tell whether VALUE is a primary key as ASCII digits, from 1 to MAX_ID."""
    return value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID


def check_date_range(form: forms.Form, start_name: str, end_name: str) -> None:
    """Add an error to FORM's END_NAME field when its range ends before it starts."""
    start = form.cleaned_data.get(start_name)
    end = form.cleaned_data.get(end_name)
    if start and end and start > end:
        form.add_error(
            end_name,
            f"The range ends ({end:%Y-%m-%d}) before it starts "
            f"({start:%Y-%m-%d}). Swap the two dates.",
        )


class TagChoiceField(forms.ModelMultipleChoiceField):
    """The tags filter; an id that is not a number in range is invalid, not a crash."""

    def _check_values(self, value):
        for choice in value:
            if not is_valid_id(str(choice)):
                raise forms.ValidationError(
                    f"“{choice}” is not one of the practice's tags. "
                    "Choose tags from the list.",
                    code="invalid_pk_value",
                )
        return super()._check_values(value)


class ProviderChoiceField(forms.ModelChoiceField):
    """The provider filter; an id that is not ASCII digits in range is invalid."""

    def to_python(self, value):
        if value not in self.empty_values and not is_valid_id(str(value)):
            raise forms.ValidationError(
                f"“{value}” is not one of the practice's providers. "
                "Choose one from the list.",
                code="invalid_choice",
            )
        return super().to_python(value)


class AsciiDateField(forms.DateField):
    """A date typed with ASCII digits, as the browser's date box sends it.

    Python reads the digits of any script in a date, which the date box could
    not then show, so the filter would apply without being visible.
    """

    def to_python(self, value):
        if isinstance(value, str) and not value.isascii():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


def _appointment_date(label: str) -> forms.DateField:
    out_of_range = (
        f"Enter a date between {EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}."
    )
    return AsciiDateField(
        label=label,
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Includes this date.",
        validators=[
            MinValueValidator(EARLIEST_DATE, out_of_range),
            MaxValueValidator(LATEST_DATE, out_of_range),
        ],
    )


# A search made only of digits and separators is read as a date of birth.
DATE_LIKE = re.compile(r"^[\d\s/.-]+$")
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")

State = Patient.PortalState


class PatientFilterForm(forms.Form):
    """The GET form above the list; every field is optional."""

    q = forms.CharField(label="Search", required=False, max_length=200, strip=True)
    tags = TagChoiceField(
        label="Tags",
        queryset=Tag.objects.all(),
        required=False,
        help_text="Patients with at least one of the selected tags.",
    )
    provider = ProviderChoiceField(
        label="Primary provider",
        queryset=Practitioner.objects.all(),
        required=False,
        empty_label="Any",
    )
    access = forms.ChoiceField(
        label="Has portal access", choices=ANY_YES_NO, required=False
    )
    username = forms.ChoiceField(
        label="Has a username", choices=ANY_YES_NO, required=False
    )
    state = forms.ChoiceField(
        label="Portal state",
        choices=[("", "Any"), *State.choices],
        required=False,
    )
    check = forms.ChoiceField(
        label="Safety check",
        choices=lambda: _check_choices(),
        required=False,
        help_text="Patients this check applies to. A bulk action skips them, "
        "counted under the first reason that applies.",
    )
    appointment_after = _appointment_date("Appointment scheduled after")
    appointment_before = _appointment_date("Appointment scheduled before")

    def clean_q(self):
        text = self.cleaned_data["q"]
        if text and DATE_LIKE.match(text):
            self.cleaned_data["birth_date"] = parse_birth_date(text)
        return text

    def clean(self):
        cleaned = super().clean()
        check_date_range(self, "appointment_after", "appointment_before")
        return cleaned

    def active_params(self) -> list[tuple[str, str]]:
        """Return the submitted filter values as (name, value) pairs for forms."""
        if not self.is_bound:
            return []
        pairs = []
        for name in self.fields:
            for value in self.data.getlist(name):
                if value != "":
                    pairs.append((name, value))
        return pairs


# The "turns 18 soon" choice of the safety check filter looks this far ahead.
TURNING_ADULT_DAYS = 30


def _check_choices() -> list[tuple[str, str]]:
    return [
        ("", "Any"),
        *bulk.SKIP_REASONS_SAFETY.items(),
        *(
            (reason, bulk.SKIP_REASONS[reason])
            for reason in ("deceased", "inactive", "recently_invited")
        ),
        (
            "turning_adult",
            f"Turns {settings.AGE_OF_MAJORITY} in the next {TURNING_ADULT_DAYS} days",
        ),
    ]


def parse_birth_date(text: str) -> datetime.date:
    compact = re.sub(r"\s+", "", text)
    for date_format in DATE_FORMATS:
        try:
            return datetime.datetime.strptime(compact, date_format).date()
        except ValueError:
            continue
    raise forms.ValidationError(
        f"“{text}” is not a valid date of birth. "
        "Enter it as YYYY-MM-DD or MM/DD/YYYY, or search by name."
    )


def _start_of_day(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(
        datetime.datetime.combine(day, datetime.time.min),
        timezone.get_current_timezone(),
    )


def _newest_invitation():
    return Invitation.objects.filter(patient=OuterRef("pk")).order_by(
        "-created_at", "-id"
    )


def latest_delivery_status():
    """Return a subquery of the delivery status of the newest invitation, or NULL."""
    return Subquery(_newest_invitation().values("delivery_status")[:1])


def latest_invitation_usable():
    """Return a subquery telling whether the newest invitation's link still works."""
    usable = _newest_invitation().annotate(
        usable=Case(
            When(
                status=Invitation.Status.PENDING,
                expires_at__gt=timezone.now(),
                then=Value(True),
            ),
            default=Value(False),
            output_field=BooleanField(),
        )
    )
    return Subquery(usable.values("usable")[:1])


def _with_state_aliases(patients):
    return patients.alias(
        latest_delivery=latest_delivery_status(),
        latest_usable=latest_invitation_usable(),
    )


def portal_state_expression():
    """Patient.portal_state as SQL, over the aliases of _with_state_aliases().

    The order of the cases matches the model method, so the badge, the state
    filter and the per-patient page agree.
    """
    return Case(
        When(portal_access=False, then=Value(State.NOT_ENABLED)),
        When(last_login_at__isnull=False, then=Value(State.LOGGED_IN)),
        When(user__isnull=False, then=Value(State.ACCOUNT_SET_UP)),
        When(
            latest_delivery=Invitation.Delivery.FAILED,
            then=Value(State.INVITE_FAILED),
        ),
        When(latest_usable=False, then=Value(State.INVITE_LAPSED)),
        When(latest_delivery__isnull=False, then=Value(State.INVITED)),
        default=Value(State.ENABLED),
        output_field=CharField(),
    )


def with_portal_state(patients):
    """Annotate ``portal_state_value`` (a PortalState value) on each patient."""
    return _with_state_aliases(patients).annotate(
        portal_state_value=portal_state_expression()
    )


def _search(patients, data):
    if data.get("birth_date"):
        return patients.filter(birth_date=data["birth_date"])

    # Every word must match the name. search_name contains "family given"
    # folded, so "doe jane", "jane doe" and "lea" for "Léa" all match.
    for word in re.split(r"[\s,]+", data["q"]):
        if word:
            patients = patients.filter(search_name__contains=fold_name(word))
    return patients


def _yes_no(patients, choice, condition):
    if choice == "yes":
        return patients.filter(condition)
    if choice == "no":
        return patients.exclude(condition)
    return patients


def filter_patients(data, patients=None):
    """Apply the valid fields of PatientFilterForm.cleaned_data to a queryset."""
    patients = Patient.objects.all() if patients is None else patients

    if data.get("q"):
        patients = _search(patients, data)

    if data.get("tags"):
        # The tagged patients are gathered once (IN) rather than looked up
        # for each patient, which lets SQLite count only them.
        tagged = Patient.tags.through.objects.filter(
            tag__in=[tag.pk for tag in data["tags"]]
        ).values("patient_id")
        patients = patients.filter(pk__in=tagged)

    if data.get("provider"):
        patients = patients.filter(primary_provider=data["provider"])

    patients = _yes_no(patients, data.get("access"), Q(portal_access=True))
    patients = _yes_no(patients, data.get("username"), Q(user__isnull=False))

    after = data.get("appointment_after")
    before = data.get("appointment_before")
    if after or before:
        scheduled = Appointment.objects.filter(patient=OuterRef("pk")).exclude(
            status__in=Appointment.NOT_SCHEDULED
        )
        if after:
            scheduled = scheduled.filter(start__gte=_start_of_day(after))
        if before:
            next_day = before + datetime.timedelta(days=1)
            scheduled = scheduled.filter(start__lt=_start_of_day(next_day))
        patients = patients.filter(Exists(scheduled))

    if data.get("check") == "turning_adult":
        patients = patients.filter(
            bulk.turning_adult(timezone.now(), TURNING_ADULT_DAYS)
        )
    elif data.get("check") == "shared_email":
        patients = patients.filter(_shares_email(patients))
    elif data.get("check"):
        now = timezone.now()
        conditions = {**bulk.safety_conditions(now), **bulk.record_conditions(now)}
        patients = patients.filter(conditions[data["check"]])

    if data.get("state"):
        patients = _filter_state(patients, data["state"])

    return patients


def _on_sqlite(patients) -> bool:
    return connections[patients.db].vendor == "sqlite"


def _shares_email(patients):
    """Return the shared-address check of bulk.safety_conditions(), for a whole list.

    The addresses of more than one patient are gathered once, in one pass
    over the address index, instead of one lookup for every patient listed.
    A single patient's check keeps the lookup, which reads far less.
    """
    shared = (
        Patient.objects.exclude(email_normalized="")
        .order_by()
        .values("email_normalized")
        .annotate(patients=Count("pk"))
        .filter(patients__gt=1)
        .values("email_normalized")
    )
    if not _on_sqlite(patients):
        # One IN, outside any OR, which PostgreSQL turns into a join. An IN
        # within an OR becomes a hash in work_mem, or a scan for each patient.
        return ~Q(email_normalized="") & Q(
            email_normalized__in=shared.union(
                Patient.objects.filter(
                    email_normalized__in=bulk.practitioner_addresses()
                ).values("email_normalized")
            )
        )
    # Lower() of the already lower-case address hides its index. Otherwise
    # SQLite gathers every match through it and sorts them all for one page.
    address = Lower("email_normalized")
    return ~Q(email_normalized="") & (
        Q(In(address, shared)) | Q(In(address, bulk.practitioner_addresses()))
    )


def _filter_state(patients, state: str):
    """Keep the patients in portal STATE, as portal_state_expression() names it.

    The states before an invitation, and "enabled" without one, are plain
    conditions on the patient, which SQLite and PostgreSQL test without
    looking up each patient's newest invitation.
    """
    if _on_sqlite(patients):
        never_invited = ~Q(pk__in=Invitation.objects.values("patient_id"))
    else:
        # NOT IN would make PostgreSQL hash every invited id, or scan them
        # for every patient when they exceed work_mem. NOT EXISTS is an anti-join.
        never_invited = ~Q(Exists(Invitation.objects.filter(patient=OuterRef("pk"))))
    # "Not (has a user)" rather than "user is null": SQLite would read most
    # patients through the unique index on user for the latter, then sort them.
    waiting = Q(portal_access=True, last_login_at__isnull=True) & ~Q(user__isnull=False)
    conditions = {
        State.NOT_ENABLED: Q(portal_access=False),
        State.LOGGED_IN: Q(portal_access=True, last_login_at__isnull=False),
        State.ACCOUNT_SET_UP: Q(
            portal_access=True, last_login_at__isnull=True, user__isnull=False
        ),
        State.ENABLED: waiting & never_invited,
    }
    if state in conditions:
        return patients.filter(conditions[state])
    return (
        _with_state_aliases(patients.filter(waiting))
        .alias(filtered_state=portal_state_expression())
        .filter(filtered_state=state)
    )


def order_patients(patients, sort: str, *, searched: bool = False):
    """Order by a SORT_FIELDS key, "-" first for descending; blanks sort last.

    SEARCHED is true when a name search narrowed the patients.
    """
    key = sort.removeprefix("-")
    if key not in SORT_FIELDS:
        key, sort = DEFAULT_SORT, DEFAULT_SORT
    name = SORT_FIELDS[key]
    field = F(name)
    if searched and key == "name":
        # The patients a name search finds sit together in name order, so
        # walking the name index to the first page can read most of the
        # table. Lower() of the already lower-case name hides that index,
        # and the database sorts the few matches instead.
        field = Lower(name)
    # A column that is never blank is ordered plainly, so that PostgreSQL can
    # read its index backwards for the descending order.
    nulls_last = True if Patient._meta.get_field(name).null else None
    if sort.startswith("-"):
        return patients.order_by(field.desc(nulls_last=nulls_last), "-id")
    return patients.order_by(field.asc(nulls_last=nulls_last), "id")


def snapshot(patients) -> dict[str, int]:
    """Count the filtered patients and how far they got.

    A patient with any invitation counts as invited. SQLite looks that up
    for each patient, fastest against the invited ids gathered once (IN).
    PostgreSQL would run a subquery per patient there, and could not hash an
    IN list of a large practice within its default work_mem, so it joins the
    filtered patients to the invited ids instead (_postgresql_snapshot).
    """
    patients = patients.order_by()
    if connections[patients.db].vendor == "postgresql":
        return _postgresql_snapshot(patients)
    invited_ids = Invitation.objects.values("patient_id")
    return patients.aggregate(
        total=Count("pk"),
        with_access=Count("pk", filter=Q(portal_access=True)),
        invited=Count("pk", filter=Q(pk__in=invited_ids)),
        with_username=Count("pk", filter=Q(user__isnull=False)),
        logged_in=Count("pk", filter=Q(last_login_at__isnull=False)),
    )


SNAPSHOT_COUNTS = ("total", "with_access", "with_username", "logged_in", "invited")
# The filters run once, in the inner query. A hash or merge join then finds
# the invited patients among them, whatever the size of the practice.
POSTGRESQL_SNAPSHOT = """
    SELECT COUNT(*),
        COUNT(*) FILTER (WHERE matched.portal_access),
        COUNT(*) FILTER (WHERE matched.user_id IS NOT NULL),
        COUNT(*) FILTER (WHERE matched.last_login_at IS NOT NULL),
        COUNT(invited.patient_id)
    FROM ({patients}) AS matched
    LEFT JOIN (SELECT DISTINCT patient_id FROM {invitations}) AS invited
        ON invited.patient_id = matched.id
"""


def _postgresql_snapshot(patients) -> dict[str, int]:
    connection = connections[patients.db]
    columns = patients.values("id", "portal_access", "user_id", "last_login_at")
    try:
        sql, params = columns.query.get_compiler(using=patients.db).as_sql()
    except EmptyResultSet:
        return dict.fromkeys(SNAPSHOT_COUNTS, 0)
    statement = POSTGRESQL_SNAPSHOT.format(
        patients=sql,
        invitations=connection.ops.quote_name(Invitation._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return dict(zip(SNAPSHOT_COUNTS, row, strict=True))
