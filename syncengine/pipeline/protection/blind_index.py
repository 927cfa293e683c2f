"""Blind indexes (HMAC-SHA256 of a column's plaintext, truncated) for exact-match lookups without decryption.

The index key is derived from the master key and the column's identity as the envelope's format version
encodes it (`crypto`), so a column's index values are in one version or another; its catalog row says the
oldest version they may be in, and lookups try every version from there to the current one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import cast

import numpy as np
import pyarrow as pa

from syncengine.pipeline.protection.crypto import (
    READABLE_VERSIONS,
    ColumnIdentity,
    check_version,
    expand_nulls,
    hkdf,
    labels,
)
from syncengine.pipeline.protection.keyring import Keyring

BLIND_INDEX_VERSION = 2  # blind indexes derive their key from the same identity encoding as envelopes
DEFAULT_BLIND_INDEX_BITS = 16
MIN_BLIND_INDEX_BITS = 8
MAX_BLIND_INDEX_BITS = 256


class BlindIndex:
    """Keyed HMAC-SHA256 of a column's plaintext, truncated to `bits`, so equality lookups need no decryption.

    One key per (master key, column, version), derived with HKDF from the column's identity encoded as in
    that format version (a column's catalog row says the oldest version its index values may be in).
    Truncation makes different values share an index
    value (CipherSweet's "coincidences"): a lookup returns a few candidate rows, which are decrypted and
    compared, so the truncation costs no correctness and hides which rows hold exactly the same value.
    """

    def __init__(
        self,
        keyring: Keyring,
        identity: ColumnIdentity,
        *,
        bits: int = DEFAULT_BLIND_INDEX_BITS,
        version: int = BLIND_INDEX_VERSION,
    ):
        if not MIN_BLIND_INDEX_BITS <= bits <= MAX_BLIND_INDEX_BITS:
            raise ValueError(f"blind index bits must be {MIN_BLIND_INDEX_BITS}..{MAX_BLIND_INDEX_BITS}")
        check_version(version)
        self.keyring = keyring
        self.identity = identity
        self.version = version
        self.bits = bits
        self.width = (bits + 7) // 8
        self._macs: dict[str, Callable[[bytes], bytes]] = {}

    def _mac(self, key_id: str) -> Callable[[bytes], bytes]:
        mac = self._macs.get(key_id)
        if mac is None:
            label, info = labels(self.version)[2], self.identity.encoded(self.version)
            key = hkdf(self.keyring.key(key_id), label=label, info=info, salt=None)
            mac = _hmac_sha256(key)
            self._macs[key_id] = mac
        return mac

    def compute(self, plaintexts: pa.Array, *, key_id: str | None = None) -> pa.Array:
        """Index values (fixed-width binary as bytes) for every non-null plaintext; nulls stay null."""
        mac = self._mac(key_id or self.keyring.primary)
        valid = plaintexts.is_valid() if plaintexts.null_count else None
        present = plaintexts.filter(valid) if valid is not None else plaintexts
        width = self.width
        digests = b"".join(mac(cast(bytes, value))[:width] for value in present.cast(pa.binary()).to_pylist())
        table = np.frombuffer(digests, dtype=np.uint8).reshape(-1, width).copy()
        if self.bits % 8:
            table[:, -1] &= (0xFF << (8 - self.bits % 8)) & 0xFF
        fixed = pa.Array.from_buffers(
            pa.binary(width), len(present), [None, pa.py_buffer(table.tobytes())]
        ).cast(pa.binary())
        return fixed if valid is None else expand_nulls(fixed, valid)

    def candidates(self, plaintext: bytes) -> list[bytes]:
        """The index values a lookup of `plaintext` matches: one per key in the keyring (rows not yet rotated
        still carry an index made with their older key)."""
        array = pa.array([plaintext], type=pa.binary())
        values = {self.compute(array, key_id=key_id)[0].as_py() for key_id in self.keyring.ids}
        return sorted(value for value in values if isinstance(value, bytes))


def blind_index_candidates(
    keyring: Keyring, identity: ColumnIdentity, plaintext: bytes, *, bits: int, oldest_version: int
) -> list[bytes]:
    """The index values a lookup of `plaintext` matches in a column whose index values may be in any version
    from `oldest_version` (the catalog's) to the current one, under any key of the keyring."""
    values: set[bytes] = set()
    for version in range(max(oldest_version, READABLE_VERSIONS[0]), BLIND_INDEX_VERSION + 1):
        values.update(BlindIndex(keyring, identity, bits=bits, version=version).candidates(plaintext))
    return sorted(values)


def _hmac_sha256(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 (RFC 2104) with the inner and outer pad states computed once: the same digest as
    `hmac.digest(key, message, "sha256")` at half its cost per call."""
    block = key.ljust(64, b"\x00") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def digest(message: bytes) -> bytes:
        state = inner.copy()
        state.update(message)
        result = outer.copy()
        result.update(state.digest())
        return result.digest()

    return digest
