from django import forms
from django.conf import settings

from .models import Label
from .uploads import check_image


class MultipleFilesError(forms.ValidationError):
    pass


class UploadForm(forms.Form):
    image = forms.FileField(
        label="Image",
        help_text="A JPEG, PNG or WebP photo with one or more faces.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )

    def clean_image(self):
        if len(self.files.getlist("image")) > 1:
            raise forms.ValidationError("Upload one image at a time.", code="too_many_files")
        upload = self.cleaned_data["image"]
        max_bytes = int(settings.DETECTOR_MAX_UPLOAD_MB * 1024 * 1024)
        if upload.size > max_bytes:  # before reading it into memory
            raise forms.ValidationError(
                f"The file is larger than {settings.DETECTOR_MAX_UPLOAD_MB:g} MB.", code="too_large"
            )
        upload.seek(0)
        self.checked = check_image(upload.read(max_bytes + 1), max_bytes, settings.DETECTOR_MAX_PIXELS)
        return upload


class HistoryFilterForm(forms.Form):
    label = forms.ChoiceField(choices=[("", "Any verdict")] + Label.choices, required=False)
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(label="File name", required=False, max_length=120)
