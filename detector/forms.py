from django import forms
from django.forms.utils import ErrorDict

from .models import Label
from .uploads import ACCEPTED_TYPES, check_batch, check_upload


class UploadForm(forms.Form):
    image = forms.FileField(
        label="Image or video",
        help_text="A JPEG, PNG, WebP, HEIC or AVIF photo, or an MP4, MOV, WebM or MKV video, with one or more faces.",
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPTED_TYPES}),
    )

    def clean_image(self):
        if len(self.files.getlist("image")) > 1:
            raise forms.ValidationError("Upload one file at a time.", code="too_many_files")
        upload = self.cleaned_data["image"]
        self.checked = check_upload(upload)
        return upload


class LinkForm(forms.Form):
    """A check by link: the server fetches the file (``services.fetch``)."""

    url = forms.URLField(
        label="Or check a link to an image or a video",
        max_length=2000,
        assume_scheme="https",
        help_text="The address of the file itself (ending in .jpg, .mp4 and the like), not of the page it is on.",
        widget=forms.URLInput(attrs={"placeholder": "https://…", "inputmode": "url", "autocomplete": "off"}),
    )


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class BatchUploadForm(forms.Form):
    """Many images at once; each file is checked on its own later, so that one bad file stops no other."""

    images = forms.Field(
        label="Images and videos",
        help_text="JPEG, PNG, WebP, HEIC or AVIF photos, or MP4, MOV, WebM or MKV videos, with faces.",
        error_messages={"required": "Choose one or more images or videos."},
        widget=MultipleFileInput(attrs={"accept": ACCEPTED_TYPES, "multiple": True}),
    )

    def clean_images(self):
        return check_batch(self.files.getlist("images"))


class HistoryFilterForm(forms.Form):
    label = forms.ChoiceField(choices=[("", "Any verdict")] + Label.choices, required=False)
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(label="File name", required=False, max_length=120)


def refused_form(form_class, message: str) -> forms.Form:
    """An empty form that carries one refusal, for a request answered before anything it sent was read."""
    form = form_class()
    form._errors = ErrorDict({forms.forms.NON_FIELD_ERRORS: form.error_class([message], error_class="nonfield")})
    return form
