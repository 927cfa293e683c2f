"""What the demo does around its syncs: it keeps the operator's tables across starts, stops the embedded
PostgreSQL it started, and prints a summary that a log file keeps whole."""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from fdm.local_state import running_embedded_database_url, stop_embedded_database
from syncconfig.models import TableConfig
from syncengine.dev.demo import LOG_WIDTH, demo_console, demo_tables_import

DEMO_NAMES = ["accounts", "market_prices", "transactions"]


def _names() -> list[str]:
    return list(TableConfig.objects.order_by("name").values_list("name", flat=True))


@pytest.mark.django_db
def test_the_demo_imports_its_tables_on_the_first_start_only_unless_reset(settings):
    settings.FDM_ENV = None
    console = demo_console(terminal=False)
    console.file = io.StringIO()

    assert demo_tables_import(console, stdout=io.StringIO(), reset=False) is True
    assert _names() == DEMO_NAMES

    # The operator edits a table in the admin and adds one; the next start keeps both.
    TableConfig.objects.filter(name="accounts").update(schedule="manual")
    extra = TableConfig.objects.get(name="accounts")
    extra.pk, extra.name, extra.postgres_table = None, "ledger", "ledger"
    extra.save()
    assert demo_tables_import(console, stdout=io.StringIO(), reset=False) is False
    assert TableConfig.objects.get(name="accounts").schedule == "manual"
    assert "imported on the first start only" in console.file.getvalue()

    # --reset: back to the file, the added table removed.
    assert demo_tables_import(console, stdout=io.StringIO(), reset=True) is True
    assert TableConfig.objects.get(name="accounts").schedule == "daily"
    assert extra.name not in _names() and _names() == DEMO_NAMES


def test_the_summary_is_not_cut_at_80_columns_when_the_output_is_not_a_terminal():
    console = demo_console(terminal=False)
    console.file = io.StringIO()
    error = "column AMOUNT: value 12345678901.5 does not fit numeric(10,2) " + "x" * 90
    table = Table(title="Demo syncs")
    for column in ("table", "status", "error"):
        table.add_column(column)
    table.add_row("transactions", "failed", error)

    console.print(table)

    assert console.width == LOG_WIDTH
    assert error in console.file.getvalue()


@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore:XDG_RUNTIME_DIR"
)  # platformdirs, on machines without one (pgserver copes)
def test_stopping_the_embedded_database_stops_its_server(tmp_path):
    import pgserver

    pgdata = tmp_path / "pgdata"
    pgserver.get_server(pgdata, cleanup_mode=None)
    assert running_embedded_database_url(pgdata) is not None

    assert stop_embedded_database(pgdata) is True
    assert running_embedded_database_url(pgdata) is None
    assert stop_embedded_database(pgdata) is False  # nothing left to stop
