"""One archive file: a zstd stream, optionally sealed with a key of the keyring, hashed while it is written.

Sealed files (`--encrypt`) are a header and a sequence of AES-256-GCM chunks:

    b"FDMBK1" | key id length (1 byte) | key id | salt (16 bytes) | chunks...
    chunk = length of the sealed chunk (4 bytes, big-endian) | sealed chunk (ciphertext and tag)

The AES key is HKDF-SHA256 of the keyring's key with the file's salt (never the master key itself). Each chunk's
nonce is its index, and its associated data the header, the index and whether it is the last chunk: a reordered,
dropped, altered or cut-off chunk fails to open, and a file that ends before a chunk marked last is refused.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from syncengine.pipeline.protection.crypto import hkdf
from syncengine.pipeline.protection.keyring import Keyring

MAGIC = b"FDMBK1"
SALT_BYTES = 16
CHUNK_BYTES = 1 << 20
SEALED_SUFFIX = ".aes"
ZSTD_LEVEL = 3
READ_BYTES = 1 << 20


class ArchiveError(Exception):
    """An archive cannot be written, read or restored; the message is one line that names the file or table."""


@dataclass(frozen=True)
class WrittenFile:
    name: str
    sha256: str
    bytes: int


def file_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(READ_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _aead(key: bytes, salt: bytes) -> AESGCM:
    return AESGCM(hkdf(key, label=b"fdm-backup", info=b"archive-file", salt=salt))


def _associated(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">Q?", index, last)


class _SealingWriter:
    """Buffers plaintext into chunks and writes each sealed; `close` seals the last chunk (possibly empty)."""

    def __init__(self, out: BinaryIO, keyring: Keyring):
        key_id = keyring.primary.encode("ascii")
        salt = os.urandom(SALT_BYTES)
        self.header = MAGIC + bytes([len(key_id)]) + key_id + salt
        self.aead = _aead(keyring.key(keyring.primary), salt)
        self.out = out
        self.buffer = bytearray()
        self.index = 0
        out.write(self.header)

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK_BYTES:
            self._seal(bytes(self.buffer[:CHUNK_BYTES]), last=False)
            del self.buffer[:CHUNK_BYTES]
        return len(data)

    def close(self) -> None:
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = struct.pack(">4xQ", self.index)
        sealed = self.aead.encrypt(nonce, chunk, _associated(self.header, self.index, last))
        self.out.write(struct.pack(">I", len(sealed)) + sealed)
        self.index += 1


@contextmanager
def open_for_writing(path: Path, *, keyring: Keyring | None) -> Iterator[BinaryIO]:
    """A writable stream whose bytes land zstd-compressed (and sealed with `keyring`'s primary key) in `path`;
    after the block, `written(path)` describes the complete file."""
    with path.open("wb") as handle:
        sealing = _SealingWriter(handle, keyring) if keyring is not None else None
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        with compressor.stream_writer(sealing or handle, closefd=False) as stream:  # type: ignore[arg-type]
            yield stream
        if sealing is not None:
            sealing.close()


class _OpeningReader:
    """Reads a sealed file chunk by chunk, refusing any chunk that does not open and a file cut short."""

    def __init__(self, handle: BinaryIO, keyring: Keyring, name: str):
        self.handle, self.name = handle, name
        if handle.read(len(MAGIC)) != MAGIC:
            raise ArchiveError(f"{name}: not a sealed fdm archive file")
        id_length = handle.read(1)
        key_id = handle.read(id_length[0] if id_length else 0)
        salt = handle.read(SALT_BYTES)
        if not id_length or len(salt) != SALT_BYTES:
            raise ArchiveError(f"{name}: the file is truncated")
        self.header = MAGIC + id_length + key_id + salt
        self.aead = _aead(keyring.key(key_id.decode("ascii")), salt)
        self.index = 0
        self.finished = False
        self.pending = b""

    def read(self, size: int = -1) -> bytes:
        while not self.finished and (size < 0 or len(self.pending) < size):
            self.pending += self._next_chunk()
        if size < 0:
            size = len(self.pending)
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def _next_chunk(self) -> bytes:
        prefix = self.handle.read(4)
        if len(prefix) != 4:
            raise ArchiveError(f"{self.name}: the file is truncated (it ends before its last chunk)")
        (length,) = struct.unpack(">I", prefix)
        sealed = self.handle.read(length)
        nonce = struct.pack(">4xQ", self.index)
        for last in (False, True):
            try:
                chunk = self.aead.decrypt(nonce, sealed, _associated(self.header, self.index, last))
            except InvalidTag:
                continue
            self.index += 1
            self.finished = last
            return chunk
        raise ArchiveError(f"{self.name}: chunk {self.index} does not open with the keyring (altered or cut)")


@contextmanager
def open_for_reading(path: Path, *, keyring: Keyring | None) -> Iterator[BinaryIO]:
    """The decompressed (and opened) contents of an archive file, as a readable stream."""
    sealed = path.name.endswith(SEALED_SUFFIX)
    if sealed and keyring is None:
        raise ArchiveError(f"{path.name}: the file is encrypted; set FDM_ENCRYPTION_KEYS to the keyring")
    with path.open("rb") as handle:
        source: BinaryIO | _OpeningReader = (
            _OpeningReader(handle, keyring, path.name) if sealed and keyring is not None else handle
        )
        decompressor = zstandard.ZstdDecompressor()
        with decompressor.stream_reader(source, read_across_frames=True) as stream:  # type: ignore[arg-type]
            yield stream


def file_name(stem: str, *, sealed: bool) -> str:
    return f"{stem}.bin.zst{SEALED_SUFFIX if sealed else ''}"


def written(path: Path) -> WrittenFile:
    sha256, size = file_sha256(path)
    return WrittenFile(name=path.name, sha256=sha256, bytes=size)
