"""The shape and types of one table dict, checked strictly by pydantic (no coercion of "yes" to true or 1 to
"1"), with the names, schedule and limits each key accepts."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal, get_args

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

from syncconfig.choices import ScheduleKind
from syncengine.pipeline.identifiers import identifier_problem

TABLE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_TABLE_NAME_LENGTH = 63  # the name also names schedules and locks; keep it within a PostgreSQL identifier

# A new table never starts pulling from Snowflake on its own until someone picks a schedule.
DEFAULT_SCHEDULE = ScheduleKind.MANUAL.value
DEFAULT_BATCH_SIZE = 100_000
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 1_000_000  # bounds the memory of one Arrow batch in the transform stage
CRON_FIELDS = 5  # minute hour day-of-month month day-of-week; the scheduler works to the minute
MAX_SCHEDULE_LENGTH = 100  # the column's size, and django-q2's
MAX_STALENESS_MINUTES = 366 * 24 * 60  # a year: anything longer is not a freshness limit
# The pipeline's own schemas in the target database (sync state, staging tables); no table may land there.
FDM_SCHEMAS = ("_fdm", "_fdm_staging")
MIN_REASON_LENGTH = 10  # an exception to the protection policy says why, in more than a word

# The values of syncconfig.choices.SyncMode and DriftPolicy, as types (a test keeps them in step).
SyncModeValue = Literal["full", "incremental"]
DriftPolicyValue = Literal["evolve", "strict", "ignore"]
DeleteModeValue = Literal["off", "hard", "soft"]
DEFAULT_SYNC_MODE: SyncModeValue = "full"
DEFAULT_DRIFT_POLICY: DriftPolicyValue = "evolve"
DEFAULT_DELETE_MODE: DeleteModeValue = "off"
DEFAULT_DELETE_MAX_RATIO = 0.1
# `freshness_sla`: a duration in days, hours and minutes, largest unit first ("2h", "1d", "1h30m").
DURATION_PATTERN = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?$")
_MINUTES_PER = {"d": 24 * 60, "h": 60, "m": 1}
# `parallel: {slices: N}`: a full load split into N key ranges that any worker may stage.
MIN_SLICES = 2
MAX_SLICES = 64


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("fdm", "{message}", {"message": message})


def _name_problem(value: str, *, postgres: bool) -> str | None:
    problem = identifier_problem(value, postgres=postgres)
    if problem:
        return problem
    if value != value.strip():
        return f"must not start or end with whitespace; got {value!r}"
    if not value.isprintable():
        return f"must contain only printable characters; got {value!r}"
    return None


def _snowflake_identifier(value: str) -> str:
    problem = _name_problem(value, postgres=False)
    if problem:
        raise _fail(problem)
    return value


def _postgres_identifier(value: str) -> str:
    problem = _name_problem(value, postgres=True)
    if problem:
        raise _fail(problem)
    return value


def _postgres_schema(value: str) -> str:
    _postgres_identifier(value)
    if value.lower().startswith("pg_") or value.lower() == "information_schema":
        raise _fail(f"{value!r} is reserved by PostgreSQL")
    if value.lower() in FDM_SCHEMAS:
        raise _fail(f"{value!r} is reserved for fdm's sync state and staging tables")
    return value


def _table_name(value: str) -> str:
    if not TABLE_NAME_PATTERN.match(value):
        raise _fail(
            f"must start with a lower-case letter and contain only lower-case letters, digits and _; got {value!r}"
        )
    if len(value) > MAX_TABLE_NAME_LENGTH:
        raise _fail(f"must be at most {MAX_TABLE_NAME_LENGTH} characters long; got {len(value)}")
    return value


# Each cron field's name and range, in order, for errors that say which field is wrong.
CRON_FIELD_RANGES = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-6 or SUN-SAT"),
)


def _cron_field_problem(fields: list[str]) -> str | None:
    """The first field that croniter refuses on its own, named with its range."""
    for position, (name, allowed) in enumerate(CRON_FIELD_RANGES):
        alone = ["*"] * CRON_FIELDS
        alone[position] = fields[position]
        try:
            croniter(" ".join(alone), datetime.datetime(2000, 1, 1))
        except (CroniterBadCronError, ValueError, KeyError):
            return f"the {name} field {fields[position]!r} is not valid; it takes {allowed}"
    return None


def schedule_keyword(value: str) -> str | None:
    """`value` as a schedule keyword (hourly, daily, manual) whatever its case, or None."""
    lowered = value.lower()
    return lowered if lowered in ScheduleKind.keywords() else None


def schedule_problem(value: str) -> str | None:
    """Why `value` is not a schedule (hourly, daily, manual or a cron expression), or None when it is."""
    if schedule_keyword(value) is not None:
        return None
    if len(value) > MAX_SCHEDULE_LENGTH:
        return f"must be at most {MAX_SCHEDULE_LENGTH} characters long; got {len(value)}"
    if value != value.strip():
        return f"must not start or end with whitespace; got {value!r}"
    # croniter also accepts 6 and 7 fields (seconds, years), which a minute-level scheduler cannot honour.
    if not value.startswith("@") and len(value.split()) != CRON_FIELDS:
        return (
            "must be hourly, daily, manual or a cron expression with 5 fields "
            f"(minute hour day-of-month month day-of-week); got {value!r}"
        )
    try:
        croniter(value, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
    except CroniterBadDateError:
        return f"cron expression {value!r} never fires"
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        field_problem = _cron_field_problem(value.split()) if not value.startswith("@") else None
        return f"invalid cron expression {value!r}: {field_problem or exc}"
    return None


def duration_minutes(value: str) -> int:
    """Minutes in a duration such as "2h", "1d" or "1h30m"; ValueError naming the accepted forms."""
    match = DURATION_PATTERN.match(value)
    if not value or match is None:
        raise ValueError(f'must be a duration such as "30m", "2h", "1d" or "1h30m"; got {value!r}')
    return sum(int(amount) * _MINUTES_PER[unit] for unit, amount in match.groupdict().items() if amount)


def duration_text(minutes: int) -> str:
    """The canonical text of a duration in minutes: "90" -> "1h30m", "1440" -> "1d"."""
    days, rest = divmod(minutes, _MINUTES_PER["d"])
    hours, mins = divmod(rest, _MINUTES_PER["h"])
    return "".join(f"{amount}{unit}" for amount, unit in ((days, "d"), (hours, "h"), (mins, "m")) if amount)


def _duration(value: str) -> str:
    try:
        minutes = duration_minutes(value)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not 1 <= minutes <= MAX_STALENESS_MINUTES:
        raise _fail(f"must be between 1m and {duration_text(MAX_STALENESS_MINUTES)}; got {value!r}")
    return value


def _schedule_or_none(value: str) -> str:
    value = _schedule(value)
    if value == ScheduleKind.MANUAL.value:
        raise _fail("must be hourly, daily or a cron expression (leave reconcile out for no schedule)")
    return value


def _notes(value: str) -> str:
    if "\x00" in value:
        raise _fail("must not contain a NUL character")  # PostgreSQL text cannot hold one
    return value


def _reason(value: str) -> str:
    if len(value.strip()) < MIN_REASON_LENGTH:
        raise _fail(f"must give the reason in at least {MIN_REASON_LENGTH} characters")
    return _notes(value)


def _slices(value: int) -> int:
    if not MIN_SLICES <= value <= MAX_SLICES:
        raise _fail(f"must be between {MIN_SLICES} and {MAX_SLICES}, got {value}")
    return value


def _schedule(value: str) -> str:
    problem = schedule_problem(value)
    if problem:
        raise _fail(problem)
    return schedule_keyword(value) or value  # "Daily" is daily


SnowflakeName = Annotated[str, AfterValidator(_snowflake_identifier)]
PostgresName = Annotated[str, AfterValidator(_postgres_identifier)]
PostgresSchema = Annotated[str, AfterValidator(_postgres_schema)]
TableName = Annotated[str, AfterValidator(_table_name)]
Schedule = Annotated[str, AfterValidator(_schedule)]
Notes = Annotated[str, AfterValidator(_notes)]
Reason = Annotated[str, AfterValidator(_reason)]
Duration = Annotated[str, AfterValidator(_duration)]
ReconcileSchedule = Annotated[str, AfterValidator(_schedule_or_none)]
SliceCount = Annotated[int, AfterValidator(_slices)]


class _Strict(BaseModel):
    # strict: YAML's 1 stays an integer and "yes" stays a string, so a wrong type is reported, not coerced.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SnowflakeSource(_Strict):
    database: SnowflakeName
    schema_: SnowflakeName = Field(alias="schema")
    table: SnowflakeName


class PostgresTarget(_Strict):
    schema_: PostgresSchema = Field(alias="schema")
    table: PostgresName


class ColumnSelection(_Strict):
    include: list[SnowflakeName] | None = None
    exclude: list[SnowflakeName] | None = None


class EncryptionBlock(_Strict):
    all: bool | None = None  # `{all: true, searchable: [...]}`: every column, some of them searchable
    columns: list[SnowflakeName] | None = None
    searchable: list[SnowflakeName] = []


class CompressionBlock(_Strict):
    columns: list[SnowflakeName]


class DeletesBlock(_Strict):
    mode: DeleteModeValue = DEFAULT_DELETE_MODE
    # A run that would delete more than this share of the target's rows fails and deletes nothing.
    max_ratio: float = Field(default=DEFAULT_DELETE_MAX_RATIO, gt=0, le=1)


class ReconcileBlock(_Strict):
    schedule: ReconcileSchedule  # when the deep check runs (hourly, daily or cron, UTC)


class ParallelBlock(_Strict):
    slices: SliceCount  # key ranges of a full load, staged by any worker, published together


def _flag_or_mapping(value: Any) -> str | None:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, dict):
        return "block"
    return None


_FLAG_OR_BLOCK = Discriminator(
    _flag_or_mapping,
    custom_error_type="flag_or_mapping",
    custom_error_message="must be true, false or a mapping",
)
EncryptionSetting = Annotated[
    Annotated[bool, Tag("flag")] | Annotated[EncryptionBlock, Tag("block")], _FLAG_OR_BLOCK
]
CompressionSetting = Annotated[
    Annotated[bool, Tag("flag")] | Annotated[CompressionBlock, Tag("block")], _FLAG_OR_BLOCK
]


class TableDocument(_Strict):
    """One table as the YAML file, the admin form and the API describe it (keys: docs/table-configuration.md)."""

    name: TableName
    snowflake: SnowflakeSource
    postgres: PostgresTarget
    sync_mode: SyncModeValue = DEFAULT_SYNC_MODE
    incremental_column: SnowflakeName | None = None
    schedule: Schedule = DEFAULT_SCHEDULE
    primary_key: list[SnowflakeName] = []
    columns: ColumnSelection | None = None
    encryption: EncryptionSetting = False
    compression: CompressionSetting = False
    column_names: dict[SnowflakeName, PostgresName] = {}
    # Source columns that another table encrypts and this one may keep in clear, each with the reason.
    clear_columns: dict[SnowflakeName, Reason] = {}
    schema_drift: DriftPolicyValue = DEFAULT_DRIFT_POLICY
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=MIN_BATCH_SIZE, le=MAX_BATCH_SIZE)
    deletes: DeletesBlock | None = None
    history: bool = False
    lineage: bool = False
    # How old the last successful run may get before the table is late ("2h"); `max_staleness_minutes`
    # (a number of minutes) is its older spelling, still read.
    freshness_sla: Duration | None = None
    max_staleness_minutes: int | None = Field(default=None, ge=1, le=MAX_STALENESS_MINUTES)
    reconcile: ReconcileBlock | None = None
    parallel: ParallelBlock | None = None
    enabled: bool = True
    notes: Notes = ""


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(field.alias or name for name, field in model.model_fields.items())


TABLE_KEYS = _keys(TableDocument)
# The keys allowed in each nested mapping, to list them when a key is unknown.
ALLOWED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): TABLE_KEYS,
    ("snowflake",): _keys(SnowflakeSource),
    ("postgres",): _keys(PostgresTarget),
    ("columns",): _keys(ColumnSelection),
    ("encryption",): _keys(EncryptionBlock),
    ("compression",): _keys(CompressionBlock),
    ("deletes",): _keys(DeletesBlock),
    ("reconcile",): _keys(ReconcileBlock),
    ("parallel",): _keys(ParallelBlock),
}
CHOICES = {
    "sync_mode": get_args(SyncModeValue),
    "schema_drift": get_args(DriftPolicyValue),
    "mode": get_args(DeleteModeValue),  # deletes.mode
}
