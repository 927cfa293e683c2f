"""Admin for API keys: list, inspect and revoke. Keys are created with `manage.py create_api_key` or the API,
which show the new key once; the admin never sees a key, only its prefix."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from fdm.apikeys.models import ApiKey
from fdm.apikeys.services import api_key_revoke


@admin.action(description="Revoke selected keys")
def revoke_keys(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
    for api_key in queryset:
        api_key_revoke(api_key=api_key)
    modeladmin.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("name", "prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at")
    exclude = ("digest",)
    actions = [revoke_keys]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key must be shown once to whoever creates it: the command or the API

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False
