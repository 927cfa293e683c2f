"""Pipeline errors say whether they are terminal or transient; that decides retry and run status.

Messages name the table, the column (when there is one) and the cause, and never carry a secret.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class. `terminal` errors fail the run for good; transient ones may be retried."""

    terminal: bool = True

    def __init__(self, message: str, *, table: str | None = None, column: str | None = None):
        self.table = table
        self.column = column
        where = ""
        if table and column:
            where = f"{table}.{column}: "
        elif table:
            where = f"{table}: "
        super().__init__(f"{where}{message}")
        self.message = message


class TerminalError(PipelineError):
    terminal = True


class TransientError(PipelineError):
    """Network trouble, lock or statement timeouts, a restarting server: worth another attempt."""

    terminal = False


class ConfigurationError(TerminalError):
    """The table's configuration or the connection settings are wrong (names the setting, not its value)."""


class SourceSchemaError(TerminalError):
    """The source table or a configured column does not exist or has an unsupported type."""


class SchemaDriftError(TerminalError):
    """The source's columns changed in a way the table's drift policy says must stop the run."""


class ValidationFailed(TerminalError):
    """A data check failed (null or duplicate primary key, row counts that do not add up)."""


class TypeOverflowError(TerminalError):
    """A value does not fit its target type."""


class TableBusy(PipelineError):
    """Another run holds this table; the request is recorded as skipped, never run in parallel."""

    terminal = True


class RunCancelled(PipelineError):
    """The run was cancelled by an operator between batches; the target is left as it was."""

    terminal = True


class CorruptValue(TerminalError):
    """A stored value cannot be decoded (a damaged compressed frame, say); the message never carries the data."""


class UnknownDictionary(CorruptValue):
    """A compressed value names a compression dictionary that is not stored for its table."""


class DictionaryIdTaken(TerminalError):
    """A compression dictionary id is already stored with other contents; train again with a new id."""


class DeleteGuardTripped(TerminalError):
    """A run would delete more of the target's rows than the table's `deletes.max_ratio` allows: the source
    may be truncated or the table pointed at the wrong one. The run publishes nothing and deletes nothing."""
