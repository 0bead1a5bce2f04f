from django import forms
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect
from django.views.generic import CreateView, FormView

from .services.privacy import delete_account


class SignUpView(CreateView):
    """Create an account and log in; checks made anonymously in this session move to it."""

    form_class = UserCreationForm
    template_name = "registration/signup.html"

    def form_valid(self, form):
        user = form.save()
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(self.request, f"Welcome, {user.get_username()}: your account is ready.")
        return redirect("detector:history")


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password; nothing was deleted.", code="wrong_password")
        return password


class AccountDeleteView(LoginRequiredMixin, FormView):
    """Delete the account with every check of it and every file made from them, after the password is given."""

    form_class = PasswordConfirmForm
    template_name = "registration/account_delete.html"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def form_valid(self, form):
        user = self.request.user
        name = user.get_username()
        count = delete_account(user)
        logout(self.request)
        messages.success(self.request, f"The account {name} and its {count} check(s) were deleted, files and all.")
        return redirect("detector:upload")
