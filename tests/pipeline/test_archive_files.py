"""Archive files without Django: zstd streams round-trip, sealed ones open only with the keyring and refuse a
file cut at a chunk boundary (which a plain zstd stream could not tell from its end)."""

from __future__ import annotations

import os

import pytest

from syncengine.pipeline.archive import files
from syncengine.pipeline.protection.keyring import Keyring


def write(path, payload: bytes, keyring):
    with files.open_for_writing(path, keyring=keyring) as out:
        for start in range(0, len(payload), 100_000):
            out.write(payload[start : start + 100_000])
    return files.written(path)


def read(path, keyring) -> bytes:
    with files.open_for_reading(path, keyring=keyring) as source:
        return source.read()


@pytest.mark.parametrize("sealed", [False, True])
def test_a_file_reads_back_what_was_written(tmp_path, sealed):
    keyring = Keyring.generate("k1") if sealed else None
    payload = os.urandom(1_500_000) + b"x" * 3_000_000  # more than one sealed chunk
    path = tmp_path / files.file_name("rows", sealed=sealed)
    entry = write(path, payload, keyring)
    assert entry.bytes == path.stat().st_size and len(entry.sha256) == 64
    assert read(path, keyring) == payload


def test_a_sealed_file_cut_at_a_chunk_boundary_or_opened_with_another_key_is_refused(tmp_path):
    keyring = Keyring.generate("k1")
    path = tmp_path / files.file_name("rows", sealed=True)
    write(path, os.urandom(3 * files.CHUNK_BYTES), keyring)
    data = path.read_bytes()
    header = len(files.MAGIC) + 1 + 2 + files.SALT_BYTES
    first_chunk = int.from_bytes(data[header : header + 4], "big")
    path.write_bytes(data[: header + 4 + first_chunk])
    with pytest.raises(files.ArchiveError, match="truncated"):
        read(path, keyring)
    path.write_bytes(data)
    other = Keyring(primary="k1", keys={"k1": Keyring.generate("x").keys["x"]})
    with pytest.raises(files.ArchiveError, match="chunk 0 does not open"):
        read(path, other)
