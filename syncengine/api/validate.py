"""`POST /api/v1/tables/{name}/validate/`: check a table's configuration against its Snowflake source before any
run (`syncengine.inspection.table_check_source`). Without a body it checks the stored table; with a table dict
(the YAML shape) it checks that instead, saved or not, so a program can test a configuration before saving it.
Nothing is changed either way."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.errors import unavailable
from fdm.api.permissions import IsOperator
from fdm.api.schema import error_response
from fdm.api.views import ApiView
from syncconfig import schema as table_schema
from syncconfig import selectors as config_selectors
from syncconfig.models import TableConfig
from syncconfig.services import TableRejected


def _candidate(name: str, body: Any) -> TableConfig:
    """The stored table `name`, or (with a body) an unsaved table built from the body's table dict."""
    if not body:
        try:
            return config_selectors.table_get(name=name)
        except TableConfig.DoesNotExist:
            raise NotFound(f"No table named {name!r}; send its configuration to check it unsaved.") from None
    if not isinstance(body, dict):
        raise ValidationError({"": ["the body must be a table, as a JSON object in the YAML's shape"]})
    if body.get("name", name) != name:
        raise ValidationError({"name": [f"must be {name!r}, the table in the URL; got {body.get('name')!r}"]})
    validation = table_schema.validate_table({**body, "name": name})
    if validation.table is None:
        raise TableRejected(validation.errors)
    candidate = TableConfig.objects.filter(name=name).first() or TableConfig()
    candidate.apply_table(validation.table)  # never saved
    return candidate


class TableValidateView(ApiView):
    """Check a configuration against the source: table, columns, types, protection, key and its uniqueness."""

    permission_classes = [IsOperator]
    parser_classes = [JSONParser]

    @extend_schema(
        tags=["tables"],
        summary="Check a table's configuration against its Snowflake source",
        description="Checks that the source table exists, that every column the configuration names is one of "
        "its columns (with a suggestion for a near miss), that the columns plan as a run would plan them (types, "
        "incremental column, protection and the per-source policy), that deletes and history have a key, and "
        "that the key is unique in a sample of up to 100,000 source rows. `valid` is true when every finding "
        "is ok. Without a body the stored table is checked; with a table (the YAML shape) that table is, unsaved.",
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiTypes.OBJECT,
            400: error_response("The table sent does not pass the configuration schema."),
            404: error_response("No such table, and no configuration sent."),
            503: error_response("Snowflake cannot be reached or is not configured."),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        from syncengine.inspection import SourceUnavailable, table_check_source

        table = _candidate(name, request.data)
        try:
            check = table_check_source(table=table)
        except SourceUnavailable as exc:
            raise unavailable(f"Snowflake: {exc.message}", code="snowflake_unavailable") from None
        return Response(
            {
                "table": check.table,
                "source": check.source,
                "valid": check.ok,
                "findings": [
                    {"check": f.check, "ok": f.ok, "message": f.message, "path": f.path}
                    for f in check.findings
                ],
                "columns": [
                    {
                        "source_name": c.source_name,
                        "source_type": c.source_type,
                        "target_name": c.target_name,
                        "target_type": c.target_type,
                        "roles": list(c.roles),
                    }
                    for c in check.columns
                ],
            }
        )
