"""Admin for API keys and service accounts: list, inspect, revoke, and read their audit trail ("History").

Keys are created with `manage.py create_api_key` or the API, which show the new key once; the admin never
sees a key, only its prefix. Revoking here is recorded with the admin's account and the channel "admin".
The history pages are read-only: an audit trail is never reverted.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from fdm.apikeys.models import ApiKey, Channel, ServiceAccount
from fdm.apikeys.services import Actor, api_key_revoke


@admin.action(description="Revoke selected keys")
def revoke_keys(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
    actor = Actor.of_user(request.user, Channel.ADMIN)
    for api_key in queryset:
        api_key_revoke(api_key=api_key, actor=actor)
    modeladmin.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)


class ReadOnlyHistoryAdmin(SimpleHistoryAdmin):
    """History pages to read, never to revert or edit from."""

    history_list_display = ["history_actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the command and the API create them: a new key must be shown once to its creator

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "POST":  # simple_history would save the old version without asking for change
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "name",
        "prefix",
        "user",
        "created_at",
        "created_by_name",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username", "created_by_name")
    readonly_fields = (
        "name",
        "prefix",
        "user",
        "created_at",
        "created_by",
        "created_by_name",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    exclude = ("digest",)
    actions = [revoke_keys]


@admin.register(ServiceAccount)
class ServiceAccountAdmin(ReadOnlyHistoryAdmin):
    """The accounts that may hold keys; their History page lists every role change."""

    list_display = ("user", "role", "created_at", "created_by_name")
    search_fields = ("user__username", "created_by_name")
    readonly_fields = ("user", "role", "created_at", "created_by", "created_by_name")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # unmarking an account would hide it from the rule; delete the user instead
