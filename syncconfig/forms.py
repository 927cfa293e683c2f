"""Admin forms. Validation itself lives in the shared schema (`syncconfig.schema`), which the model's clean()
runs, so that the admin accepts exactly what the YAML import and the API accept."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django import forms

from syncconfig import schema as table_schema
from syncconfig import services, yaml_io
from syncconfig.models import TableConfig

LIST_FIELDS = (
    "primary_key",
    "include_columns",
    "exclude_columns",
    "encrypted_columns",
    "searchable_columns",
    "compressed_columns",
)


class NameListField(forms.Field):
    """A list of column names, one per line (names cannot contain line breaks, so no quoting is needed)."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "One column name per line.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if not value:
            return []
        if isinstance(value, list | tuple):
            return [str(item) for item in value]
        return [line.strip() for line in str(value).splitlines() if line.strip()]

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(self.prepare_value(initial)) != self.to_python(data)


class TableConfigForm(forms.ModelForm):
    """The admin's table form: friendlier widgets for lists; the model's clean() applies the shared schema."""

    primary_key = NameListField(
        help_text="One source column name per line. Empty: the source table's declared primary key."
    )
    include_columns = NameListField(help_text="Copy only these columns, one per line. Empty: all columns.")
    exclude_columns = NameListField(help_text="Copy every column except these, one per line.")
    encrypted_columns = NameListField(help_text="With encryption mode 'Listed columns': one column per line.")
    searchable_columns = NameListField(
        help_text="Encrypted columns that can still be looked up by exact value, one per line."
    )
    compressed_columns = NameListField(
        help_text="With compression mode 'Listed columns': one column per line."
    )
    column_names = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text='A JSON object of target names for source columns, e.g. {"TXN_ID": "transaction_id"}.',
    )

    clear_columns = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        label="Kept in clear",
        help_text="Source columns that another table encrypts and this one may keep in clear text, as a JSON "
        'object of reasons, e.g. {"IBAN": "bank file export, approved by the controller"}. Admins only.',
    )
    user: Any = None  # who edits: set by the admin for each request

    class Meta:
        model = TableConfig
        fields = list(table_schema.MODEL_FIELDS)

    def clean_column_names(self) -> Any:
        # An emptied box means "no overrides"; any other non-object value is for the schema to report.
        value = self.cleaned_data.get("column_names")
        return {} if value in (None, "") else value

    def clean_clear_columns(self) -> Any:
        value = self.cleaned_data.get("clear_columns")
        return {} if value in (None, "") else value

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]  # the model's clean(): the shared schema
        if self.errors:
            return
        try:
            services.table_protection_check(table=self.instance, user=self.user)
        except services.TableRejected as rejected:
            for error in rejected.errors:
                field = table_schema.field_for_path(error.field)
                self.add_error(field if field in self.fields else None, error.message)


class ImportUploadForm(forms.Form):
    """A YAML document to preview: an uploaded file, or text pasted into the box."""

    PASTED = "pasted text"

    file = forms.FileField(required=False, label="YAML file", help_text="The format of config/tables.yaml.")
    text = forms.CharField(
        required=False,
        strip=False,
        label="or paste YAML",
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100, "spellcheck": "false", "class": "fdm-yaml"}),
        help_text="The same format, e.g. the output of export_tables.",
    )
    prune = forms.BooleanField(required=False, label="Delete tables that the document does not list")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload is not None and upload.size > yaml_io.MAX_DOCUMENT_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size} bytes; the limit is {yaml_io.MAX_DOCUMENT_BYTES} bytes."
            )
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        has_file, has_text = cleaned.get("file") is not None, bool((cleaned.get("text") or "").strip())
        if has_file == has_text and not self.errors:
            raise forms.ValidationError("Choose a file or paste YAML (one of the two).")
        return cleaned

    def document(self) -> tuple[bytes, str]:
        """The document's bytes and the name it goes by in messages and the change history."""
        upload = self.cleaned_data["file"]
        if upload is not None:
            return upload.read(), upload.name
        return self.cleaned_data["text"].encode("utf-8"), self.PASTED


class ImportConfirmForm(forms.Form):
    """Carries the previewed document to the confirm step (base64, so that line breaks survive unchanged)."""

    document = forms.CharField(widget=forms.HiddenInput, strip=False)
    source = forms.CharField(widget=forms.HiddenInput, max_length=255)
    prune = forms.BooleanField(widget=forms.HiddenInput, required=False)
    digest = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("auto_id", "confirm_%s")  # the upload form on the same page has a `prune` field too
        super().__init__(*args, **kwargs)

    @staticmethod
    def encode(document: bytes) -> str:
        return base64.b64encode(document).decode("ascii")

    def clean_document(self) -> bytes:
        try:
            return base64.b64decode(self.cleaned_data["document"], validate=True)
        except (binascii.Error, ValueError):
            raise forms.ValidationError(
                "The previewed document was damaged; upload the file again."
            ) from None
