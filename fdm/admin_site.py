"""The admin site: its login asks for a two-factor code where one is needed (fdm.two_factor), and its pages
stay closed to a session that was opened without one."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest

from fdm.two_factor import has_device, matching_device, needs_second_factor, second_factor_satisfied


class LoginForm(AdminAuthenticationForm):
    """Username and password (django-axes counts the failures), then the code of a TOTP device when the user
    needs one or has one."""

    otp_token = forms.CharField(
        label="Two-factor code",
        required=False,
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="The six digits your authenticator app shows, if your account has a device.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user = self.get_user()
        if user is None:
            return cleaned
        if not (needs_second_factor(user) or has_device(user)):
            return cleaned
        if not has_device(user):
            raise forms.ValidationError(
                "This account needs a two-factor device. An administrator enrols one with "
                f"`python manage.py totp_device {user.get_username()}`.",
                code="no_device",
            )
        token = "".join(self.cleaned_data.get("otp_token", "").split())
        if not token:
            raise forms.ValidationError(
                "Enter the two-factor code from your authenticator app.", code="required"
            )
        device = matching_device(user, token)
        if device is None:
            raise forms.ValidationError("That two-factor code is wrong or was used already.", code="invalid")
        # django_otp's user_logged_in handler records the device in the session.
        user.otp_device = device  # type: ignore[attr-defined]
        return cleaned


class AdminSite(admin.AdminSite):
    login_form = LoginForm
    login_template = "admin/fdm_login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and second_factor_satisfied(request.user)
