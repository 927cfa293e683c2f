"""The engine's incidents: failed runs (resolved by the table's next success), tables stale past their limit,
and key rotations whose count of values on older keys stopped moving; sent to a real HTTP receiver."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from fdm.notifications.choices import IncidentKind, IncidentStatus
from fdm.notifications.models import Incident
from syncconfig.models import TableConfig
from syncengine import alerts, protected_data, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.run_options import RunOptions

pytestmark = pytest.mark.django_db(transaction=True)  # incidents follow a run's committed outcome


def run_now(table: TableConfig) -> SyncRun:
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    return services.run_execute(run_id=run.pk, retry_transient=False)


def events(receiver) -> list[tuple[str, str, str]]:
    return [
        (body["event"], body["incident"]["kind"], body["incident"]["key"])
        for body in (json.loads(request.body) for request in receiver.requests)
    ]


def test_two_failed_runs_send_one_message_and_the_next_success_one_more(
    make_table, seed_source, make_channel, http_receiver, deliver_pending
):
    make_channel(url=http_receiver.url())
    table = make_table()  # its source table does not exist yet: the runs fail

    first, second = run_now(table), run_now(table)
    deliver_pending()

    assert (first.status, second.status) == (RunStatus.FAILED, RunStatus.FAILED)
    incident = Incident.objects.get(kind=IncidentKind.RUN_FAILED, key=table.name)
    assert (incident.status, incident.occurrences) == (IncidentStatus.OPEN, 2)
    assert f"Run #{second.pk}" in incident.detail
    assert events(http_receiver) == [("incident.opened", "run_failed", table.name)]

    seed_source(table.snowflake_table, rows=5)
    assert run_now(table).status == RunStatus.SUCCEEDED
    deliver_pending()

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert events(http_receiver) == [
        ("incident.opened", "run_failed", table.name),
        ("incident.resolved", "run_failed", table.name),
    ]


def test_the_check_catches_a_failure_recorded_without_a_save_and_resolves_deleted_tables(make_table):
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    SyncRun.objects.filter(pk=run.pk).update(  # a bulk update: no signal fires
        status=RunStatus.FAILED, finished_at=timezone.now(), error_message="worker lost"
    )
    assert not Incident.objects.exists()

    alerts.alerts_check()
    incident = Incident.objects.get(kind=IncidentKind.RUN_FAILED, key=table.name)
    assert "worker lost" in incident.detail
    alerts.alerts_check()
    incident.refresh_from_db()
    assert incident.occurrences == 1  # the same failure, not seen again

    table.delete()
    alerts.alerts_check()
    incident.refresh_from_db()
    assert (incident.status, incident.resolution) == (
        IncidentStatus.RESOLVED,
        "the table's configuration was deleted",
    )


def test_a_table_past_its_freshness_limit_opens_one_incident_until_the_limit_is_met(
    make_table, make_channel, http_receiver, deliver_pending
):
    make_channel(url=http_receiver.url())
    stale = make_table(max_staleness_minutes=60)
    fresh = make_table(max_staleness_minutes=60)
    TableConfig.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(hours=2))

    alerts.alerts_check()
    alerts.alerts_check()
    deliver_pending()

    incident = Incident.objects.get(kind=IncidentKind.TABLE_STALE)
    assert (incident.key, incident.occurrences) == (stale.name, 2)
    assert "its freshness limit is 60 minutes" in incident.detail
    assert not Incident.objects.filter(key=fresh.name).exists()
    assert events(http_receiver) == [("incident.opened", "table_stale", stale.name)]

    stale.max_staleness_minutes = 180
    stale.save()
    alerts.alerts_check()
    deliver_pending()

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.resolution.startswith("fresh again")
    assert events(http_receiver)[-1] == ("incident.resolved", "table_stale", stale.name)


def test_a_rotation_that_stops_moving_is_reported_stuck_and_resolves_once_done(
    make_table, seed_source, keyring, monkeypatch, settings
):
    settings.FDM_ROTATION_STUCK_MINUTES = 60
    table = make_table(encryption_mode="columns", encrypted_columns=["CURRENCY"])
    seed_source(table.snowflake_table, rows=12)
    assert run_now(table).status == RunStatus.SUCCEEDED
    rotated = keyring.with_new_primary("k2")
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", rotated.format())
    start = timezone.now()

    assert alerts.rotations_check(now=start) == {"checked": 1, "stuck": 0}
    assert alerts.rotations_check(now=start + timedelta(minutes=59)) == {"checked": 1, "stuck": 0}
    assert alerts.rotations_check(now=start + timedelta(minutes=61)) == {"checked": 1, "stuck": 1}
    incident = Incident.objects.get(kind=IncidentKind.KEY_ROTATION_STUCK, key=table.name)
    assert "12 value(s) still on older keys or formats" in incident.detail
    assert "k1 12" in incident.detail

    protected_data.table_keys_rotate(table=table, keyring=rotated)
    assert alerts.rotations_check(now=start + timedelta(minutes=62)) == {"checked": 1, "stuck": 0}
    incident.refresh_from_db()
    assert (incident.status, incident.resolution) == (
        IncidentStatus.RESOLVED,
        "every value is on the primary key",
    )


def test_the_checks_have_one_schedule_each_and_the_rotation_check_can_be_turned_off(db, settings):
    alerts.alerts_schedules_ensure()
    alerts.alerts_schedules_ensure()
    check = Schedule.objects.get(func=alerts.CHECK_TASK)
    assert (check.name, check.schedule_type, check.minutes) == ("fdm-alerts", Schedule.MINUTES, 5)
    assert Schedule.objects.filter(func=alerts.ROTATION_TASK, minutes=60).count() == 1

    settings.FDM_ROTATION_CHECK_MINUTES = 0
    settings.FDM_NOTIFY_CHECK_MINUTES = 2
    alerts.alerts_schedules_ensure()
    assert not Schedule.objects.filter(func=alerts.ROTATION_TASK).exists()
    assert Schedule.objects.get(func=alerts.CHECK_TASK).minutes == 2


def test_a_tripped_delete_guard_opens_its_own_incident_and_the_allowed_run_resolves_it(
    make_table, seed_source, snowflake, make_channel, http_receiver, deliver_pending
):
    make_channel(url=http_receiver.url())
    table = make_table(
        sync_mode="incremental",
        incremental_column="updated_at",
        primary_key=["TXN_ID"],
        deletes_mode="hard",
        deletes_max_ratio=0.1,
    )
    seed_source(table.snowflake_table, rows=10)
    assert run_now(table).status == RunStatus.SUCCEEDED
    snowflake.execute(f"DELETE FROM {table.source_display} WHERE TXN_ID <= 5")  # noqa: S608 - a test table

    tripped = run_now(table)
    deliver_pending()

    assert (tripped.status, tripped.checks["failure"]) == (RunStatus.FAILED, "DeleteGuardTripped")
    guard = Incident.objects.get(kind=IncidentKind.DELETE_GUARD, key=table.name)
    assert guard.status == IncidentStatus.OPEN and "5 of 10 rows" in guard.detail
    assert ("incident.opened", "delete_guard", table.name) in events(http_receiver)

    allowed = services.run_create(
        table=table, trigger=RunTrigger.COMMAND, options=RunOptions(allow_deletes=True)
    )
    assert services.run_execute(run_id=allowed.pk, retry_transient=False).status == RunStatus.SUCCEEDED
    deliver_pending()

    guard.refresh_from_db()
    assert guard.status == IncidentStatus.RESOLVED
    assert ("incident.resolved", "delete_guard", table.name) in events(http_receiver)
