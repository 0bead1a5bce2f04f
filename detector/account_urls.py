from django.urls import path

from . import accounts

urlpatterns = [
    path("signup/", accounts.SignUpView.as_view(), name="signup"),
    path("delete/", accounts.AccountDeleteView.as_view(), name="account_delete"),
    # Django's own view, throttled; before django.contrib.auth.urls, which has the same address.
    path("password_reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
]
