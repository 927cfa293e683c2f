"""Reading a table's key-range slices over several Snowflake sessions at once, into one bounded stream of Arrow
batches that the run's own thread consumes.

Each session is a reader thread that takes the next unread slice, streams it (`extract.stream_batches`) and puts
its batches on one queue of `depth` slots. The run's thread casts, checks, protects and copies them as it did
with one query, so the key checks, the watermark's maximum, protection and the run's callbacks never leave it.
Memory is bounded by the sessions and the queue, not by the table: a session holds one slice's result at a
time (the emulator sends a query's whole result at once, Snowflake in chunks).

The run's own session reads too; the others are opened by their reader threads, so logging in overlaps the
first slice's read, and closed when they run out of slices. The first failure (a query, a login, a dropped
session) is raised in the run's thread and stops the other readers at their next batch; a reader still
waiting on the source then finishes on its own, closing its cursor and session in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from queue import Empty, Full, Queue, SimpleQueue

import pyarrow as pa
from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.extract import SourceQuery, stream_batches
from syncengine.pipeline.source import close_in_background

_DONE = object()  # a reader has no more slices
_ABANDONED_WAIT = 1.0  # seconds a failed read waits for its readers before leaving them to finish alone


@dataclass(frozen=True)
class Sessions:
    """The Snowflake sessions a read may use: the run's own, and how to open more, up to `count` in all."""

    first: SnowflakeConnection
    connect: Callable[[], SnowflakeConnection]  # raises a classified PipelineError
    count: int = 1


@dataclass(frozen=True)
class SliceQueries:
    """What to read: one query per slice, and the batch size; `query_ids[i]` receives slice i's Snowflake ids."""

    queries: Sequence[SourceQuery]
    batch_size: int
    table: str
    query_ids: list[list[str]]


def read_slices(
    reads: SliceQueries, sessions: Sessions, *, depth: int = 2
) -> Generator[pa.RecordBatch, None, None]:
    """The batches of every slice, in no fixed order, as they arrive. Closing the generator stops the read."""
    pending: SimpleQueue[int] = SimpleQueue()
    for index in range(len(reads.queries)):
        pending.put(index)
    out: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()
    reader = _Reader(reads, pending, out, stop)
    threads = [
        threading.Thread(
            target=reader.run,
            args=((lambda: sessions.first) if number == 0 else sessions.connect, number == 0),
            name=f"fdm extract {number}",
            daemon=True,
        )
        for number in range(max(1, min(sessions.count, len(reads.queries))))
    ]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            item = out.get()
            if item is _DONE:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                assert isinstance(item, pa.RecordBatch)
                yield item
    finally:
        stop.set()
        deadline = time.monotonic() + _ABANDONED_WAIT
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


class _Reader:
    """The work of one reader thread: slices from `pending` until none is left or the read stops."""

    def __init__(
        self, reads: SliceQueries, pending: SimpleQueue[int], out: Queue[object], stop: threading.Event
    ):
        self.reads, self.pending, self.out, self.stop = reads, pending, out, stop

    def put(self, item: object) -> bool:
        """Hand `item` to the run's thread; False once the read has stopped (nobody takes it any more)."""
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def run(self, open_session: Callable[[], SnowflakeConnection], shared: bool) -> None:
        conn: SnowflakeConnection | None = None
        failed = False
        try:
            conn = open_session()
            self.read_all(conn)
        except BaseException as exc:  # handed to the run's thread, which raises it
            failed = True
            self.put(exc)
        finally:
            if conn is not None and not shared:  # the run's own session is the run's to close
                if failed or self.stop.is_set():
                    close_in_background(conn.close, what="source session")
                else:
                    with suppress(Exception):
                        conn.close()
            self.put(_DONE)

    def read_all(self, conn: SnowflakeConnection) -> None:
        reads = self.reads
        while not self.stop.is_set():
            try:
                index = self.pending.get_nowait()
            except Empty:
                return
            batches = stream_batches(
                conn,
                reads.queries[index],
                batch_size=reads.batch_size,
                table=reads.table,
                query_ids=reads.query_ids[index],
            )
            try:
                for batch in batches:
                    if not self.put(batch):
                        return
            finally:
                batches.close()
