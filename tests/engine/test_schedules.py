"""Each enabled, scheduled table has exactly one django-q2 Schedule, kept in step with its configuration."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from croniter import croniter
from django.utils import timezone
from django_q.models import Schedule

from syncengine.schedules import (
    REAPER_TASK,
    SCHEDULED_SYNC_TASK,
    schedules_sync_all,
    table_schedule_sync,
)

pytestmark = pytest.mark.django_db


def schedules_of(table) -> list[Schedule]:
    return list(Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, args=str(table.pk)))


def only_schedule_of(table) -> Schedule:
    found = schedules_of(table)
    assert len(found) == 1, found
    return found[0]


def test_an_hourly_table_gets_one_hourly_schedule_at_the_top_of_the_hour(make_table):
    table = make_table(schedule="hourly")
    schedule = only_schedule_of(table)
    assert schedule.name == f"fdm-sync:{table.name}"
    assert schedule.schedule_type == Schedule.HOURLY
    assert schedule.repeats == -1
    assert schedule.next_run > timezone.now()
    assert schedule.next_run - timezone.now() <= timedelta(hours=1)
    assert (schedule.next_run.minute, schedule.next_run.second) == (0, 0)


def test_a_daily_table_runs_at_midnight(make_table):
    schedule = only_schedule_of(make_table(schedule="daily"))
    assert schedule.schedule_type == Schedule.DAILY
    local = timezone.localtime(schedule.next_run)
    assert (local.hour, local.minute) == (0, 0)


def test_a_cron_table_gets_a_cron_schedule(make_table):
    table = make_table(schedule="*/15 6-18 * * 1-5")
    schedule = only_schedule_of(table)
    assert schedule.schedule_type == Schedule.CRON
    assert schedule.cron == "*/15 6-18 * * 1-5"
    expected = croniter("*/15 6-18 * * 1-5", timezone.localtime()).get_next(datetime)
    assert schedule.next_run == expected


def test_manual_and_disabled_tables_have_no_schedule(make_table):
    assert schedules_of(make_table(schedule="manual")) == []
    assert schedules_of(make_table(schedule="hourly", enabled=False)) == []


def test_the_schedule_follows_every_change(make_table):
    table = make_table(schedule="hourly")
    first = only_schedule_of(table)

    table.schedule = "30 2 * * *"
    table.save()
    changed = only_schedule_of(table)
    assert changed.pk == first.pk  # updated in place, not replaced
    assert (changed.schedule_type, changed.cron) == (Schedule.CRON, "30 2 * * *")
    assert (timezone.localtime(changed.next_run).hour, changed.next_run.minute) == (2, 30)

    table.enabled = False
    table.save()
    assert schedules_of(table) == []

    table.enabled = True
    table.save()
    assert only_schedule_of(table).schedule_type == Schedule.CRON

    table.schedule = "manual"
    table.save()
    assert schedules_of(table) == []

    table.schedule = "daily"
    table.save()
    assert only_schedule_of(table).schedule_type == Schedule.DAILY

    table_id = table.pk
    table.delete()
    assert Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, args=str(table_id)).count() == 0


def test_saving_an_unrelated_setting_keeps_the_next_run(make_table):
    table = make_table(schedule="hourly")
    Schedule.objects.filter(pk=only_schedule_of(table).pk).update(
        next_run=timezone.now() + timedelta(minutes=7)
    )
    before = only_schedule_of(table).next_run

    table.notes = "owned by treasury"
    table.save()
    assert only_schedule_of(table).next_run == before


def test_renaming_a_table_renames_its_schedule(make_table):
    table = make_table(schedule="hourly")
    table.name = f"{table.name}_renamed"
    table.save()
    assert only_schedule_of(table).name == f"fdm-sync:{table.name}"


def test_duplicates_are_collapsed_to_one(make_table):
    table = make_table(schedule="hourly")
    Schedule.objects.create(func=SCHEDULED_SYNC_TASK, args=str(table.pk), schedule_type=Schedule.HOURLY)
    assert len(schedules_of(table)) == 2
    assert table_schedule_sync(table=table) == "updated"
    assert len(schedules_of(table)) == 1


def test_sync_all_repairs_drift(make_table):
    hourly = make_table(schedule="hourly")
    cron = make_table(schedule="0 6 * * *")
    manual = make_table(schedule="manual")
    # Drift: a lost schedule, a stale one for a manual table, one for a table that no longer exists.
    Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, args=str(hourly.pk)).delete()
    Schedule.objects.create(func=SCHEDULED_SYNC_TASK, args=str(manual.pk), schedule_type=Schedule.HOURLY)
    Schedule.objects.create(func=SCHEDULED_SYNC_TASK, args="987654321", schedule_type=Schedule.HOURLY)
    Schedule.objects.filter(func=REAPER_TASK).delete()

    report = schedules_sync_all()

    assert only_schedule_of(hourly).schedule_type == Schedule.HOURLY
    assert only_schedule_of(cron).cron == "0 6 * * *"
    assert schedules_of(manual) == []
    assert not Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, args="987654321").exists()
    assert (report.created, report.deleted) == (1, 2)
    assert Schedule.objects.filter(func=REAPER_TASK).count() == 1

    again = schedules_sync_all()
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_the_reaper_is_scheduled_after_migrate():
    # pytest-django migrated the test database, which sent post_migrate.
    reaper = Schedule.objects.get(func=REAPER_TASK)
    assert reaper.schedule_type == Schedule.MINUTES
    assert reaper.minutes == 5
    assert reaper.repeats == -1


def test_sync_schedules_command(make_table):
    from io import StringIO

    from django.core.management import call_command

    table = make_table(schedule="hourly")
    Schedule.objects.filter(func=SCHEDULED_SYNC_TASK).delete()
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    assert "1 created" in out.getvalue()
    assert only_schedule_of(table)


def test_a_reconcile_schedule_sits_next_to_the_sync_schedule_and_follows_the_table(
    make_table, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    from syncengine import tasks
    from syncengine.models import Reconciliation
    from syncengine.schedules import SCHEDULED_RECONCILE_TASK, table_schedule_delete

    table = make_table(schedule="hourly", reconcile_schedule="0 3 * * *")

    def reconciles():
        return Schedule.objects.filter(func=SCHEDULED_RECONCILE_TASK, args=str(table.pk))

    assert [(s.name, s.schedule_type, s.cron) for s in reconciles()] == [
        (f"fdm-reconcile:{table.name}", Schedule.CRON, "0 3 * * *")
    ]
    assert len(schedules_of(table)) == 1  # the sync's own schedule is untouched

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.scheduled_reconciliation(table.pk) is not None
    queued = Reconciliation.objects.get(table=table)
    assert (queued.deep, queued.trigger, queued.status) == (True, "schedule", "queued")
    assert OrmQ.objects.count() == 1

    table.reconcile_schedule = ""
    table.save()
    assert not reconciles().exists()
    table.reconcile_schedule = "daily"
    table.save()
    assert reconciles().get().schedule_type == Schedule.DAILY
    table_schedule_delete(table_id=table.pk)
    assert not reconciles().exists() and schedules_of(table) == []
