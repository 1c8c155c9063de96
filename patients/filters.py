"""The onboarding list's filters, search, portal state, sorting and snapshot counts.

Everything here builds querysets; the database does the filtering, counting
and sorting, so the list stays fast however many patients a practice has.
Filters that look into related tables use EXISTS subqueries, which never
repeat a patient the way a join would.
"""

import datetime
import re

from django import forms
from django.db.models import (
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
from django.utils import timezone

from invitations.models import Invitation
from patients.models import Appointment, Patient, Practitioner, Tag

ANY_YES_NO = [("", "Any"), ("yes", "Yes"), ("no", "No")]

# Sort keys offered by the column headers, and the field each one orders by.
SORT_FIELDS = {
    "name": "sort_name",
    "dob": "birth_date",
    "invite": "last_invite_sent_at",
    "login": "last_login_at",
}
DEFAULT_SORT = "name"

# A search made only of digits and separators is read as a date of birth.
DATE_LIKE = re.compile(r"^[\d\s/.-]+$")
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")

State = Patient.PortalState


class PatientFilterForm(forms.Form):
    """The GET form above the list; every field is optional."""

    q = forms.CharField(label="Search", required=False, max_length=200, strip=True)
    tags = forms.ModelMultipleChoiceField(
        label="Tags",
        queryset=Tag.objects.all(),
        required=False,
        help_text="Patients with at least one of the selected tags.",
    )
    provider = forms.ModelChoiceField(
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
    appointment_after = forms.DateField(
        label="Appointment scheduled after",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Includes this date.",
    )
    appointment_before = forms.DateField(
        label="Appointment scheduled before",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Includes this date.",
    )

    def clean_q(self):
        text = self.cleaned_data["q"]
        if text and DATE_LIKE.match(text):
            self.cleaned_data["birth_date"] = parse_birth_date(text)
        return text

    def clean(self):
        cleaned = super().clean()
        after = cleaned.get("appointment_after")
        before = cleaned.get("appointment_before")
        if after and before and after > before:
            self.add_error(
                "appointment_before",
                f"The range ends ({before:%Y-%m-%d}) before it starts "
                f"({after:%Y-%m-%d}). Swap the two dates.",
            )
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


def latest_delivery_status():
    """Return a subquery of the delivery status of the newest invitation, or NULL."""
    newest = Invitation.objects.filter(patient=OuterRef("pk")).order_by(
        "-created_at", "-id"
    )
    return Subquery(newest.values("delivery_status")[:1])


def portal_state_expression():
    """Patient.portal_state as SQL, over a ``latest_delivery`` alias.

    The order of the cases matches the model method, so the badge, the state
    filter and the per-patient page agree.
    """
    return Case(
        When(last_login_at__isnull=False, then=Value(State.LOGGED_IN)),
        When(user__isnull=False, then=Value(State.ACCOUNT_SET_UP)),
        When(
            portal_access=True,
            latest_delivery=Invitation.Delivery.FAILED,
            then=Value(State.INVITE_FAILED),
        ),
        When(
            portal_access=True,
            latest_delivery__isnull=False,
            then=Value(State.INVITED),
        ),
        When(portal_access=True, then=Value(State.ENABLED)),
        default=Value(State.NOT_ENABLED),
        output_field=CharField(),
    )


def with_portal_state(patients):
    """Annotate ``portal_state_value`` (a PortalState value) on each patient."""
    return patients.alias(latest_delivery=latest_delivery_status()).annotate(
        portal_state_value=portal_state_expression()
    )


def _search(patients, data):
    if data.get("birth_date"):
        return patients.filter(birth_date=data["birth_date"])

    # Every word must match the name. sort_name contains "family given" in lower
    # case, so "doe jane" and "jane doe" both find Jane Doe.
    for word in re.split(r"[\s,]+", data["q"]):
        if word:
            patients = patients.filter(
                Q(sort_name__contains=word.lower())
                | Q(family_name__icontains=word)
                | Q(given_names__icontains=word)
            )
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
        tagged = Patient.tags.through.objects.filter(
            patient=OuterRef("pk"), tag__in=data["tags"]
        )
        patients = patients.filter(Exists(tagged))

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

    if data.get("state"):
        patients = patients.alias(
            latest_delivery=latest_delivery_status(),
            filtered_state=portal_state_expression(),
        ).filter(filtered_state=data["state"])

    return patients


def order_patients(patients, sort: str):
    """Order by a SORT_FIELDS key, "-" first for descending; blanks sort last."""
    key = sort.removeprefix("-")
    if key not in SORT_FIELDS:
        key, sort = DEFAULT_SORT, DEFAULT_SORT
    field = F(SORT_FIELDS[key])
    if sort.startswith("-"):
        return patients.order_by(field.desc(nulls_last=True), "-id")
    return patients.order_by(field.asc(nulls_last=True), "id")


def snapshot(patients) -> dict[str, int]:
    """Count the filtered patients and how far they got, in one query."""
    invited = Invitation.objects.filter(patient=OuterRef("pk"))
    return patients.order_by().aggregate(
        total=Count("pk"),
        with_access=Count("pk", filter=Q(portal_access=True)),
        invited=Count("pk", filter=Q(Exists(invited))),
        with_username=Count("pk", filter=Q(user__isnull=False)),
        logged_in=Count("pk", filter=Q(last_login_at__isnull=False)),
    )
