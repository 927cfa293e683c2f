"""The encryption keyring: master keys by id, handed in by the Django side (`syncengine.connections` reads
them from the environment), never stored by fdm.

Form (what `FDM_ENCRYPTION_KEYS`, or the file named by `FDM_ENCRYPTION_KEYS_FILE`, holds)::

    2026-12-02-9f3a:3q2-7wAAAAB6...,2025-06-01-11c0:V2hhdCBh...

Comma-separated `key_id:key` entries; the key is 32 random bytes in URL-safe base64 (padding optional). The
first entry is the primary key: new values are encrypted with it. The others only decrypt values written
before a rotation, until `rotate_keys` has moved every value to the primary key and they can be removed.

Keys are never used directly: each table column gets its own AES key and its own blind-index key, derived
with HKDF-SHA256 from the master key and the column's identity (see `crypto`).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from syncengine.pipeline.errors import ConfigurationError

KEY_BYTES = 32  # AES-256
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
ENV_NAME = "FDM_ENCRYPTION_KEYS"


class KeyringError(ConfigurationError):
    """The keyring is missing or malformed. Messages name the entry, never a key's bytes."""


@dataclass(frozen=True)
class Keyring:
    """Master keys by id; `primary` encrypts, every key decrypts."""

    primary: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise KeyringError(f"{ENV_NAME}: the primary key id {self.primary!r} has no key")

    def __repr__(self) -> str:  # never show key material, even in a debugger or a traceback's locals
        return f"Keyring(primary={self.primary!r}, ids={list(self.keys)!r})"

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyringError(
                f"{ENV_NAME} has no key with id {key_id!r}; a value was encrypted with it (keyring ids: "
                f"{', '.join(self.keys)})"
            ) from None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    @classmethod
    def parse(cls, text: str, *, source: str = ENV_NAME) -> Keyring:
        """Parse the keyring form; raise KeyringError naming the entry that is wrong."""
        entries = [entry.strip() for entry in text.strip().split(",")]
        if not text.strip() or not any(entries):
            raise KeyringError(f"{source} is empty; it needs at least one key_id:key entry")
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(entries, start=1):
            if not entry:
                raise KeyringError(f"{source}: entry {position} is empty (two commas in a row?)")
            key_id, separator, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not separator:
                raise KeyringError(f"{source}: entry {position} has no ':' between the key id and the key")
            if not KEY_ID_PATTERN.match(key_id):
                raise KeyringError(
                    f"{source}: entry {position} has key id {key_id!r}; ids are 1-32 letters, digits, '.', '_' "
                    "or '-', starting with a letter or digit"
                )
            if key_id in keys:
                raise KeyringError(f"{source}: key id {key_id!r} appears twice")
            keys[key_id] = _decode_key(encoded.strip(), key_id=key_id, source=source)
        return cls(primary=next(iter(keys)), keys=keys)

    def format(self) -> str:
        """The keyring in the form `parse` reads, primary first."""
        ordered = [self.primary, *(key_id for key_id in self.keys if key_id != self.primary)]
        return ",".join(f"{key_id}:{_encode_key(self.keys[key_id])}" for key_id in ordered)

    def with_new_primary(self, key_id: str | None = None) -> Keyring:
        """A keyring with a fresh random primary key in front of this one's keys (starts a rotation)."""
        new_id = key_id or new_key_id()
        if new_id in self.keys:
            raise KeyringError(f"key id {new_id!r} is already in the keyring")
        return Keyring(primary=new_id, keys={new_id: secrets.token_bytes(KEY_BYTES), **self.keys})

    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        new_id = key_id or new_key_id()
        if not KEY_ID_PATTERN.match(new_id):
            raise KeyringError(f"key id {new_id!r} is not valid; use 1-32 letters, digits, '.', '_' or '-'")
        return cls(primary=new_id, keys={new_id: secrets.token_bytes(KEY_BYTES)})


def new_key_id() -> str:
    """A readable id, unique across rotations: the UTC date and 8 random hex digits (2026-12-02-9f3a61c0).

    Four digits were too few: 50 keys made on one day shared an id about once in 50 tries."""
    return f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}-{secrets.token_hex(4)}"


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


def _decode_key(encoded: str, *, key_id: str, source: str) -> bytes:
    if not encoded:
        raise KeyringError(f"{source}: key {key_id!r} is empty")
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KeyringError(f"{source}: key {key_id!r} is not URL-safe base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(
            f"{source}: key {key_id!r} is {len(key)} bytes long; keys are {KEY_BYTES} random bytes "
            "(generate one with `manage.py generate_keyring`)"
        )
    return key
