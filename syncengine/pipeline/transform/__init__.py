"""Transforms run on Arrow batches, column-wise: never a Python loop per row on the hot path.

A batch travels: column transforms (the hooks below) -> casts to the target's wire types (`casts`) -> key
checks (`validate`) -> load.

Column transforms plug in through `COLUMN_TRANSFORMS`. Each is called once per run with the table's spec and
column plan, before anything is extracted, and either declines (returns None) or returns the plan it needs (a
column it encrypts becomes bytea, say) and the function it applies to every batch as extracted, with columns
named by their source names (a column the drift policy leaves out of this run is absent from the batch). A transform that cannot honour the configuration raises a terminal error, so a
column configured as sensitive is never written as plaintext.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from syncengine.pipeline.schema.columns import TablePlan
from syncengine.pipeline.spec import TableSpec
from syncengine.pipeline.transform.protection import refuse_unavailable_protection

BatchFunction = Callable[[pa.RecordBatch], pa.RecordBatch]


@dataclass(frozen=True)
class PreparedTransform:
    name: str
    plan: TablePlan  # the column plan after this transform (target types may change)
    apply: BatchFunction


class ColumnTransform(Protocol):
    def __call__(self, spec: TableSpec, plan: TablePlan) -> PreparedTransform | None: ...


COLUMN_TRANSFORMS: list[ColumnTransform] = [refuse_unavailable_protection]


def prepare_transforms(spec: TableSpec, plan: TablePlan) -> tuple[TablePlan, list[PreparedTransform]]:
    """Give every registered column transform its say, in order; each sees the plan its predecessors left."""
    prepared: list[PreparedTransform] = []
    for transform in COLUMN_TRANSFORMS:
        result = transform(spec, plan)
        if result is not None:
            prepared.append(result)
            plan = result.plan
    return plan, prepared
