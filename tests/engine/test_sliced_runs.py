"""Sliced runs (`parallel: {slices: N}`) in one process: slices staged one by one, retried, failed, published
once, and the table held against other runs meanwhile. Across real workers: tests/engine/test_sliced_workers.py."""

from __future__ import annotations

import psycopg
import pytest

from syncengine import services, sliced_runs
from syncengine.choices import RunStatus, RunTrigger, SliceStatus
from syncengine.connections import target_dsn
from syncengine.dev import sampledata
from syncengine.models import RunSlice, SyncRun
from syncengine.pipeline.load import staging_prefix
from syncengine.pipeline.protection import reader
from tests.engine.conftest import SOURCE_DATABASE, SOURCE_SCHEMA

pytestmark = pytest.mark.django_db


def source_totals(snowflake, table: str) -> tuple:
    snowflake.execute(
        f"SELECT count(*), sum(TXN_ID), CAST(sum(AMOUNT * 100) AS NUMBER(38,0)), sum(length(DESCRIPTION)) "  # noqa: S608 - test's own name
        f"FROM {SOURCE_DATABASE}.{SOURCE_SCHEMA}.{table}"
    )
    count, ids, amounts, lengths = snowflake.fetchone()
    return int(count), int(ids), int(amounts), int(lengths)


def target_totals(target, table) -> tuple:
    ((count, ids, amounts, lengths),) = target(
        f'SELECT count(*), sum(txn_id), sum(amount * 100), sum(length(description)) FROM public."{table.postgres_table}"'  # noqa: S608
    )
    return int(count), int(ids), int(amounts), int(lengths)


@pytest.fixture
def sliced_table(make_table, snowflake):
    def make(rows: int, slices: int = 4):
        table = make_table(parallel_slices=slices)
        sampledata.seed_transactions(
            snowflake.connection,
            database=SOURCE_DATABASE,
            schema=SOURCE_SCHEMA,
            table=table.snowflake_table,
            rows=rows,
        )
        return table

    return make


def start(table) -> SyncRun:
    run = services.run_create(table=table, trigger=RunTrigger.API)
    return services.run_execute(run_id=run.pk)


def leases(target, table) -> list:
    return target("SELECT run_id FROM _fdm.table_leases WHERE table_name = %s", (table.name,))


def leftover_staging(target, table) -> list:
    return target(
        "SELECT tablename FROM pg_tables WHERE schemaname = '_fdm_staging' AND starts_with(tablename, %s)",
        (staging_prefix(table.name),),
    )


def test_a_sliced_run_stages_every_slice_then_publishes_the_whole_table(sliced_table, snowflake, target):
    table = sliced_table(rows=20_000, slices=4)
    run = start(table)
    assert run.status == RunStatus.RUNNING and run.stage == "slices"
    pieces = list(run.slices.order_by("number"))
    assert [p.number for p in pieces] == [0, 1, 2, 3]
    assert pieces[0].lower is None and pieces[-1].upper is None

    for piece in pieces:
        assert sliced_runs.slice_execute(slice_id=piece.pk).status == SliceStatus.DONE
    run.refresh_from_db()
    assert run.stage == "publish"
    assert sum(p.rows for p in run.slices.all()) == 20_000

    run = sliced_runs.sliced_publish(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert (run.rows_extracted, run.rows_inserted, run.checks["slices"]) == (20_000, 20_000, 4)
    assert target_totals(target, table) == source_totals(snowflake, table.snowflake_table)
    assert leftover_staging(target, table) == []
    assert leases(target, table) == []


def test_a_second_request_while_a_sliced_run_is_under_way_is_skipped_naming_it(sliced_table):
    table = sliced_table(rows=2_000, slices=2)
    run = start(table)
    assert run.status == RunStatus.RUNNING

    second = start(table)
    assert second.status == RunStatus.SKIPPED
    assert f"#{run.pk}" in second.skip_reason

    for piece in run.slices.all():
        sliced_runs.slice_execute(slice_id=piece.pk)
    assert sliced_runs.sliced_publish(run_id=run.pk).status == RunStatus.SUCCEEDED
    assert start(table).status == RunStatus.RUNNING  # the lease went with the publish


def test_a_finished_slice_is_not_staged_again_and_a_retried_one_starts_from_empty(
    sliced_table, target, snowflake
):
    table = sliced_table(rows=6_000, slices=3)
    run = start(table)
    first, second, third = run.slices.order_by("number")
    sliced_runs.slice_execute(slice_id=first.pk)
    # A worker died half-way through the second slice: its table holds some rows, the slice says running.
    target(
        f'WITH copied AS (INSERT INTO _fdm_staging."{second.staging}" '  # noqa: S608 - the test's own names
        f'SELECT * FROM _fdm_staging."{first.staging}" LIMIT 10 RETURNING 1) SELECT count(*) FROM copied'
    )
    RunSlice.objects.filter(pk=second.pk).update(status=SliceStatus.QUEUED, attempt=1)

    assert sliced_runs.slice_execute(slice_id=first.pk) is None  # done: nothing to do
    assert sliced_runs.slice_execute(slice_id=second.pk).attempt == 2
    sliced_runs.slice_execute(slice_id=third.pk)
    run = sliced_runs.sliced_publish(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert target_totals(target, table) == source_totals(snowflake, table.snowflake_table)


def test_a_slice_that_fails_for_good_fails_the_run_and_leaves_nothing_behind(sliced_table, target):
    table = sliced_table(rows=3_000, slices=3)
    run = start(table)
    pieces = list(run.slices.order_by("number"))
    sliced_runs.slice_execute(slice_id=pieces[0].pk)
    # The configuration changes under the run: the next slice refuses to stage for it (terminal).
    table.batch_size = 500
    table.save()

    failed = sliced_runs.slice_execute(slice_id=pieces[1].pk)
    assert failed.status == SliceStatus.FAILED
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "configuration changed" in run.error_message
    assert leftover_staging(target, table) == []
    assert leases(target, table) == []
    assert target("SELECT to_regclass(%s)", (f"public.{table.postgres_table}",)) == [(None,)]
    assert sliced_runs.slice_execute(slice_id=pieces[2].pk) is None  # the run is closed: nothing to do
    assert not SyncRun.objects.filter(retry_of=run).exists()  # terminal: no new attempt


def test_a_key_staged_by_two_slices_fails_the_publish_and_keeps_the_old_table(
    sliced_table, target, target_rows
):
    table = sliced_table(rows=3_000, slices=3)
    first = start(table)
    for piece in first.slices.all():
        sliced_runs.slice_execute(slice_id=piece.pk)
    assert sliced_runs.sliced_publish(run_id=first.pk).status == RunStatus.SUCCEEDED

    run = start(table)
    for piece in run.slices.all():
        sliced_runs.slice_execute(slice_id=piece.pk)
    one, two = run.slices.order_by("number")[:2]
    # A row of the first slice also in the second, as if the ranges overlapped; its stage counted it.
    target(
        f'WITH copied AS (INSERT INTO _fdm_staging."{two.staging}" '  # noqa: S608 - the test's own names
        f'SELECT * FROM _fdm_staging."{one.staging}" LIMIT 1 RETURNING 1) SELECT count(*) FROM copied'
    )
    RunSlice.objects.filter(pk=two.pk).update(rows=two.rows + 1, result={**two.result, "rows": two.rows + 1})

    run = sliced_runs.sliced_publish(run_id=run.pk)
    assert run.status == RunStatus.FAILED
    assert "staged by more than one slice" in run.error_message
    assert target_rows(table) == 3_000
    assert leftover_staging(target, table) == []


def test_the_run_page_and_the_api_show_slices_done_running_and_failed(sliced_table, client):
    from django.contrib.auth import get_user_model
    from django.urls import reverse
    from rest_framework.test import APIClient

    from fdm.api.roles import Role
    from fdm.apikeys.services import service_key_create

    table = sliced_table(rows=2_000, slices=2)
    run = start(table)
    first, second = run.slices.order_by("number")
    sliced_runs.slice_execute(slice_id=first.pk)
    RunSlice.objects.filter(pk=second.pk).update(status=SliceStatus.RUNNING, attempt=1, executor="host-b:42")

    api = APIClient()
    api.credentials(
        HTTP_AUTHORIZATION=f"Api-Key {service_key_create(username='v', role=Role.parse('viewer'))[1]}"
    )
    detail = api.get(f"/api/v1/pipeline/runs/{run.pk}/").json()
    assert detail["slice_counts"] == {"queued": 0, "running": 1, "done": 1, "failed": 0}
    assert [(s["number"], s["status"], s["rows"]) for s in detail["slices"]] == [
        (0, "done", RunSlice.objects.get(pk=first.pk).rows),
        (1, "running", 0),
    ]

    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get(reverse("admin:syncengine_syncrun_change", args=[run.pk])).content.decode()
    assert "0 queued, 1 running, 1 done, 0 failed" in page
    assert "host-b:42" in page


def test_a_cancel_request_closes_the_sliced_run_and_drops_its_staging(sliced_table, target):
    table = sliced_table(rows=2_000, slices=2)
    run = start(table)
    first, second = run.slices.order_by("number")
    sliced_runs.slice_execute(slice_id=first.pk)
    services.run_cancel(run=run)

    assert sliced_runs.slice_execute(slice_id=second.pk).status == SliceStatus.FAILED
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert leftover_staging(target, table) == [] and leases(target, table) == []


def test_the_reaper_queues_a_dead_slice_again_and_releases_the_lease_of_a_closed_run(sliced_table, target):
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from syncengine import reaper

    table = sliced_table(rows=2_000, slices=2)
    run = start(table)
    first, second = run.slices.order_by("number")
    sliced_runs.slice_execute(slice_id=first.pk)
    # A worker took the second slice and died: running, silent, its slice lock free.
    RunSlice.objects.filter(pk=second.pk).update(
        status=SliceStatus.RUNNING, attempt=1, executor="gone:1", heartbeat_at=timezone.now()
    )
    soon = timezone.now() + timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS + 1)
    assert reaper.runs_fail_stale(now=soon) == []  # the run itself is not failed: it holds its lease
    second.refresh_from_db()
    assert (second.status, second.attempt) == (SliceStatus.QUEUED, 1)
    assert sliced_runs.slice_execute(slice_id=first.pk) is None  # done slices stay done
    assert sliced_runs.slice_execute(slice_id=second.pk).status == SliceStatus.DONE

    # A run closed while its lease could not be released (the target was unreachable then).
    SyncRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    assert reaper.leases_release_closed() == [table.name]
    assert leftover_staging(target, table) == [] and leases(target, table) == []


def test_a_compressed_table_is_sliced_each_slice_with_its_dictionaries_and_reads_back_whole(
    make_table, snowflake, target
):
    table = make_table(
        parallel_slices=3, compression_mode="columns", compressed_columns=["DESCRIPTION", "METADATA"]
    )
    sampledata.seed_transactions(
        snowflake.connection,
        database=SOURCE_DATABASE,
        schema=SOURCE_SCHEMA,
        table=table.snowflake_table,
        rows=9_000,
    )
    run = start(table)
    pieces = list(run.slices.order_by("number"))
    for piece in pieces:
        assert sliced_runs.slice_execute(slice_id=piece.pk).status == SliceStatus.DONE
    run = sliced_runs.sliced_publish(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message

    used = {dict_id for piece in run.slices.all() for dict_id in piece.result["dictionary_ids"]}
    assert len(used) == 2 * len(pieces), "each slice trained one dictionary per compressed column"
    stored = target(
        "SELECT dict_id FROM _fdm.compression_dictionaries WHERE target_schema = 'public' AND target_table = %s",
        (table.postgres_table,),
    )
    assert {dict_id for (dict_id,) in stored} == used
    assert target(
        f'SELECT count(*) FROM public."{table.postgres_table}" WHERE octet_length(description) = 0'  # noqa: S608
    ) == [(0,)]

    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        rows, after = [], None
        while True:
            page = reader.read_rows(
                conn,
                table_name=table.name,
                schema="public",
                table=table.postgres_table,
                keyring=None,
                decrypt=False,
                after=after,
                limit=1000,
            )
            rows.extend(page.rows)
            if page.next_after is None:
                break
            after = page.next_after
    count, ids, _, lengths = source_totals(snowflake, table.snowflake_table)
    assert len(rows) == count
    assert sum(int(row["txn_id"]) for row in rows) == ids
    assert sum(len(row["description"]) for row in rows) == lengths
    assert all(isinstance(row["metadata"], dict) for row in rows)
