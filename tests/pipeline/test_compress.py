"""Column compression (syncengine.pipeline.protection.compress): exact round trips, standard zstd frames,
dictionaries trained, stored in real PostgreSQL and loaded back, and errors that never carry the data."""

from __future__ import annotations

import json
import os
import random

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import zstandard

from syncengine.pipeline.errors import CorruptValue, DictionaryIdTaken, UnknownDictionary
from syncengine.pipeline.protection import compress
from syncengine.pipeline.protection.compress import (
    DEFAULT_LEVEL,
    CompressedColumn,
    Dictionary,
    compress_array,
    decompress_array,
    train_dictionary,
)
from syncengine.pipeline.protection.dictionaries import (
    dictionaries_table_sql,
    load_dictionaries,
    save_dictionary,
)


def descriptions(count: int, seed: int = 7) -> pa.Array:
    """Short transaction descriptions, alike as real ones are (60-120 bytes)."""
    rnd = random.Random(seed)
    kinds = ["CARD PURCHASE", "DIRECT DEBIT", "SEPA TRANSFER", "ACH CREDIT", "WIRE OUT", "REFUND"]
    merchants = ["AMAZON MKTPLACE", "TESCO STORES", "SHELL OIL", "UBER *TRIP", "STARBUCKS", "NETFLIX.COM"]
    cities = ["LONDON", "NEW YORK", "SEATTLE", "PARIS", "BERLIN", "DUBLIN"]
    return pa.array(
        [
            f"{rnd.choice(kinds)} {rnd.choice(merchants)} {rnd.choice(cities)} REF {rnd.randrange(10**11):011d} "
            f"AMT {rnd.randrange(100, 10**7) / 100:.2f} {rnd.choice(['GBP', 'USD', 'EUR'])}"
            for _ in range(count)
        ],
        pa.string(),
    )


def round_trip(values: pa.Array, dictionary: Dictionary | None = None) -> pa.Array:
    compressed = compress_array(values, dictionary=dictionary)
    dictionaries = {dictionary.dict_id: dictionary} if dictionary else {}
    return decompress_array(compressed.values, dictionaries)


def as_binary(values: pa.Array) -> pa.Array:
    storage = values.storage if isinstance(values, pa.ExtensionArray) else values
    return storage.cast(pa.binary())


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    trained = train_dictionary(descriptions(5_000), dict_id=40_001)
    assert trained is not None
    return trained


# --- round trips ---------------------------------------------------------------------------------------------


def test_it_round_trips_text_exactly_keeping_empty_strings_apart_from_nulls():
    values = pa.array(
        ["plain ascii", "", None, "Grüße, 東京, émoji 🎉", "x" * 100_000, "", None, "tail"], pa.string()
    )
    restored = round_trip(values)
    assert restored.type == pa.binary()
    assert restored.cast(pa.string()).to_pylist() == values.to_pylist()
    assert restored.is_null().to_pylist() == values.is_null().to_pylist()
    assert restored[1].as_py() == b""  # empty, not null


def test_it_round_trips_json_values_by_their_text():
    documents = ['{"a":1,"b":[1,2,3]}', None, "{}", '{"name":"Zoë","nested":{"x":null}}', "[]"]
    values = pa.array(documents, pa.json_())
    compressed = compress_array(values)
    restored = decompress_array(compressed.values, {})
    assert restored.cast(pa.string()).to_pylist() == documents
    assert json.loads(restored[3].as_py()) == {"name": "Zoë", "nested": {"x": None}}


def test_it_round_trips_binary_with_random_and_zero_bytes():
    values = pa.array([os.urandom(300), b"\x00" * 64, b"\x00", b"", None, os.urandom(5000)], pa.binary())
    assert round_trip(values).to_pylist() == values.to_pylist()


def test_it_round_trips_large_string_and_large_binary():
    text = pa.array(["large", "", None, "ünïcode"], pa.large_string())
    data = pa.array([b"\x01\x02", None, b""], pa.large_binary())
    assert round_trip(text).cast(pa.string()).to_pylist() == text.to_pylist()
    assert round_trip(data).to_pylist() == data.to_pylist()


def test_it_round_trips_sliced_arrays_from_their_own_offset():
    values = pa.array([f"value {index}" if index % 7 else None for index in range(100)], pa.string())
    window = values.slice(13, 50)
    assert window.offset == 13
    restored = round_trip(window)
    assert restored.cast(pa.string()).to_pylist() == window.to_pylist()
    compressed = compress_array(window).values.slice(5, 20)  # a sliced compressed column too
    assert decompress_array(compressed, {}).cast(pa.string()).to_pylist() == window.slice(5, 20).to_pylist()


def test_it_round_trips_columns_of_only_nulls_only_empty_strings_or_nothing():
    for values in (
        pa.nulls(4, pa.string()),
        pa.array(["", "", ""], pa.string()),
        pa.array(["", None], pa.string()),
        pa.array([], pa.string()),
    ):
        restored = round_trip(values)
        assert restored.cast(pa.string()).to_pylist() == values.to_pylist()


@pytest.mark.parametrize("threads", [0, 2])
def test_it_round_trips_many_values_with_or_without_worker_threads(monkeypatch, dictionary, threads):
    monkeypatch.setattr(compress, "THREADS", threads)
    values = pa.concat_arrays([descriptions(30_000, seed=8), pa.array(["", None, "last"], pa.string())])
    for used in (None, dictionary):
        assert round_trip(values, used).cast(pa.string()).equals(values)


def test_it_keeps_nulls_null_with_no_bytes():
    compressed = compress_array(pa.array(["a", None, "b"], pa.string())).values
    assert compressed.is_null().to_pylist() == [False, True, False]
    assert pc.binary_length(compressed).to_pylist()[1] is None
    offsets = pa.Array.from_buffers(pa.int32(), 4, [None, compressed.buffers()[1]], offset=compressed.offset)
    assert offsets[1] == offsets[2]  # the null slot has zero length


# --- frames ----------------------------------------------------------------------------------------------------


def test_frames_without_a_dictionary_are_standard_zstd_frames_with_content_size_and_checksum():
    values = pa.array(["a standard frame " * 4, "", "Ω"], pa.string())
    compressed = compress_array(values).values
    plain = zstandard.ZstdDecompressor()
    for original, frame in zip(values.to_pylist(), compressed.to_pylist(), strict=True):
        parameters = zstandard.get_frame_parameters(frame)
        assert parameters.content_size == len(original.encode())
        assert parameters.dict_id == 0
        assert parameters.has_checksum
        assert plain.decompress(frame) == original.encode()


def test_frames_with_a_dictionary_name_it_in_their_header(dictionary):
    compressed = compress_array(descriptions(10, seed=3), dictionary=dictionary).values
    for frame in compressed.to_pylist():
        assert zstandard.get_frame_parameters(frame).dict_id == dictionary.dict_id
    with_dictionary = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dictionary.data))
    assert with_dictionary.decompress(compressed[0].as_py()) == descriptions(10, seed=3)[0].as_py().encode()


def test_it_counts_plaintext_bytes_in_and_frame_bytes_out():
    values = pa.array(["abc", None, "", "héllo"], pa.string())
    result = compress_array(values)
    assert isinstance(result, CompressedColumn)
    assert result.bytes_in == 3 + 0 + len("héllo".encode())
    assert result.bytes_out == sum(len(frame) for frame in result.values.to_pylist() if frame is not None)


def test_it_compresses_at_the_level_asked_for():
    values = pa.array(["repetitive text " * 200] * 3, pa.string())
    fast = compress_array(values, level=1)
    strong = compress_array(values, level=19)
    assert DEFAULT_LEVEL == 3
    assert strong.bytes_out <= fast.bytes_out
    assert decompress_array(strong.values, {}).cast(pa.string()).equals(values)


def test_it_refuses_types_it_cannot_compress():
    for values in (
        pa.array([1, 2], pa.int64()),
        pa.array([1.5], pa.float64()),
        pa.array(["a"], pa.string_view()),
    ):
        with pytest.raises(TypeError, match="text, JSON or binary"):
            compress_array(values)
        with pytest.raises(TypeError, match="text, JSON or binary"):
            train_dictionary(values)
    with pytest.raises(TypeError, match="binary"):
        decompress_array(pa.array(["not frames"], pa.string()), {})


# --- dictionaries ----------------------------------------------------------------------------------------------


def test_a_dictionary_trained_on_small_similar_values_improves_the_ratio(dictionary):
    values = descriptions(20_000, seed=11)
    without = compress_array(values)
    with_dictionary = compress_array(values, dictionary=dictionary)
    assert with_dictionary.bytes_in == without.bytes_in
    assert with_dictionary.bytes_out < 0.7 * without.bytes_out
    assert round_trip(values, dictionary).cast(pa.string()).equals(values)


def test_training_uses_the_given_dictionary_id_and_otherwise_a_random_unreserved_one():
    sample = descriptions(2_000)
    given = train_dictionary(sample, dict_id=123_456)
    chosen = train_dictionary(sample)
    assert given is not None and given.dict_id == 123_456
    assert zstandard.ZstdCompressionDict(given.data).dict_id() == 123_456
    assert chosen is not None and 32_768 <= chosen.dict_id < 2**31
    with pytest.raises(ValueError, match="outside"):
        train_dictionary(sample, dict_id=7)


def test_training_declines_random_values_large_values_and_small_samples():
    rnd = random.Random(5)
    random_bytes = pa.array([rnd.randbytes(100) for _ in range(2_000)], pa.binary())
    large_text = pa.array([f"{index} " + "lorem ipsum dolor " * 400 for index in range(500)], pa.string())
    assert train_dictionary(random_bytes, dict_id=40_010) is None
    assert train_dictionary(large_text, dict_id=40_011) is None
    assert train_dictionary(descriptions(100), dict_id=40_012) is None


def test_a_dictionary_must_carry_its_own_id(dictionary):
    with pytest.raises(ValueError, match="carries id"):
        Dictionary(dict_id=dictionary.dict_id + 1, data=dictionary.data)


def test_one_column_may_mix_frames_of_several_dictionaries_and_none(dictionary):
    older = train_dictionary(descriptions(3_000, seed=99), dict_id=40_002)
    assert older is not None
    first, second, third = descriptions(30, seed=1), descriptions(30, seed=2), descriptions(30, seed=3)
    mixed = pa.concat_arrays(
        [
            compress_array(first, dictionary=older).values,
            compress_array(pa.array(["", None], pa.string())).values,
            compress_array(second).values,
            compress_array(third, dictionary=dictionary).values,
            compress_array(pa.array([""], pa.string()), dictionary=dictionary).values,
        ]
    )
    # Interleave the groups so that putting values back in their rows is really tested.
    order = pa.array(random.Random(4).sample(range(len(mixed)), len(mixed)))
    shuffled = mixed.take(order)
    expected = pa.concat_arrays(
        [as_binary(first), pa.array([b"", None]), as_binary(second), as_binary(third), pa.array([b""])]
    ).take(order)
    restored = decompress_array(shuffled, {older.dict_id: older, dictionary.dict_id: dictionary})
    assert restored.to_pylist() == expected.to_pylist()


def test_an_unknown_dictionary_id_is_named_in_the_error(dictionary):
    compressed = compress_array(descriptions(5), dictionary=dictionary).values
    with pytest.raises(UnknownDictionary, match=str(dictionary.dict_id)) as caught:
        decompress_array(compressed, {})
    assert "REF" not in str(caught.value)
    assert caught.value.terminal


def test_a_corrupt_frame_fails_without_showing_the_data():
    secret = "ACCOUNT 12345678 balance " * 3
    compressed = compress_array(pa.array(["fine", secret], pa.string())).values
    frames = compressed.to_pylist()
    damaged = bytearray(frames[1])
    damaged[-6] ^= 0x5A  # inside the content: only the checksum notices
    for bad in (bytes(damaged), frames[1][:-3], b"not a zstd frame", b"\x28\xb5\x2f\xfd"):
        with pytest.raises(CorruptValue) as caught:
            decompress_array(pa.array([frames[0], bad], pa.binary()), {})
        assert "12345678" not in str(caught.value)
        assert "corrupt" in str(caught.value)


def test_a_damaged_empty_frame_is_caught_too():
    frame = compress_array(pa.array([""], pa.string())).values[0].as_py()
    with pytest.raises(CorruptValue):
        decompress_array(pa.array([frame[:-1] + b"\x01"], pa.binary()), {})


# --- storage in PostgreSQL -------------------------------------------------------------------------------------


@pytest.fixture
def conn(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS _fdm")
        connection.execute(dictionaries_table_sql())
        connection.execute(dictionaries_table_sql())  # idempotent
        yield connection


def test_dictionaries_are_stored_loaded_back_and_decompress(conn, dictionary):
    values = descriptions(1_000, seed=21)
    compressed = compress_array(values, dictionary=dictionary)
    save_dictionary(
        conn,
        table_name="financial_data",
        schema="public",
        table="financial_data",
        column="description",
        dictionary=dictionary,
    )
    save_dictionary(
        conn,
        table_name="financial_data",
        schema="public",
        table="financial_data",
        column="description",
        dictionary=dictionary,
    )  # no-op

    loaded = load_dictionaries(conn, schema="public", table="financial_data")
    assert loaded == {dictionary.dict_id: dictionary}
    assert load_dictionaries(conn, schema="public", table="market_data") == {}
    assert decompress_array(compressed.values, loaded).cast(pa.string()).equals(values)
    row = conn.execute(
        "SELECT table_name, target_schema, target_table, column_name, created_at IS NOT NULL "
        "FROM _fdm.compression_dictionaries"
    ).fetchall()
    assert row == [("financial_data", "public", "financial_data", "description", True)]


def test_all_dictionaries_of_a_table_are_loaded_whatever_their_column(conn, dictionary):
    other = train_dictionary(
        pa.array([f'{{"n":{index},"k":"v{index % 9}"}}' for index in range(3_000)]), dict_id=40_003
    )
    assert other is not None
    save_dictionary(
        conn,
        table_name="financial_data",
        schema="public",
        table="financial_data",
        column="description",
        dictionary=dictionary,
    )
    save_dictionary(
        conn,
        table_name="financial_data",
        schema="public",
        table="financial_data",
        column="metadata",
        dictionary=other,
    )
    assert set(load_dictionaries(conn, schema="public", table="financial_data")) == {
        dictionary.dict_id,
        other.dict_id,
    }


def test_a_dictionary_id_stored_with_other_data_or_for_another_table_is_refused(conn, dictionary):
    save_dictionary(
        conn,
        table_name="financial_data",
        schema="public",
        table="financial_data",
        column="description",
        dictionary=dictionary,
    )
    impostor = train_dictionary(descriptions(3_000, seed=55), dict_id=dictionary.dict_id)
    assert impostor is not None and impostor.data != dictionary.data
    with pytest.raises(DictionaryIdTaken, match=str(dictionary.dict_id)):
        save_dictionary(
            conn,
            table_name="financial_data",
            schema="public",
            table="financial_data",
            column="description",
            dictionary=impostor,
        )
    with pytest.raises(DictionaryIdTaken):
        save_dictionary(
            conn,
            table_name="market_data",
            schema="public",
            table="market_data",
            column="description",
            dictionary=dictionary,
        )
    assert load_dictionaries(conn, schema="public", table="financial_data") == {
        dictionary.dict_id: dictionary
    }
