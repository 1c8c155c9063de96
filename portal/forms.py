"""Forms on the patient's side: the invitation pages, login and forgotten details."""

import calendar
import datetime

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import (
    AuthenticationForm,
    SetPasswordForm,
    SetPasswordMixin,
)
from django.utils import timezone

from patients.models import is_valid_email, normalize_email
from patients.services import normalize_username, validate_username

# Month names and their usual abbreviations, so "May", "sept" and "Sep." work.
MONTHS_BY_NAME = {
    **{name.lower(): number for number, name in enumerate(calendar.month_name) if name},
    **{name.lower(): number for number, name in enumerate(calendar.month_abbr) if name},
    "sept": 9,
}
OLDEST_BIRTH_YEAR = 1880


def _number_input(autocomplete: str, size: int) -> forms.TextInput:
    return forms.TextInput(
        attrs={
            "inputmode": "numeric",
            "autocomplete": autocomplete,
            "size": size,
            "maxlength": size,
        }
    )


class DateOfBirthForm(forms.Form):
    """The patient's date of birth as three typed parts: month, day and year."""

    month = forms.CharField(
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "bday-month", "size": 9, "maxlength": 12}
        ),
    )
    day = forms.CharField(max_length=2, widget=_number_input("bday-day", 2))
    year = forms.CharField(max_length=4, widget=_number_input("bday-year", 4))

    def clean_month(self) -> int:
        typed = self.cleaned_data["month"].strip().rstrip(".").lower()
        # isdecimal() accepts the digits of any script, which int() reads, but
        # not superscripts and other digit-like signs, which int() rejects.
        if typed.isdecimal() and 1 <= int(typed) <= 12:
            return int(typed)
        if typed in MONTHS_BY_NAME:
            return MONTHS_BY_NAME[typed]
        raise forms.ValidationError(
            "Enter the month as a number from 1 to 12 or as a name, "
            "for example 5 or May."
        )

    def clean_day(self) -> int:
        typed = self.cleaned_data["day"].strip()
        if typed.isdecimal() and 1 <= int(typed) <= 31:
            return int(typed)
        raise forms.ValidationError("Enter the day as a number from 1 to 31.")

    def clean_year(self) -> int:
        typed = self.cleaned_data["year"].strip()
        if not (typed.isdecimal() and len(typed) == 4):
            raise forms.ValidationError(
                "Enter the year with four digits, for example 1980."
            )
        return int(typed)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned

        try:
            birth_date = datetime.date(
                cleaned["year"], cleaned["month"], cleaned["day"]
            )
        except ValueError:
            raise forms.ValidationError(
                "That date does not exist. Check the day and the month."
            ) from None
        if birth_date > timezone.localdate():
            raise forms.ValidationError(
                "A date of birth cannot be in the future. Check the year."
            )
        if birth_date.year < OLDEST_BIRTH_YEAR:
            raise forms.ValidationError("Check the year: it is too long ago.")
        cleaned["birth_date"] = birth_date
        return cleaned


class SignupForm(SetPasswordMixin, forms.Form):
    """The username and password a patient chooses when accepting an invitation."""

    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none"}
        ),
        help_text="You will type this to log in. It cannot contain spaces.",
    )
    password1, password2 = SetPasswordMixin.create_password_fields(
        label2="Type the password again"
    )

    def __init__(self, *args, patient, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient

    def clean_username(self) -> str:
        return validate_username(self.cleaned_data["username"])

    def clean(self):
        cleaned = super().clean()
        self.validate_passwords()

        # The similarity check compares the password with these attributes,
        # so a password made of the patient's own name or address is rejected.
        candidate = get_user_model()(
            username=cleaned.get("username", ""),
            email=self.patient.email,
            first_name=self.patient.given_names[:150],
            last_name=self.patient.family_name[:150],
        )
        self.validate_password_for_user(candidate)
        return cleaned


class PatientAuthenticationForm(AuthenticationForm):
    """The portal login, which only patients' own accounts pass.

    A staff account, or any account not linked to a patient, gets the same
    error as a wrong password, so the form does not reveal which accounts
    exist. Django's backend already turns away inactive (disabled) users.
    """

    def clean_username(self) -> str:
        # Usernames are stored folded, so "Maren" logs in as "maren".
        return normalize_username(self.cleaned_data["username"])

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not is_patient_user(user):
            raise self.get_invalid_login_error()


def is_patient_user(user) -> bool:
    """Return whether USER is an active patient's login and not a staff account."""
    return (
        user.is_authenticated
        and user.is_active
        and not user.is_staff
        and not user.is_superuser
        and hasattr(user, "patient")
    )


class PasswordResetRequestForm(forms.Form):
    identifier = forms.CharField(
        label="Username or email address",
        max_length=320,
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none"}
        ),
    )


class ForgotUsernameForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=320,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )


class EmailChangeForm(forms.Form):
    """A new email address, with the current password as proof of identity."""

    email = forms.EmailField(
        label="New email address",
        max_length=320,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        label="Your current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your current password.")
        return password

    def clean_email(self) -> str:
        address = self.cleaned_data["email"]
        if not is_valid_email(address):
            raise forms.ValidationError(
                "This address contains an invisible or unusual character. "
                "Type it again by hand."
            )
        if normalize_email(address) == self.user.patient.email_normalized:
            raise forms.ValidationError("This is already your email address.")
        return address


class ResetPasswordForm(DateOfBirthForm, SetPasswordForm):
    """A new password from a reset link, after the patient's date of birth.

    The date of birth is checked as in an invitation, so that another reader
    of a shared mailbox cannot take over the account from the link.
    """

    field_order = ["month", "day", "year", "new_password1", "new_password2"]

    def clean(self):
        cleaned = super().clean()
        birth_date = cleaned.get("birth_date")
        patient = getattr(self.user, "patient", None)
        if birth_date is not None and (
            patient is None or patient.birth_date != birth_date
        ):
            raise forms.ValidationError(
                "That date of birth does not match the practice's records. "
                "Check it and try again.",
                code="birth_date_mismatch",
            )
        return cleaned
