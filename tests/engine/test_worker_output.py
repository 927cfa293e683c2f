"""What a worker prints when a run ends: one line per run, failures included."""

from __future__ import annotations

import logging

import pytest

from syncengine import services, tasks
from syncengine.choices import RunTrigger
from syncengine.models import SyncRun

pytestmark = pytest.mark.django_db


def _run_lines(caplog) -> list[logging.LogRecord]:
    """The run-end lines (the same logger also carries each run's progress entries)."""
    return [
        record
        for record in caplog.records
        if record.name == "syncengine.runs" and record.getMessage().startswith("run #")
    ]


def test_a_succeeded_run_prints_one_line_with_its_counts(make_table, seed_source, caplog):
    table = make_table()
    seed_source(table.snowflake_table, rows=7)
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)

    with caplog.at_level(logging.INFO, logger="syncengine.runs"):
        assert tasks.execute_run(run.pk) == "succeeded"

    [line] = _run_lines(caplog)
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith(f"run #{run.pk} of {table.name} succeeded in ")
    assert "7 rows extracted, 7 inserted" in line.getMessage()


def test_a_failed_run_prints_one_line_with_the_errors_first_line(make_table, snowflake, caplog):
    table = make_table()  # its source table was never created
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)

    with caplog.at_level(logging.INFO, logger="syncengine.runs"):
        assert tasks.execute_run(run.pk) == "failed"

    [line] = _run_lines(caplog)
    run = SyncRun.objects.get(pk=run.pk)
    message = line.getMessage()
    assert line.levelno == logging.WARNING
    assert message.startswith(f"run #{run.pk} of {table.name} failed")
    assert message.endswith(run.error_message.strip().splitlines()[0])
    assert "\n" not in message
