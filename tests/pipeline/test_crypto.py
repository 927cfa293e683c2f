"""Column encryption, padding, row keys, blind indexes and the keyring, without a database."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import itertools
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syncengine.pipeline.protection.blind_index import BlindIndex, blind_index_candidates
from syncengine.pipeline.protection.crypto import (
    FLAG_COMPRESSED,
    FLAG_PADDED,
    ColumnCipher,
    ColumnIdentity,
    DecryptionError,
    key_id_of,
    pad_array,
    padded_lengths,
    parse_envelope,
    unpad,
)
from syncengine.pipeline.protection.keyring import Keyring, KeyringError
from syncengine.pipeline.protection.rowkeys import row_keys, row_keys_from_values

MASTER = bytes(range(32))
KEYRING = Keyring(primary="k1", keys={"k1": MASTER})
IDENTITY = ColumnIdentity("finance", "accounts", "iban")
SALT = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
NONCE = bytes.fromhex("b0b1b2b3b4b5b6b7b8b9babb")
# Envelope of b"DE89370400440532013000" for row key (42,) made with MASTER, SALT and NONCE by format version 1
# (fdm before version 2 existed): a stored value written by it must decrypt in every later version.
GOLDEN = bytes.fromhex(
    "010102"  # version 1, flags: padded, key id length 2
    "6b31"  # key id "k1"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"  # key salt
    "b0b1b2b3b4b5b6b7b8b9babb"  # nonce
    "79def3dc3df946543f91224fb9863c10a06e34a7f658fff95cc7e5e29a40cfa8"  # ciphertext (32 padded bytes)
    "73193afbdbc4343f3d775021a63bf98c"  # tag
)


def fixed_random(*chunks: bytes):
    """A random source that returns the given bytes in order (known-answer tests only)."""
    queue = list(chunks)

    def take(size: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == size
        return chunk

    return take


def encrypt_one(value: bytes, key: tuple[object, ...] = (42,), **cipher_args) -> bytes:
    cipher = ColumnCipher(KEYRING, IDENTITY, **cipher_args)
    keys = row_keys([pa.array([part]) for part in key])
    envelope = cipher.encrypt(pa.array([value], pa.binary()), row_keys=keys, compressed=False)[0].as_py()
    assert isinstance(envelope, bytes)
    return envelope


def decrypt_one(
    envelope: bytes, key: tuple[object, ...] = (42,), cipher: ColumnCipher | None = None
) -> bytes:
    cipher = cipher or ColumnCipher(KEYRING, IDENTITY)
    return cipher.decrypt_one(envelope, row_keys([pa.array([part]) for part in key])[0].as_py())[0]


# --- known answers ---------------------------------------------------------------------------------------


def _prefixed(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


IDENTITY_V1 = _prefixed(b"finance.accounts", b"iban")  # `schema.table`, column
IDENTITY_V2 = _prefixed(b"finance", b"accounts", b"iban")  # schema, table, column


@pytest.mark.parametrize(("version", "identity"), [(2, IDENTITY_V2), (1, IDENTITY_V1)])
def test_the_envelope_is_the_documented_construction(version, identity):
    """Rebuild the envelope from the primitives as the module's docstring describes it, in both versions."""
    plaintext = b"DE89370400440532013000"
    envelope = encrypt_one(plaintext, random_bytes=fixed_random(SALT, NONCE), version=version)

    label = f"fdm/v{version}/".encode()
    aes_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=SALT, info=label + b"aes-256-gcm\x00" + identity
    ).derive(MASTER)
    header = bytes([version, FLAG_PADDED, 2]) + b"k1" + SALT
    padded = len(plaintext).to_bytes(4, "big") + plaintext + bytes(32 - 4 - len(plaintext))
    aad = label + b"aad\x00" + identity + b"\x00" + header + b"\x00" + b"2:42;"
    expected = header + NONCE + AESGCM(aes_key).encrypt(NONCE, padded, aad)

    assert envelope == expected
    assert decrypt_one(envelope) == plaintext


def test_new_values_are_written_in_format_version_2():
    envelope = encrypt_one(b"DE89370400440532013000")
    assert envelope[0] == 2 == parse_envelope(envelope).version


def test_a_value_stored_by_format_version_1_still_decrypts():
    assert encrypt_one(b"DE89370400440532013000", random_bytes=fixed_random(SALT, NONCE), version=1) == GOLDEN
    assert decrypt_one(GOLDEN) == b"DE89370400440532013000"  # a cipher that writes version 2 reads it
    assert key_id_of(GOLDEN) == "k1"


def test_targets_whose_names_share_dots_share_no_key_from_version_2():
    """`a.b`+`c` and `a`+`b.c` spelled the same `schema.table` in version 1: a value of one decrypted as the
    other's, and their blind indexes matched. Version 2 binds schema and table apart."""
    first = ColumnIdentity("a.b", "c", "iban")
    second = ColumnIdentity("a", "b.c", "iban")
    keys = row_keys([pa.array([42])])
    plain = pa.array([b"DE89370400440532013000"], pa.binary())
    for version, shared in ((1, True), (2, False)):
        sealed = ColumnCipher(KEYRING, first, version=version).encrypt(plain, row_keys=keys, compressed=False)
        envelope = sealed[0].as_py()
        assert isinstance(envelope, bytes) and envelope[0] == version
        other = ColumnCipher(KEYRING, second)
        if shared:
            assert decrypt_one(envelope, cipher=other) == b"DE89370400440532013000"
        else:
            with pytest.raises(DecryptionError, match="does not verify"):
                decrypt_one(envelope, cipher=other)
        indexes = [
            BlindIndex(KEYRING, identity, bits=256, version=version).compute(plain)[0].as_py()
            for identity in (first, second)
        ]
        assert (indexes[0] == indexes[1]) is shared


def test_aes_gcm_matches_a_published_vector():
    """NIST GCM test vector (gcmEncryptExtIV256, Count 0 with a 128-bit plaintext): the AEAD under the
    wrapper is plain AES-256-GCM."""
    key = bytes.fromhex("31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22")
    iv = bytes.fromhex("0d18e06c7c725ac9e362e1ce")
    plaintext = bytes.fromhex("2db5168e932556f8089a0622981d017d")
    sealed = AESGCM(key).encrypt(iv, plaintext, None)
    assert sealed.hex() == "fa4362189661d163fcd6a56d8bf0405a" + "d636ac1bbedd5cc3ee727dc2ab4a9489"


@pytest.mark.parametrize(("version", "identity"), [(2, IDENTITY_V2), (1, IDENTITY_V1)])
def test_blind_index_is_truncated_hmac_sha256_of_the_plaintext(version, identity):
    index = BlindIndex(KEYRING, IDENTITY, bits=16, version=version)
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"fdm/v{version}/blind-index\x00".encode() + identity,
    ).derive(MASTER)
    values = [b"DE89370400440532013000", b"", b"x" * 100]
    computed = index.compute(pa.array(values, pa.binary())).to_pylist()
    assert computed == [hmac.digest(key, value, hashlib.sha256)[:2] for value in values]


def test_a_version_1_blind_index_value_is_still_found():
    """Index value of b"DE89370400440532013000" (32 bits) as fdm wrote it before version 2: a lookup in a
    column whose catalog says its index may be in version 1 includes it among its candidates."""
    stored = bytes.fromhex("fe8defdf")
    plain = pa.array([b"DE89370400440532013000"], pa.binary())
    assert BlindIndex(KEYRING, IDENTITY, bits=32, version=1).compute(plain)[0].as_py() == stored
    assert BlindIndex(KEYRING, IDENTITY, bits=32).compute(plain)[0].as_py() != stored
    found = blind_index_candidates(KEYRING, IDENTITY, b"DE89370400440532013000", bits=32, oldest_version=1)
    assert stored in found and len(found) == 2
    current = blind_index_candidates(KEYRING, IDENTITY, b"DE89370400440532013000", bits=32, oldest_version=2)
    assert stored not in current and len(current) == 1


def test_blind_index_masks_bits_beyond_a_byte_boundary():
    index = BlindIndex(KEYRING, IDENTITY, bits=12)
    values = index.compute(pa.array([f"v{i}".encode() for i in range(200)], pa.binary())).to_pylist()
    assert all(len(value) == 2 and value[1] & 0x0F == 0 for value in values)


# --- tampering -------------------------------------------------------------------------------------------


def test_flipping_any_byte_is_rejected():
    envelope = encrypt_one(b"DE89370400440532013000")
    for position in range(len(envelope)):
        tampered = bytearray(envelope)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionError):
            decrypt_one(bytes(tampered))


def test_truncated_values_are_rejected():
    envelope = encrypt_one(b"DE89370400440532013000")
    for length in range(len(envelope)):
        with pytest.raises(DecryptionError):
            decrypt_one(envelope[:length])


def test_a_value_moved_to_another_row_column_or_table_is_rejected():
    envelope = encrypt_one(b"DE89370400440532013000")
    with pytest.raises(DecryptionError, match="moved from another row"):
        decrypt_one(envelope, key=(43,))
    with pytest.raises(DecryptionError):
        decrypt_one(
            envelope, cipher=ColumnCipher(KEYRING, ColumnIdentity("finance", "accounts", "holder_name"))
        )
    with pytest.raises(DecryptionError):
        decrypt_one(
            envelope, cipher=ColumnCipher(KEYRING, ColumnIdentity("finance", "accounts_copy", "iban"))
        )


def test_a_wrong_or_unknown_key_id_is_rejected():
    envelope = encrypt_one(b"DE89370400440532013000")
    other = Keyring(primary="k1", keys={"k1": bytes(32)})
    with pytest.raises(DecryptionError):
        decrypt_one(envelope, cipher=ColumnCipher(other, IDENTITY))
    renamed = envelope[:3] + b"k2" + envelope[5:]
    both = Keyring(primary="k1", keys={"k1": MASTER, "k2": MASTER})
    with pytest.raises(DecryptionError):
        decrypt_one(renamed, cipher=ColumnCipher(both, IDENTITY))
    with pytest.raises(DecryptionError, match="key id 'k2', which the keyring does not have"):
        decrypt_one(renamed)


def test_the_row_key_binding_cannot_be_shifted_between_key_columns():
    envelope = encrypt_one(b"secret", key=("ab", "c"))
    assert decrypt_one(envelope, key=("ab", "c")) == b"secret"
    with pytest.raises(DecryptionError):
        decrypt_one(envelope, key=("a", "bc"))


def test_no_nonce_or_salt_repeats_over_a_million_encryptions():
    cipher = ColumnCipher(KEYRING, IDENTITY)
    values = pa.array([b"v"] * 100_000, pa.binary())
    nonces: set[bytes] = set()
    salts: set[bytes] = set()
    for _ in range(10):
        for envelope in cipher.encrypt(values, row_keys=None, compressed=False).to_pylist():
            parsed = parse_envelope(envelope)
            nonces.add(parsed.nonce)
            salts.add(parsed.salt)
    assert len(nonces) == 1_000_000
    assert len(salts) == 10  # one fresh AES key per batch


def test_nulls_stay_null_and_empty_values_round_trip():
    cipher = ColumnCipher(KEYRING, IDENTITY)
    values = pa.array([b"a", None, b"", None, b"\x00" * 300], pa.binary())
    keys = row_keys([pa.array([1, 2, 3, 4, 5])])
    envelopes = cipher.encrypt(values, row_keys=keys, compressed=True)
    assert envelopes.null_count == 2
    assert cipher.decrypt(envelopes.to_pylist(), keys.to_pylist()) == values.to_pylist()
    assert parse_envelope(envelopes[0].as_py()).flags == FLAG_PADDED | FLAG_COMPRESSED


# --- padding ---------------------------------------------------------------------------------------------


def test_padding_hides_lengths_in_buckets():
    lengths = np.arange(0, 5000)
    padded = padded_lengths(lengths)
    assert (padded >= lengths + 4).all()
    assert (padded[lengths + 4 < 256] % 16 == 0).all()
    large = lengths + 4 >= 256
    assert (padded[large] / (lengths[large] + 4)).max() <= 1.12
    assert len(np.unique(padded[lengths >= 1000])) < 40  # 4,000 lengths fall into a few dozen sizes


def test_pad_and_unpad_round_trip_column_wise():
    values = pa.array([b"", b"a", None, b"b" * 255, b"c" * 4000], pa.binary())
    padded = pad_array(values)
    assert padded.null_count == 1
    assert [None if item is None else unpad(item) for item in padded.to_pylist()] == values.to_pylist()


# --- row keys --------------------------------------------------------------------------------------------


def test_row_keys_read_back_from_postgres_values_match_the_ones_written():
    written = row_keys(
        [
            pa.array([Decimal("5.50"), Decimal("7.00")], pa.decimal128(12, 2)),
            pa.array(
                [datetime.datetime(2024, 1, 1, 12, 0, 0, 5), datetime.datetime(2024, 1, 2)],
                pa.timestamp("us", tz="UTC"),
            ),
            pa.array(["a:b", "c;"]),
            pa.array([datetime.date(2024, 1, 1), datetime.date(1, 1, 1)], pa.date32()),
        ]
    ).to_pylist()
    read = row_keys_from_values(
        [
            (
                Decimal("5.5"),
                datetime.datetime(2024, 1, 1, 12, 0, 0, 5, tzinfo=datetime.UTC),
                "a:b",
                datetime.date(2024, 1, 1),
            ),
            (Decimal("7"), datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC), "c;", datetime.date(1, 1, 1)),
        ]
    )
    assert written == read


# --- keyring ---------------------------------------------------------------------------------------------


def test_keyring_round_trips_and_the_first_key_is_primary():
    keyring = Keyring.generate("new").with_new_primary("newer")
    parsed = Keyring.parse(keyring.format())
    assert parsed.primary == "newer" and parsed.ids == ("newer", "new")
    assert dict(parsed.keys) == dict(keyring.keys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("k1", "no ':'"),
        ("k1:", "key 'k1' is empty"),
        ("k1:not*base64", "not URL-safe base64"),
        ("k1:" + "QUJD", "3 bytes long"),
        ("bad id:" + "A" * 43, "key id 'bad id'"),
        ("k1:" + "A" * 43 + ",k1:" + "A" * 43, "appears twice"),
        ("k1:" + "A" * 43 + ",,", "entry 2 is empty"),
    ],
)
def test_malformed_keyrings_are_refused_with_the_entry_named(text, message):
    with pytest.raises(KeyringError, match=message) as raised:
        Keyring.parse(text)
    assert "A" * 20 not in str(raised.value)


def test_a_keyring_never_shows_its_keys():
    keyring = Keyring.generate("k1")
    encoded = keyring.format().split(":")[1]
    assert encoded not in repr(keyring) and encoded not in str(keyring)


def test_every_key_id_is_distinct_across_generations():
    ids = {Keyring.generate().primary for _ in range(50)}
    assert len(ids) == 50
    assert all(len(key_id) <= 32 for key_id in itertools.islice(ids, 5))
