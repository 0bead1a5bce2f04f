import logging
from http import HTTPStatus

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.views.generic import CreateView, FormView
from django_ratelimit.core import get_usage

from .models import Webhook
from .services import tokens, webhooks
from .services.outbound import UrlRefused
from .services.privacy import delete_account

log = logging.getLogger(__name__)


def _email(group, request) -> str:
    return request.POST.get("email", "").strip().lower()


class ThrottledMixin:
    """A form view whose POSTs are limited per client address and, where it names one, per e-mail address.

    ``throttles``: (group, key, setting of the rate, counted on every POST or only on success). Over a limit the
    form is shown again with the reason and a 429, and nothing is done. Where the cache that keeps the counts is
    down the form goes through uncounted (as uploads do with ``DETECTOR_RATE_LIMIT_FAIL_OPEN``)."""

    throttles: tuple = ()
    refused_message = "Too many attempts from here; please try again in an hour."

    def _usage(self, group, key, setting, increment: bool) -> dict | None:
        rate = getattr(settings, setting)
        if not rate:
            return None
        try:
            return get_usage(self.request, group=group, key=key, rate=rate, increment=increment)
        except Exception:  # the cache backend's own errors
            log.exception("%s: the cache that counts attempts does not answer", group)
            return None

    def post(self, request, *args, **kwargs):
        over = []
        for group, key, setting, on_success in self.throttles:
            usage = self._usage(group, key, setting, increment=not on_success)  # this attempt counted, or not yet
            if usage and (usage["count"] >= usage["limit"] if on_success else usage["should_limit"]):
                over.append(usage)
        if over:
            self.object = None  # a CreateView's page names the object it would have made
            form = self.get_form()
            form.add_error(None, self.refused_message)
            response = self.render_to_response(self.get_context_data(form=form), status=HTTPStatus.TOO_MANY_REQUESTS)
            response["Retry-After"] = str(max(1, max(int(u["time_left"]) for u in over)))
            return response
        return super().post(request, *args, **kwargs)

    def count_success(self) -> None:
        """Count the throttles that count successes only (an account made), once it succeeded."""
        for group, key, setting, on_success in self.throttles:
            if on_success:
                self._usage(group, key, setting, increment=True)


class SignUpForm(UserCreationForm):
    """An account: a name and a password, and an e-mail address only if the person wants password resets."""

    email = forms.EmailField(
        label="E-mail address (optional)",
        required=False,
        help_text="Only to send you a link if you forget your password, where this server sends mail.",
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class SignUpView(ThrottledMixin, CreateView):
    """Create an account and log in; checks made anonymously in this session move to it. A client address makes at
    most ``DETECTOR_SIGNUP_RATE`` accounts."""

    form_class = SignUpForm
    template_name = "registration/signup.html"
    throttles = (("detector.signup", "ip", "DETECTOR_SIGNUP_RATE", True),)
    refused_message = "Too many accounts were made from this address; please try again later."

    def form_valid(self, form):
        self.count_success()
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


class PasswordResetView(ThrottledMixin, auth_views.PasswordResetView):
    """Django's reset, limited per e-mail address (no inbox gets a flood of links) and per client address (no one
    probes many addresses); only where this server sends mail (elsewhere the page says so)."""

    def dispatch(self, request, *args, **kwargs):
        if not settings.DETECTOR_SENDS_MAIL:
            return self.response_class(
                request, "registration/password_reset_unavailable.html", status=HTTPStatus.NOT_FOUND
            )
        return super().dispatch(request, *args, **kwargs)

    throttles = (
        ("detector.password_reset.email", _email, "DETECTOR_PASSWORD_RESET_RATE", False),
        ("detector.password_reset.client", "ip", "DETECTOR_PASSWORD_RESET_CLIENT_RATE", False),
    )
    refused_message = "Too many reset requests; please wait an hour and look in your mailbox for the last link."


class EmailForm(forms.Form):
    email = forms.EmailField(
        label="E-mail address",
        required=False,
        help_text="Optional. Only used to send you a link to reset your password, where this server sends mail.",
    )


class AccountView(LoginRequiredMixin, FormView):
    """The account: its e-mail address (for password resets), the password, API keys, callbacks, deletion."""

    form_class = EmailForm
    template_name = "registration/account.html"
    success_url = reverse_lazy("account")

    def get_initial(self):
        return {"email": self.request.user.email}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context["token_count"] = tokens.live(user).count()
        context["webhooks"] = Webhook.objects.filter(user=user)
        return context

    def form_valid(self, form):
        user = self.request.user
        user.email = form.cleaned_data["email"]
        user.save(update_fields=["email"])
        messages.success(self.request, "Saved." if user.email else "Saved: no e-mail address is kept.")
        return super().form_valid(form)


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=80, help_text="What the key is for, e.g. “newsroom pipeline”: to tell keys apart."
    )


class TokensView(LoginRequiredMixin, FormView):
    """The user's own API keys: list, make (the key shown once), revoke."""

    form_class = TokenForm
    template_name = "registration/tokens.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tokens"] = tokens.live(self.request.user)
        return context

    def post(self, request, *args, **kwargs):
        if "revoke" in request.POST:
            if tokens.revoke(request.user, int(request.POST["revoke"] or 0)):
                messages.success(request, "The key no longer works.")
            return redirect("tokens")
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        token, key = tokens.create(self.request.user, form.cleaned_data["name"])
        # The key itself is in this one page and nowhere else: it is kept only as a hash.
        return self.render_to_response(self.get_context_data(form=TokenForm(), new_key=key, new_token=token))


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="Callback address",
        max_length=2000,
        assume_scheme="https",
        help_text="An https address that takes POSTs of JSON: each of your checks that ends is sent there, signed.",
    )


class WebhooksPageView(LoginRequiredMixin, FormView):
    """The user's callback addresses, their deliveries and every attempt; add (the secret shown once) or remove."""

    form_class = WebhookForm
    template_name = "registration/webhooks.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        hooks = list(Webhook.objects.filter(user=self.request.user))
        for hook in hooks:
            hook.recent = hook.deliveries.prefetch_related("attempt_log").order_by("-created_at", "-id")[:10]
        context["webhooks"] = hooks
        return context

    def post(self, request, *args, **kwargs):
        if "remove" in request.POST:
            if webhooks.remove(request.user, int(request.POST["remove"] or 0)):
                messages.success(request, "Removed: nothing more is sent there.")
            return redirect("webhooks")
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        try:
            webhook, secret = webhooks.register(self.request.user, form.cleaned_data["url"])
        except (UrlRefused, webhooks.TooManyWebhooks) as exc:
            form.add_error("url", f"This address cannot be used: {exc}.")
            return self.form_invalid(form)
        return self.render_to_response(self.get_context_data(form=WebhookForm(), new_secret=secret, new_hook=webhook))
