"""The protection step of a batch's transform: the run's protection plan applied to a cast, checked batch.

How values are protected (the plan, the envelope, compression, blind indexes, the catalog) lives in
`syncengine.pipeline.protection`; this is where a batch meets it on its way to the load.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future

import pyarrow as pa

from syncengine.pipeline.protection.protector import Protector
from syncengine.pipeline.protection.sealer import Sealer


def protect_batch(
    batch: pa.RecordBatch,
    protector: Protector | None,
    load_order: Sequence[str],
    *,
    sealer: Sealer | None = None,
) -> Future[pa.RecordBatch]:
    """`batch` with its protected columns stored as the plan says and blind indexes added, in `load_order`;
    unchanged for a table that protects nothing. The future is done at once unless the batch's encryption
    went to `sealer` (a process of its own)."""
    if protector is None:
        done: Future[pa.RecordBatch] = Future()
        done.set_result(batch)
        return done
    return protector.submit(batch, load_order, sealer=sealer)
