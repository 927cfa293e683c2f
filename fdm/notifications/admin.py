"""Admin for notifications: channels to configure (and test), incidents and deliveries to read.

Incidents and deliveries are records: they are written by fdm only, never edited here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from fdm.notifications.choices import DeliveryStatus, IncidentKind
from fdm.notifications.models import Channel, Delivery, Incident
from fdm.notifications.services import channel_test_send


class TableNamesField(forms.CharField):
    """Table names, comma-separated, as a list (empty: every table)."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [name.strip() for name in text.split(",") if name.strip()]


class ChannelForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=IncidentKind.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    url = forms.URLField(
        assume_scheme="https",
        required=False,
        max_length=500,
        help_text=Channel._meta.get_field("url").help_text,
    )
    tables = TableNamesField(
        required=False, help_text="Table names, comma-separated; empty: every table.", strip=True
    )

    class Meta:
        model = Channel
        fields = ("name", "kind", "enabled", "events", "tables", "recipients", "url", "url_env", "secret_env")


@admin.action(description="Send a test message")
def send_test_message(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Channel]
) -> None:
    for channel in queryset.order_by("name"):
        delivery = channel_test_send(channel=channel)
        if delivery.status == DeliveryStatus.SENT:
            modeladmin.message_user(
                request, f"{channel.name}: test message sent ({delivery.response_code}).", messages.SUCCESS
            )
        else:
            modeladmin.message_user(request, f"{channel.name}: {delivery.error}", messages.ERROR)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ("name", "kind", "enabled", "event_list", "table_list")
    list_filter = ("kind", "enabled")
    actions = [send_test_message]

    @admin.display(description="events")
    def event_list(self, channel: Channel) -> str:
        return ", ".join(IncidentKind(kind).label for kind in channel.events if kind in IncidentKind.values)

    @admin.display(description="tables")
    def table_list(self, channel: Channel) -> str:
        return ", ".join(channel.tables) or "every table"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ("created_at", "channel_name", "message", "attempt", "status", "response_code", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = ("title", "kind", "table", "status", "occurrences", "opened_at", "resolved_at")
    list_filter = ("status", "kind")
    search_fields = ("title", "key", "table")
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "channel_name",
        "message",
        "incident",
        "attempt",
        "status",
        "response_code",
        "error",
    )
    list_filter = ("status", "message", "channel_name")
    list_select_related = ("incident",)
