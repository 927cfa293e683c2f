"""The kill matrix: SIGKILL of the sync's process, `manage.py sync_table` or a qcluster worker, at each point of
a full and of an incremental run (`strikes`), while a reader polls the target; what each case checks and
records is in `cases`."""

from __future__ import annotations

import pytest

from tests.faults import harness, strikes
from tests.faults.cases import MIDDLE_ROW, make_faulted_table, run_case, start_command, start_worker

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


POINTS = list(strikes.STRIKES)


def strike_for(point: str):
    if point == "publish-insert":
        return lambda target, start, fault: strikes.strike_publish_insert(
            target, start, fault, at_key=MIDDLE_ROW
        )
    return strikes.STRIKES[point]


@pytest.mark.parametrize("mode", ["full", "incremental"])
@pytest.mark.parametrize("point", POINTS)
def test_a_killed_sync_table_loses_nothing_and_recovers(
    point, mode, make_table, seed_source, snowflake_server
):
    table = make_faulted_table(make_table, seed_source, mode=mode)
    result = harness.CaseResult(
        case=f"kill-command-{point}-{mode}",
        fault="SIGKILL of `sync_table`",
        strikes=point,
        mode=mode,
        executor="sync_table",
    )
    run_case(
        result, table, start_command(table, snowflake_server), lambda handle: handle.kill(), strike_for(point)
    )


@pytest.mark.parametrize("mode", ["full", "incremental"])
@pytest.mark.parametrize("point", POINTS)
def test_a_killed_worker_loses_nothing_and_its_retry_recovers(
    point, mode, make_table, seed_source, worker_cluster, settings
):
    settings.FDM_RETRY_BACKOFF_SECONDS = 0  # the reaper's retry goes to the queue at once
    table = make_faulted_table(make_table, seed_source, mode=mode)
    result = harness.CaseResult(
        case=f"kill-worker-{point}-{mode}",
        fault="SIGKILL of a qcluster worker",
        strikes=point,
        mode=mode,
        executor="worker",
    )
    run_case(
        result, table, start_worker(table, worker_cluster), lambda handle: handle.kill(), strike_for(point)
    )
