"""The protection step of a batch's transform: the run's protection plan applied to a cast, checked batch.

How values are protected (the plan, the envelope, compression, blind indexes, the catalog) lives in
`syncengine.pipeline.protection`; this is where a batch meets it on its way to the load.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from syncengine.pipeline.protection.protector import Protector


def protect_batch(
    batch: pa.RecordBatch, protector: Protector | None, load_order: Sequence[str]
) -> pa.RecordBatch:
    """`batch` with its protected columns stored as the plan says and blind indexes added, in `load_order`;
    unchanged for a table that protects nothing."""
    if protector is None:
        return batch
    return protector.apply(batch, load_order)
