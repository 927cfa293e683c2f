"""Encryption in a process of its own: a large run's AEAD calls overlap extraction and COPY.

Encrypting is one AEAD call per value (C code, but each call holds the GIL), so on the run's thread it queues
behind everything else the run does in Python. A run with encrypted columns and full batches hands their
encryption to a child process, `python -m syncengine.pipeline.protection.sealer`, one batch at a time, while
the run's thread goes on casting, checking and copying the next ones.

- The child makes envelopes with the same `ColumnCipher.encrypt` as a run without it: same format, same keys,
  its own random salts and nonces from the OS.
- It gets the primary key as its first message over a pipe, never in its arguments or environment (which other
  processes of the same user can read), and nothing else: its environment holds no secret.
- Requests and answers are Arrow IPC streams over the pipe (`multiprocessing.connection` framing); nothing is
  pickled.
- It exits when the pipe closes: when the run finishes, fails, or its process dies (a kill leaves no child).
  If the child dies first, the run fails transient, naming its exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from syncengine.pipeline.errors import PipelineError, TerminalError, TransientError
from syncengine.pipeline.protection.crypto import ColumnCipher, ColumnIdentity
from syncengine.pipeline.protection.keyring import Keyring

# A run starts its child on its first batch of at least this many rows (and hands it every batch from then
# on); smaller tables are encrypted on the run's thread: a child's start (about half a second of imports)
# would cost more than their whole encryption.
OFFLOAD_MIN_ROWS = 20_000
STOP_TIMEOUT_SECONDS = 5.0
ROW_KEY = "row_key"

T = TypeVar("T")


@dataclass(frozen=True)
class SealColumn:
    """One column of a batch to encrypt: where its values live, the plaintexts, and whether they are zstd."""

    identity: ColumnIdentity
    plaintexts: pa.Array
    compressed: bool


class Sealer:
    """The parent's side: one child for one run's batches, requests answered in order on one thread."""

    def __init__(self, keyring: Keyring, *, table: str):
        self.table = table
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        package_root = str(Path(__file__).resolve().parents[3])
        environment = {
            name: os.environ[name]
            for name in ("PATH", "LANG", "LC_ALL", "MALLOC_ARENA_MAX")
            if name in os.environ
        }
        environment["PYTHONPATH"] = package_root
        try:
            self._process = subprocess.Popen(  # noqa: S603 - this interpreter, this module, two descriptors
                [sys.executable, "-m", __name__, str(to_child_read), str(from_child_write)],
                pass_fds=(to_child_read, from_child_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=environment,
                cwd=package_root,
            )
        finally:
            os.close(to_child_read)
            os.close(from_child_write)
        self._outbox = Connection(to_child_write, readable=False)
        self._inbox = Connection(from_child_read, writable=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fdm sealer")
        # Only the primary key: new values are encrypted with it, and the child decrypts nothing.
        keys = {keyring.primary: keyring.key(keyring.primary).hex()}
        self._send(json.dumps({"primary": keyring.primary, "keys": keys}).encode())

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Run `work` (which calls `encrypt`) on the sealer's thread, after the work submitted before it."""
        return self._executor.submit(work)

    def encrypt(self, columns: Sequence[SealColumn], row_keys: pa.Array | None) -> list[pa.Array]:
        """The envelopes of each column's values, made in the child (blocks the calling thread, not the GIL)."""
        header = {
            "columns": [
                {
                    "identity": [column.identity.schema, column.identity.table, column.identity.column],
                    "compressed": column.compressed,
                }
                for column in columns
            ],
            "row_keys": row_keys is not None,
        }
        arrays = [column.plaintexts for column in columns] + ([row_keys] if row_keys is not None else [])
        names = [f"c{index}" for index in range(len(columns))] + ([ROW_KEY] if row_keys is not None else [])
        self._send(json.dumps(header).encode(), _ipc(pa.RecordBatch.from_arrays(arrays, names=names)))
        answer = json.loads(self._receive())
        if "error" in answer:
            kind = TerminalError if answer["terminal"] else TransientError
            raise kind(f"encrypting a batch: {answer['error']}", table=self.table)
        envelopes = _from_ipc(self._receive())
        return [envelopes.column(index) for index in range(len(columns))]

    def _send(self, *messages: bytes) -> None:
        try:
            for message in messages:
                self._outbox.send_bytes(message)
        except OSError:
            raise self._gone() from None

    def _receive(self) -> bytes:
        try:
            return self._inbox.recv_bytes()
        except (EOFError, OSError):
            raise self._gone() from None

    def _gone(self) -> TransientError:
        try:
            code = self._process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        return TransientError(
            f"the encryption process (pid {self._process.pid}) stopped answering (exit code {code})",
            table=self.table,
        )

    def close(self) -> None:
        """Drop the work not started, close the pipe (the child exits on it) and reap the child."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._outbox.close()
        self._inbox.close()
        try:
            self._process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.RecordBatch:
    with pa.ipc.open_stream(data) as reader:
        return reader.read_next_batch()


# --- the child -----------------------------------------------------------------------------------------------


def serve(inbox: Connection, outbox: Connection) -> None:
    """Answer requests until the parent closes the pipe."""
    init = json.loads(inbox.recv_bytes())
    keyring = Keyring(
        primary=init["primary"], keys={key_id: bytes.fromhex(k) for key_id, k in init["keys"].items()}
    )
    ciphers: dict[ColumnIdentity, ColumnCipher] = {}
    while True:
        try:
            header = json.loads(inbox.recv_bytes())
            batch = _from_ipc(inbox.recv_bytes())
        except EOFError:
            return
        try:
            row_keys = batch.column(ROW_KEY) if header["row_keys"] else None
            envelopes = []
            for index, column in enumerate(header["columns"]):
                identity = ColumnIdentity(*column["identity"])
                cipher = ciphers.get(identity) or ciphers.setdefault(
                    identity, ColumnCipher(keyring, identity)
                )
                envelopes.append(
                    cipher.encrypt(batch.column(index), row_keys=row_keys, compressed=column["compressed"])
                )
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the run, which classifies it
            terminal = exc.terminal if isinstance(exc, PipelineError) else True
            outbox.send_bytes(json.dumps({"error": str(exc), "terminal": terminal}).encode())
            continue
        names = [f"e{index}" for index in range(len(envelopes))]
        outbox.send_bytes(b"{}")
        outbox.send_bytes(_ipc(pa.RecordBatch.from_arrays(envelopes, names=names)))


def main(argv: Sequence[str]) -> int:
    inbox = Connection(int(argv[1]), writable=False)
    outbox = Connection(int(argv[2]), readable=False)
    try:
        serve(inbox, outbox)
    except (BrokenPipeError, EOFError):
        pass  # the run went away; nothing of it is left to answer
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
