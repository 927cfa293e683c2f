"""Column encryption (AES-256-GCM) on Arrow arrays; blind indexes are in `blind_index`, row keys in `rowkeys`.

The stored form of one encrypted value (PostgreSQL `bytea`), format version 2::

    version (1 byte, 0x02) | flags (1) | key id length L (1) | key id (L, ASCII)
    | key salt (16) | nonce (12) | ciphertext | GCM tag (16)

Versions differ only in how the column's identity is bound into the keys and the associated data: version 2
length-prefixes the target's schema, table and column each; version 1 (still read) bound `schema.table` and
column, so two targets whose names contain dots (`a.b`+`c` and `a`+`b.c`) shared keys. The envelope's version
byte picks the encoding when a value is read.

- The AES key is never a master key: it is HKDF-SHA256(master key `key id`, salt = key salt, info = the column's
  identity). Every batch of values gets a fresh random key salt, so one AES key encrypts at most one batch
  (`batch_size`, at most 1,000,000 values) and random 96-bit nonces stay far from GCM's 2^32-messages-per-key
  limit however long a table is synced (within a batch, the chance of any nonce repeating is below 2^-57).
- The associated data binds a ciphertext to its place: the target table (schema, table), the column, the row's
  primary key (when the table has one) and the header above, so a ciphertext copied to another row, column or
  table, or given another key id or flag, does not decrypt.
- The plaintext is padded before encryption (`flags` bit 0): a 4-byte length, the value, then zeros up to a
  multiple of 16 bytes below 256 bytes and to a Padmé bucket above (at most 12% larger), so a ciphertext's
  length tells little about its value's. Flags bit 1 says the plaintext is a zstd frame (compressed first).

Encryption is column-wise: padding, row keys, the associated data and the envelope assembly are Arrow/numpy
operations; the one call per value left is the AEAD itself (C code in `cryptography`), about 0.7 µs.
Decryption (reads, key rotation) parses values one at a time; it is not on the sync's path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syncengine.pipeline.errors import TerminalError
from syncengine.pipeline.protection.keyring import Keyring

FORMAT_VERSION = 2  # what new encryptions write
READABLE_VERSIONS = (1, 2)
FLAG_PADDED = 0x01
FLAG_COMPRESSED = 0x02
KNOWN_FLAGS = FLAG_PADDED | FLAG_COMPRESSED
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
LENGTH_PREFIX_BYTES = 4
PAD_BLOCK = 16
PADME_FROM = 256  # below: multiples of PAD_BLOCK; from here on: Padmé buckets


def labels(version: int) -> tuple[bytes, bytes, bytes]:
    """The labels of the associated data, the AES key and the blind index key of a format version."""
    prefix = f"fdm/v{version}/".encode()
    return prefix + b"aad", prefix + b"aes-256-gcm", prefix + b"blind-index"


class DecryptionError(TerminalError):
    """A stored value does not decrypt: tampered, moved from another place, or made with another key.

    The message says where (table, column) and why, never the value.
    """


@dataclass(frozen=True)
class ColumnIdentity:
    """Where encrypted values live: the target table's schema and name, and the target column."""

    schema: str
    table: str
    column: str

    @property
    def relation(self) -> str:
        """`schema.table`, for messages."""
        return f"{self.schema}.{self.table}"

    def encoded(self, version: int = FORMAT_VERSION) -> bytes:
        """Version 2: schema, table and column, each length-prefixed. Version 1 (values stored before):
        `schema.table` and column, each length-prefixed, which targets with dots in their names could share."""
        parts = (self.relation, self.column) if version == 1 else (self.schema, self.table, self.column)
        return b"".join(_length_prefixed(part.encode("utf-8")) for part in parts)


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def hkdf(master: bytes, *, label: bytes, info: bytes, salt: bytes | None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=label + b"\x00" + info).derive(master)


def check_version(version: int) -> None:
    if version not in READABLE_VERSIONS:
        raise ValueError(f"format version must be one of {READABLE_VERSIONS}")


# --- padding ---------------------------------------------------------------------------------------------


def padded_lengths(lengths: np.ndarray) -> np.ndarray:
    """Padded plaintext sizes for plaintexts of `lengths` bytes (the 4-byte length prefix included).

    Below 256 bytes: the next multiple of 16. From 256 bytes: Padmé (Nikitin et al., "Reducing Metadata Leakage
    from Encrypted Files and Communication with PURBs", 2019), which leaks O(log log L) bits of the length and
    adds at most 12%.
    """
    total = lengths.astype(np.int64) + LENGTH_PREFIX_BYTES
    small = ((total + PAD_BLOCK - 1) // PAD_BLOCK) * PAD_BLOCK
    exponent = np.floor(np.log2(np.maximum(total, 2))).astype(np.int64)
    significant = np.floor(np.log2(np.maximum(exponent, 1))).astype(np.int64) + 1
    mask = (np.int64(1) << np.maximum(exponent - significant, 0)) - 1
    padme = (total + mask) & ~mask
    return np.where(total < PADME_FROM, small, np.maximum(padme, small))


def pad_array(values: pa.Array) -> pa.Array:
    """Every non-null value as `length (4 bytes, big-endian) | value | zeros`, padded (see `padded_lengths`).

    Column-wise: the padded values are laid out in one zeroed numpy buffer, and the prefixes and the values'
    bytes are scattered into it with two vectorised assignments; no per-value Python.
    """
    values = values.cast(pa.binary()) if values.type != pa.binary() else values
    if len(values) == 0:
        return values
    filled = cast(pa.Array, values.fill_null(b"")) if values.null_count else values
    offsets, data = _binary_buffers(filled)
    lengths = np.diff(offsets)
    sizes = padded_lengths(lengths)
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    out = np.zeros(int(starts[-1]), dtype=np.uint8)
    prefix_positions = starts[:-1, None] + np.arange(LENGTH_PREFIX_BYTES)
    out[prefix_positions] = lengths.astype(">u4").view(np.uint8).reshape(-1, LENGTH_PREFIX_BYTES)
    # Each value byte moves by its value's (new start + prefix - old start).
    shift = np.repeat(starts[:-1] + LENGTH_PREFIX_BYTES - offsets[:-1], lengths)
    out[np.arange(offsets[0], offsets[-1], dtype=np.int64) + shift] = data[offsets[0] : offsets[-1]]
    padded = binary_array(starts, out)
    if values.null_count:
        padded = cast(pa.Array, pc.if_else(values.is_valid(), padded, pa.scalar(None, pa.binary())))
    return padded


def _binary_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The value offsets (int64, one more than values) and the data bytes of a binary array without nulls."""
    _validity, offsets_buffer, data_buffer = values.buffers()
    assert offsets_buffer is not None
    offsets = np.frombuffer(
        memoryview(offsets_buffer), dtype=np.int32, count=len(values) + 1, offset=values.offset * 4
    )
    data = (
        np.frombuffer(memoryview(data_buffer), dtype=np.uint8)
        if data_buffer is not None
        else np.zeros(0, np.uint8)
    )
    return offsets.astype(np.int64), data


def binary_array(starts: np.ndarray, data: np.ndarray | bytes) -> pa.Array:
    """A binary array (no nulls) of the values `data[starts[i]:starts[i + 1]]`."""
    if (
        int(starts[-1]) > np.iinfo(np.int32).max
    ):  # past binary's 2 GiB: large_binary, cast (and refused) as before
        large = pa.Array.from_buffers(
            pa.large_binary(),
            len(starts) - 1,
            [None, pa.py_buffer(cast(Any, starts)), pa.py_buffer(cast(Any, data))],
        )
        return large.cast(pa.binary())
    return pa.Array.from_buffers(
        pa.binary(),
        len(starts) - 1,
        [None, pa.py_buffer(cast(Any, starts.astype(np.int32))), pa.py_buffer(cast(Any, data))],
    )


def unpad(plaintext: bytes) -> bytes:
    if len(plaintext) < LENGTH_PREFIX_BYTES:
        raise ValueError("padded plaintext is shorter than its length prefix")
    length = int.from_bytes(plaintext[:LENGTH_PREFIX_BYTES], "big")
    end = LENGTH_PREFIX_BYTES + length
    if end > len(plaintext):
        raise ValueError("padded plaintext is shorter than its length says")
    return plaintext[LENGTH_PREFIX_BYTES:end]


# --- encryption ------------------------------------------------------------------------------------------


class ColumnCipher:
    """Encrypts and decrypts one column's values. Keys are derived once per (version, key id, salt) and kept.

    New values are written in `version` (the current format; an older one only to reproduce stored values in
    tests); stored values are read in the version their envelope names.
    """

    def __init__(
        self,
        keyring: Keyring,
        identity: ColumnIdentity,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        version: int = FORMAT_VERSION,
    ):
        check_version(version)
        self.keyring = keyring
        self.identity = identity
        self.version = version
        self._random = random_bytes  # the OS's CSPRNG; replaceable only to reproduce known-answer vectors
        self._keys: dict[tuple[int, str, bytes], AESGCM] = {}

    def _aad_prefix(self, version: int) -> bytes:
        return labels(version)[0] + b"\x00" + self.identity.encoded(version)

    def _aead(self, version: int, key_id: str, salt: bytes) -> AESGCM:
        cached = self._keys.get((version, key_id, salt))
        if cached is None:
            master = self.keyring.key(key_id)
            label, info = labels(version)[1], self.identity.encoded(version)
            cached = AESGCM(hkdf(master, label=label, info=info, salt=salt))
            if len(self._keys) > 4096:
                self._keys.clear()
            self._keys[(version, key_id, salt)] = cached
        return cached

    @staticmethod
    def header(key_id: str, flags: int, salt: bytes, version: int = FORMAT_VERSION) -> bytes:
        encoded_id = key_id.encode("ascii")
        return bytes([version, flags, len(encoded_id)]) + encoded_id + salt

    def encrypt(self, plaintexts: pa.Array, *, row_keys: pa.Array | None, compressed: bool) -> pa.Array:
        """Encrypt every non-null value (binary plaintexts) with the primary key; nulls stay null.

        1. Pad all values at once (numpy). 2. Draw one key salt for the batch and all nonces in one read
        of the OS's random source. 3. One AEAD call per value (one AESGCM object per key and salt), fed by
        iterators: no per-value Python frame. 4. Join header, nonce and sealed value into one buffer (C) and
        wrap it as an Arrow array with offsets computed in numpy.
        """
        count = len(plaintexts)
        if count == 0:
            return pa.array([], type=pa.binary())
        valid = plaintexts.is_valid() if plaintexts.null_count else None
        if valid is not None:
            plaintexts = plaintexts.filter(valid)
            if row_keys is not None:
                row_keys = row_keys.filter(valid)
        padded = pad_array(plaintexts)
        flags = FLAG_PADDED | (FLAG_COMPRESSED if compressed else 0)
        salt = self._random(SALT_BYTES)
        header = self.header(self.keyring.primary, flags, salt, self.version)
        aead = self._aead(self.version, self.keyring.primary, salt)
        present = len(padded)
        # Through binary: a fixed-size binary array's to_pylist() goes value by value (20x slower).
        nonces = cast(
            list[bytes],
            pa.Array.from_buffers(
                pa.binary(NONCE_BYTES), present, [None, pa.py_buffer(self._random(NONCE_BYTES * present))]
            )
            .cast(pa.binary())
            .to_pylist(),
        )
        aad_prefix = self._aad_prefix(self.version) + b"\x00" + header + b"\x00"
        aads: Iterable[bytes]
        if row_keys is None:
            aads = repeat(aad_prefix, present)
        else:
            aads = map(aad_prefix.__add__, cast(list[bytes], row_keys.to_pylist()))
        sealed = map(aead.encrypt, nonces, cast(list[bytes], padded.to_pylist()), aads)
        # header | nonce | ciphertext and tag, joined in C; each envelope's length follows from its padded one.
        data = b"".join(chain.from_iterable(zip(repeat(header, present), nonces, sealed, strict=True)))
        starts = np.zeros(present + 1, dtype=np.int64)
        np.cumsum(
            pc.binary_length(cast(Any, padded)).to_numpy() + (len(header) + NONCE_BYTES + TAG_BYTES),
            out=starts[1:],
        )
        assert int(starts[-1]) == len(data), "an AEAD output is its plaintext's length plus the tag"
        envelopes = binary_array(starts, data)
        if valid is None:
            return envelopes
        return expand_nulls(envelopes, valid)

    def decrypt_one(self, envelope: bytes, row_key: bytes | None) -> tuple[bytes, int]:
        """The plaintext (unpadded) and the flags of one stored value; DecryptionError when it does not verify."""
        where = f"{self.identity.relation}.{self.identity.column}"
        parsed = parse_envelope(envelope, where=where)
        if parsed.key_id not in self.keyring.keys:
            raise DecryptionError(
                f"a value was encrypted with key id {parsed.key_id!r}, which the keyring does not have (keyring "
                f"ids: {', '.join(self.keyring.ids)}): the key was removed before `rotate_keys` finished, or "
                "the value was altered",
                table=self.identity.relation,
                column=self.identity.column,
            )
        aead = self._aead(parsed.version, parsed.key_id, parsed.salt)
        aad = self._aad_prefix(parsed.version) + b"\x00" + parsed.header + b"\x00" + (row_key or b"")
        try:
            plaintext = aead.decrypt(parsed.nonce, parsed.sealed, aad)
        except InvalidTag:
            raise DecryptionError(
                "a value does not verify: it was altered, moved from another row, column or table, or made "
                "with a different key",
                table=self.identity.relation,
                column=self.identity.column,
            ) from None
        try:
            return unpad(plaintext), parsed.flags
        except ValueError as exc:
            raise DecryptionError(
                str(exc), table=self.identity.relation, column=self.identity.column
            ) from None

    def decrypt(
        self, envelopes: Sequence[bytes | None], row_keys: Sequence[bytes] | None
    ) -> list[bytes | None]:
        keys: list[bytes | None] = list(row_keys) if row_keys is not None else [None for _ in envelopes]
        return [
            None if envelope is None else self.decrypt_one(envelope, key)[0]
            for envelope, key in zip(envelopes, keys, strict=True)
        ]


@dataclass(frozen=True)
class Envelope:
    version: int
    flags: int
    key_id: str
    salt: bytes
    nonce: bytes
    sealed: bytes  # ciphertext and tag
    header: bytes  # everything before the nonce: authenticated as associated data


def parse_envelope(envelope: bytes, *, where: str = "") -> Envelope:
    """Split a stored value into its parts; DecryptionError when it is not an envelope of a known version."""
    label = f"{where}: " if where else ""
    if len(envelope) < 3:
        raise DecryptionError(f"{label}a stored value is too short to be encrypted")
    version, flags, id_length = envelope[0], envelope[1], envelope[2]
    if version not in READABLE_VERSIONS:
        raise DecryptionError(
            f"{label}a stored value has format version {version}; this fdm reads versions "
            f"{', '.join(str(known) for known in READABLE_VERSIONS)}"
        )
    if flags & ~KNOWN_FLAGS:
        raise DecryptionError(f"{label}a stored value has unknown flags {flags:#04x}")
    header_end = 3 + id_length + SALT_BYTES
    if id_length == 0 or len(envelope) < header_end + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"{label}a stored value is truncated")
    try:
        key_id = envelope[3 : 3 + id_length].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError(f"{label}a stored value has a malformed key id") from None
    return Envelope(
        version=version,
        flags=flags,
        key_id=key_id,
        salt=envelope[3 + id_length : header_end],
        nonce=envelope[header_end : header_end + NONCE_BYTES],
        sealed=envelope[header_end + NONCE_BYTES :],
        header=envelope[:header_end],
    )


def key_id_of(envelope: bytes) -> str:
    return parse_envelope(envelope).key_id


def expand_nulls(compact: pa.Array, valid: pa.Array) -> pa.Array:
    """Put the values of `compact` back at the valid positions of a column; nulls elsewhere."""
    mask = valid.to_numpy(zero_copy_only=False)
    positions = np.cumsum(mask) - 1
    indices = pa.array(np.where(mask, positions, 0), mask=~mask)
    return pc.take(compact, cast(Any, indices))
