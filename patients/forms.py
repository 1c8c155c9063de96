from django import forms
from django.contrib.auth.forms import AuthenticationForm

from patients.models import is_valid_email


class StaffAuthenticationForm(AuthenticationForm):
    """The staff login; patients' accounts are rejected here."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "not_staff": (
            "This login is for practice staff. Patients log in on the patient portal."
        ),
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise forms.ValidationError(
                self.error_messages["not_staff"], code="not_staff"
            )


class UsernameForm(forms.Form):
    username = forms.CharField(label="New username", max_length=150)


class EmailForm(forms.Form):
    email = forms.EmailField(label="New email address", max_length=320)

    def clean_email(self) -> str:
        address = self.cleaned_data["email"]
        if not is_valid_email(address):
            raise forms.ValidationError(
                "This address contains an invisible or unusual character. "
                "Type it again by hand."
            )
        return address
