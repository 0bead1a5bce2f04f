from django.urls import path

from . import accounts

urlpatterns = [
    path("signup/", accounts.SignUpView.as_view(), name="signup"),
    path("delete/", accounts.AccountDeleteView.as_view(), name="account_delete"),
]
