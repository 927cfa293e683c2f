"""Peak RSS of KeyCheck alone observing N NUMBER(38,0) keys (decimal128) in batches of 100,000, in a fresh process.

Usage: .venv/bin/python -m syncengine.dev.keycheck_memory N
"""

import os
import resource
import sys

import numpy as np
import pyarrow as pa

from syncengine.pipeline.transform.validate import KeyCheck


def current() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


rows = int(sys.argv[1])
batch_size = 100_000
check = KeyCheck(table="t", key=("id",), watermark=None, duplicates_allowed=False)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
for start in range(0, rows, batch_size):
    ids = pa.array(np.arange(start, min(start + batch_size, rows), dtype=np.int64)).cast(pa.decimal128(38, 0))
    check.observe(pa.RecordBatch.from_arrays([ids], names=["id"]))
    del ids
observed = current()
checks = check.finish()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    f"{rows} keys: start {base:.0f} MB, after observing +{observed - base:.0f} MB, peak +{peak - base:.0f} MB, distinct {checks['distinct_keys']}"
)
