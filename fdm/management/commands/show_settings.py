"""`python manage.py show_settings`: the pipeline's effective settings and where each came from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from fdm.pipeline_settings import PipelineSettings


class Command(BaseCommand):
    help = (
        "Print the pipeline's effective settings (config/pipeline.yaml, the FDM_ENV overlay's `pipeline:` "
        "section, then environment variables), each with where it came from, and the settings that decide "
        "where fdm runs. Secrets are never printed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        pipeline: PipelineSettings = settings.FDM_PIPELINE
        rows = [
            (name, str(resolved.value), resolved.source, resolved.setting.env)
            for name, resolved in pipeline.resolved.items()
        ]
        self._table(("setting", "value", "from", "variable"), rows)
        self.stdout.write("")
        self._table(("", "", "", ""), self._context(), show_header=False)

    def _context(self) -> list[tuple[str, str, str, str]]:
        """Where fdm runs, without a credential: which environment, broker and databases (host and name)."""
        database = settings.DATABASES["default"]
        broker = "Redis" if settings.REDIS_URL else "PostgreSQL (Django ORM)"
        return [
            ("environment", settings.FDM_ENV or "-", "FDM_ENV", ""),
            ("configuration", str(settings.FDM_CONFIG_DIR), "FDM_CONFIG_DIR", ""),
            (
                "database",
                f"{database.get('HOST') or 'local socket'}/{database.get('NAME')}",
                "DATABASE_URL",
                "",
            ),
            ("target", "its own database" if settings.TARGET_DATABASE_URL else "the database above", "", ""),
            ("task broker", broker, "REDIS_URL" if settings.REDIS_URL else "", ""),
        ]

    def _table(
        self, header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, show_header: bool = True
    ) -> None:
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
        lines = [header, *rows] if show_header else rows
        for row in lines:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )
