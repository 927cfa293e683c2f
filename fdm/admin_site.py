"""The admin site: its login asks for a two-factor code where one is needed (fdm.two_factor), and its pages
stay closed to a session that was opened without one. Its front page is a dashboard whose panels the apps
register (`dashboard_panel_register`), above the models grouped into the sections an operator uses, in that
order (`admin_section_assign`): configuration, runs, audit, access, and the task queue's internals last.

Both are registries the apps fill from their `AppConfig.ready()`, so the kit never imports an app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django.template.response import TemplateResponse

from fdm.two_factor import has_device, matching_device, needs_second_factor, second_factor_satisfied

# The front page's sections, in the order an operator needs them.
SECTIONS = ("Configuration", "Runs", "Audit", "Access", "Internals")

# Which section a model ("app_label.model_name") or a whole app ("app_label") goes in. The kit names the apps it
# knows (Django's, its own, the libraries'); the project's apps add theirs with `admin_section_assign`.
_SECTION_OF: dict[str, str] = {
    "auth": "Access",
    "apikeys": "Access",
    "otp_totp": "Access",
    "axes": "Audit",
    "django_q": "Internals",
}


def admin_section_assign(section: str, *labels: str) -> None:
    """Put models ("app_label.model_name") or whole apps ("app_label") in one of SECTIONS."""
    if section not in SECTIONS:
        raise ValueError(f"{section!r} is not one of {', '.join(SECTIONS)}")
    for label in labels:
        _SECTION_OF[label.lower()] = section


@dataclass(frozen=True)
class DashboardPanel:
    """A part of the front page: a template and what it shows."""

    template: str
    context: dict[str, Any]


# Functions that build a panel for a request, or return None when the user may not see it; shown in order.
_PANELS: list[Callable[[HttpRequest], DashboardPanel | None]] = []


def dashboard_panel_register(build: Callable[[HttpRequest], DashboardPanel | None]) -> None:
    """Add a panel to the front page (once, however often ready() runs)."""
    if build not in _PANELS:
        _PANELS.append(build)


def _section_of(app_label: str, model_name: str) -> str | None:
    return _SECTION_OF.get(f"{app_label}.{model_name}") or _SECTION_OF.get(app_label)


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
    index_template = "admin/fdm_index.html"
    site_header = "fdm"
    site_title = "fdm"
    index_title = "Overview"
    site_url = None  # no "View site": the admin is the site
    # No sidebar of every model on every page: the front page lists them, the breadcrumbs lead back, and the
    # status board needs the width (it fits 1440 px with its filters).
    enable_nav_sidebar = False

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        """One app's models when `app_label` is given (Django's app page); otherwise every model grouped into
        SECTIONS, in their order, then the apps no section names (alphabetically)."""
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        sections: dict[str, dict[str, Any]] = {}
        leftovers = []
        for app in apps:
            rest = []
            for model in app["models"]:
                section = _section_of(app["app_label"], model["object_name"].lower())
                if section is None:
                    rest.append(model)
                    continue
                entry = sections.setdefault(
                    section,
                    {
                        "name": section,
                        "app_label": section.lower(),
                        "app_url": app["app_url"],
                        "has_module_perms": True,
                        "models": [],
                    },
                )
                entry["models"].append(model)
            if rest:
                leftovers.append({**app, "models": rest})
        ordered = [sections[name] for name in SECTIONS if name in sections and name != "Internals"]
        internals = [sections["Internals"]] if "Internals" in sections else []
        return [*ordered, *leftovers, *internals]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        panels = [panel for build in _PANELS if (panel := build(request)) is not None]
        return super().index(request, {"dashboard_panels": panels, **(extra_context or {})})

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and second_factor_satisfied(request.user)
