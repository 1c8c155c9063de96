"""The upload form of the imports page."""

from django import forms
from django.core.exceptions import ValidationError

from imports.uploads import UploadRejected, check_upload


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="Export file",
        # The upload handler and check_upload give the messages, with the
        # file's name; an empty file is one of them.
        required=False,
        allow_empty_file=True,
        widget=forms.FileInput(attrs={"accept": ".json,.ndjson,.jsonl,.csv,.zip"}),
        help_text=(
            "A FHIR bundle (.json), Bulk Data NDJSON (.ndjson), a CSV file, or a "
            ".zip of the .ndjson files of one Bulk Data export."
        ),
    )
    source = forms.CharField(
        label="Source name",
        required=False,
        max_length=100,
        help_text=(
            'Leave empty to use "fhir" for FHIR files and "csv" for CSV files. '
            "Patients are matched by source and id, so use the same name every "
            "time you import from one EHR."
        ),
    )

    def __init__(self, *args, rejection: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Why the upload handler did not keep the file, if it did not.
        self.rejection = rejection

    def clean_file(self):
        uploaded = self.cleaned_data.get("file")
        if self.rejection:
            raise ValidationError(self.rejection)
        if not uploaded:
            raise ValidationError("Choose the export file to upload.")
        try:
            check_upload(uploaded)
        except UploadRejected as error:
            raise ValidationError(str(error)) from None
        return uploaded

    def clean_source(self):
        return self.cleaned_data["source"].strip()
