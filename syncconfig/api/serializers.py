"""Serializers of the table endpoints. A table itself is not a DRF serializer: it is the canonical table dict,
validated by `syncconfig.schema` (the same schema as YAML and admin) in the services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from syncconfig import schema as table_schema


class TableChangeSerializer(serializers.Serializer):
    name = serializers.CharField()
    changes = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        help_text="{key path: [old value, new value]}",
    )


class ImportResultSerializer(serializers.Serializer):
    """What an import did, or with dry_run would do."""

    dry_run = serializers.BooleanField()
    env = serializers.CharField(allow_null=True)
    created = serializers.ListField(child=serializers.CharField())
    updated = TableChangeSerializer(many=True)
    deleted = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.ListField(child=serializers.CharField())
    digest = serializers.CharField(help_text="Pass as expect_digest to apply exactly the previewed plan.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "dry_run": instance.dry_run,
            "env": instance.env,
            "created": instance.created,
            "updated": [
                {"name": change.name, "changes": {k: [old, new] for k, (old, new) in change.changes.items()}}
                for change in instance.updated
            ],
            "deleted": instance.deleted,
            "unchanged": instance.unchanged,
            "digest": instance.digest,
        }


class HistoryEntrySerializer(serializers.Serializer):
    """One audited change of a table."""

    id = serializers.IntegerField(help_text="The history record's id.")
    date = serializers.DateTimeField()
    action = serializers.ChoiceField(choices=["created", "changed", "deleted"])
    user = serializers.CharField(allow_null=True, help_text="Who made the change; null for none recorded.")
    reason = serializers.CharField(
        allow_null=True, help_text='e.g. "api", "import_tables config/tables.yaml".'
    )
    changes = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        help_text="{key path: [old value, new value]} against the record before; every key for a creation.",
    )

    _ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}

    def to_representation(self, instance: Any) -> dict[str, Any]:
        record = instance
        previous = record.prev_record
        after = table_schema.table_dict_from_model(record)
        before: dict[str, Any] = table_schema.table_dict_from_model(previous) if previous is not None else {}
        if record.history_type == "-":
            changes: dict[str, Any] = {}
        else:
            changes = {
                k: [old, new] for k, (old, new) in table_schema.table_dict_changes(before, after).items()
            }
        user = record.history_user
        return {
            "id": record.history_id,
            "date": serializers.DateTimeField().to_representation(record.history_date),
            "action": self._ACTIONS.get(record.history_type, "changed"),
            "user": user.get_username() if user is not None else None,
            "reason": record.history_change_reason,
            "changes": changes,
        }
