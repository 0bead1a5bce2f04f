from django.urls import path

from . import accounts

urlpatterns = [
    path("", accounts.AccountView.as_view(), name="account"),
    path("tokens/", accounts.TokensView.as_view(), name="tokens"),
    path("webhooks/", accounts.WebhooksPageView.as_view(), name="webhooks"),
    path("signup/", accounts.SignUpView.as_view(), name="signup"),
    path("delete/", accounts.AccountDeleteView.as_view(), name="account_delete"),
    # Django's own view, throttled; before django.contrib.auth.urls, which has the same address.
    path("password_reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
]
