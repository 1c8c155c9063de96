"""The filters of the audit log page, shared by its CSV and FHIR exports."""

import datetime
import re

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from audit.models import AuditEvent
from patients.filters import AsciiDateField, check_date_range, is_valid_id
from patients.models import fold_name

# Dates outside these years are typing mistakes, and the end of the range
# leaves room to add the day that makes "to" inclusive.
EARLIEST_DATE = datetime.date(1900, 1, 1)
LATEST_DATE = datetime.date(2199, 12, 31)


def _date_field(label: str, help_text: str) -> forms.DateField:
    out_of_range = (
        "%(value)s is out of range. Enter a date between "
        f"{EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}."
    )
    return AsciiDateField(
        label=label,
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=help_text,
        error_messages={"invalid": "Enter a real date as YYYY-MM-DD."},
        validators=[
            MinValueValidator(EARLIEST_DATE, out_of_range),
            MaxValueValidator(LATEST_DATE, out_of_range),
        ],
    )


class AuditFilterForm(forms.Form):
    """The GET form above the audit log; every field is optional."""

    patient = forms.CharField(
        label="Patient id",
        required=False,
        max_length=40,
        help_text="The number in the address of the patient's page.",
        error_messages={
            "max_length": "This is too long for a patient id. Enter the number "
            "from the address of the patient's page, such as 42.",
        },
    )
    patient_name = forms.CharField(label="Patient name", required=False, max_length=200)
    user = forms.CharField(
        label="User",
        required=False,
        max_length=150,
        help_text="A username as the Who column shows it, or system or import.",
    )
    action = forms.ChoiceField(
        label="Action",
        choices=[("", "Any"), *AuditEvent.Action.choices],
        required=False,
    )
    outcome = forms.ChoiceField(
        label="Outcome",
        choices=[("", "Any"), *AuditEvent.Outcome.choices],
        required=False,
    )
    date_from = _date_field("From", "Includes this day.")
    date_to = _date_field("To", "Includes this day.")

    def clean_patient(self):
        value = self.cleaned_data["patient"]
        if value and not is_valid_id(value):
            raise forms.ValidationError(
                f"“{value}” is not a patient id. Enter the number from the "
                "address of the patient's page, such as 42, or search by name."
            )
        return int(value) if value else None

    def clean(self):
        cleaned = super().clean()
        check_date_range(self, "date_from", "date_to")
        return cleaned

    def active_params(self) -> list[tuple[str, str]]:
        """Return the submitted filter values as (name, value) pairs for links."""
        if not self.is_bound:
            return []
        # The form reads the last value of a repeated name, and so do links.
        pairs = [(name, self.data.get(name, "")) for name in self.fields]
        return [(name, value) for name, value in pairs if value != ""]


def _start_of_day(day: datetime.date) -> datetime.datetime:
    """Midnight at the start of DAY in the practice's time zone."""
    return datetime.datetime.combine(
        day, datetime.time.min, tzinfo=timezone.get_default_timezone()
    )


def filter_events(data: dict, events=None):
    """Return the events that match the cleaned filters of an AuditFilterForm."""
    events = AuditEvent.objects.all() if events is None else events
    if data.get("patient"):
        events = events.filter(patient_id=data["patient"])
    # Every word must be part of the name, accents and case aside, as in the
    # search of the onboarding list.
    for word in re.split(r"[\s,]+", data.get("patient_name") or ""):
        if word:
            events = events.filter(patient__search_name__contains=fold_name(word))
    if data.get("user"):
        events = events.filter(actor_label__iexact=data["user"])
    if data.get("action"):
        events = events.filter(action=data["action"])
    if data.get("outcome"):
        events = events.filter(outcome=data["outcome"])
    if data.get("date_from"):
        events = events.filter(created_at__gte=_start_of_day(data["date_from"]))
    if data.get("date_to"):
        next_day = data["date_to"] + datetime.timedelta(days=1)
        events = events.filter(created_at__lt=_start_of_day(next_day))
    return events
