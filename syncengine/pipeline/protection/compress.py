"""Column compression: every non-null value of a column becomes one standard zstd frame, column-wise.

A compressed column is `pa.binary()` with one complete zstd frame per value (nulls stay null), so any zstd
tool can read a value on its own: every frame carries its content size, a checksum of its content, and the
id of the dictionary it was compressed with (none for frames without one). Small values (the usual
descriptions and small JSON documents) hardly compress on their own; a dictionary trained on a sample of the
column makes them compress well, so `train_dictionary` trains one when it measurably helps, and the run keeps
every dictionary it used in `_fdm.compression_dictionaries` next to the data (`dictionaries`).

The hot path never turns values into Python objects: values go to zstd's batch API as one
`BufferWithSegments` over the Arrow data buffer, and the frames come back into one Arrow buffer. Frame
headers are read with Arrow compute (`_frame_headers`) to find each frame's dictionary and content size.

Empty values are never handed to zstd's batch calls (they mishandle inputs or outputs that are all empty):
an empty string is compressed once per call and its frame placed wherever the column has one, and frames of
empty content are compared with those known frames instead of being decompressed.

Over 400 lines on purpose: compressing, reading frame headers and decompressing share the Arrow buffer
plumbing above and the empty-value rule, and split across modules each half would need the other's internals.
"""

from __future__ import annotations

import array
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import zstandard as zstd

from syncengine.pipeline.errors import CorruptValue, UnknownDictionary

DEFAULT_LEVEL = 3
# Worker threads for zstd's batch calls (0 would work on the calling thread). On the 2-core machines, 2 threads
# compressed 1M short values with a dictionary in 0.8-1.0 s instead of 1.4-1.6 s, and decompressed them in
# 0.7-1.1 s instead of 1.0-1.3 s (docs/pipeline.md, "Compression"); zstd releases the GIL meanwhile.
THREADS = 2
# Four bytes per value buy a check of every decompressed value: a damaged frame fails the run instead of
# loading wrong text (zstd detects damaged structure without it, but not changed literal bytes).
WRITE_CHECKSUM = True

# zstd reserves dictionary ids below 32768 and at or above 2**31.
MIN_DICT_ID = 32_768
MAX_DICT_ID = 2**31 - 1
# A dictionary is trained only from enough values of a size dictionaries help with, and kept only when it
# saves enough, measured on values it was not trained on (every HELD_OUT_EVERY-th value of the sample).
MIN_TRAINING_VALUES = 256
MAX_MEDIAN_VALUE_BYTES = 4_096
MIN_DICTIONARY_SAVING = 0.10
HELD_OUT_EVERY = 5


_MAGIC = b"\x28\xb5\x2f\xfd"
# After the magic: descriptor (1), window descriptor (0-1), dictionary id (0-4), content size (0-8).
_HEADER_WINDOW = 14
_BLOCK_HEADER = 3
_MAX_VALUE_BYTES = 2**31 - 1  # what one pa.binary() column can hold in all
_ZEROS = pa.scalar(b"\x00" * _HEADER_WINDOW, pa.binary())
_NOTHING = pa.scalar(b"", pa.binary())


@dataclass(frozen=True)
class Dictionary:
    """A trained zstd dictionary and its id, which every frame compressed with it carries in its header."""

    dict_id: int  # zstd's dictionary id, also written into every frame header that uses it
    data: bytes  # the raw dictionary (ZstdCompressionDict.as_bytes())

    def __post_init__(self) -> None:
        if not MIN_DICT_ID <= self.dict_id <= MAX_DICT_ID:
            raise ValueError(f"dictionary id {self.dict_id} is outside {MIN_DICT_ID}..{MAX_DICT_ID}")
        stored_id = zstd.ZstdCompressionDict(self.data).dict_id()
        if stored_id != self.dict_id:
            raise ValueError(f"dictionary data carries id {stored_id}, not {self.dict_id}")

    def zstd_dict(self) -> zstd.ZstdCompressionDict:
        return zstd.ZstdCompressionDict(self.data, dict_type=zstd.DICT_TYPE_FULLDICT)


@dataclass(frozen=True)
class CompressedColumn:
    values: pa.Array  # pa.binary(): one complete zstd frame per non-null value; nulls stay null
    bytes_in: int  # plaintext bytes of the non-null values
    bytes_out: int  # bytes of the frames


# --- Arrow buffers in and out of zstd ----------------------------------------------------------------------


def _storage(values: pa.Array) -> pa.Array:
    """The string or binary array holding the values' bytes (a JSON array's storage)."""
    if not isinstance(values, pa.Array):
        raise TypeError(f"compression works on one pyarrow Array, not {type(values).__name__}")
    storage = values.storage if isinstance(values, pa.ExtensionArray) else values
    kind = storage.type
    if not (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        raise TypeError(
            f"compression takes text, JSON or binary values (string, large_string, binary, large_binary, "
            f"json), not {values.type}"
        )
    return storage


def _value_bounds(storage: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Where each slot's bytes start in the data buffer, and how many there are (uint64; garbage for nulls)."""
    offset_type = (
        pa.int64()
        if pa.types.is_large_string(storage.type) or pa.types.is_large_binary(storage.type)
        else pa.int32()
    )
    count = len(storage)
    offsets = pa.Array.from_buffers(
        offset_type, count + 1, [None, storage.buffers()[1]], offset=storage.offset
    )
    starts = offsets.slice(0, count)
    lengths = pc.subtract(offsets.slice(1, count), starts)
    return starts.cast(pa.uint64()), lengths.cast(pa.uint64())


def _uint64_view(values: pa.Array) -> memoryview:
    buffer = values.buffers()[1]
    assert buffer is not None
    return memoryview(buffer).cast("Q")[values.offset : values.offset + len(values)]


def _segments(storage: pa.Array, starts: pa.Array, lengths: pa.Array) -> zstd.BufferWithSegments:
    """A zstd view of the chosen values over the Arrow data buffer itself (no copy of the values)."""
    pairs = memoryview(bytearray(16 * len(starts))).cast("Q")
    pairs[0::2] = _uint64_view(starts)
    pairs[1::2] = _uint64_view(lengths)
    data = storage.buffers()[2]
    return zstd.BufferWithSegments(memoryview(data) if data is not None else b"", pairs)


def _binary_array(results: zstd.BufferWithSegmentsCollection) -> pa.Array:
    """zstd's batch results (none of them empty) as one pa.binary() array, in order.

    The collection exposes its frames only one by one, so their lengths are gathered by one pass in C
    (`map(len, ...)`, no Python code per value). When its segments lie back to back in one buffer (what one
    worker thread writes) that buffer is used as it is; otherwise the segments are joined into a new one.
    """
    count = len(results)
    lengths = array.array("Q", map(len, cast(Iterable[bytes], results)))
    first, last = pa.py_buffer(cast(bytes, results[0])), pa.py_buffer(cast(bytes, results[count - 1]))
    if last.address + last.size - first.address == results.size():
        data = pa.foreign_buffer(first.address, results.size(), base=results)
    else:
        data = pa.py_buffer(b"".join(cast(Iterable[bytes], results)))
    return _from_lengths(pa.py_buffer(lengths), count, data)


def _from_lengths(lengths: pa.Buffer, count: int, data: pa.Buffer) -> pa.Array:
    sizes = pa.Array.from_buffers(pa.uint64(), count, [None, lengths])
    ends = pc.cumulative_sum(sizes)
    total = ends[count - 1].as_py()
    if total != data.size:
        raise RuntimeError("zstd returned segments that do not add up to its buffers")
    if total > _MAX_VALUE_BYTES:
        raise ValueError("the values add up to more than 2 GiB; split the batch")
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), ends.cast(pa.int32())])
    return pa.Array.from_buffers(pa.binary(), count, [None, offsets.buffers()[1], data])


def _u64(value: int) -> pa.Scalar:
    return pa.scalar(value, pa.uint64())


def _byte_lengths(values: pa.Array) -> pa.Array:
    """Bytes per value (null for nulls), as int64 whatever the offset width."""
    return cast(pa.Array, pc.call_function("binary_length", [values])).cast(pa.int64())


def _empty_binary() -> pa.Array:
    return pa.array([], pa.binary())


# --- compression ---------------------------------------------------------------------------------------------


def _compressor(dictionary: Dictionary | None, level: int) -> zstd.ZstdCompressor:
    return zstd.ZstdCompressor(
        level=level,
        dict_data=dictionary.zstd_dict() if dictionary is not None else None,
        write_checksum=WRITE_CHECKSUM,
        write_content_size=True,
        write_dict_id=True,
    )


def compress_array(
    values: pa.Array, *, dictionary: Dictionary | None = None, level: int = DEFAULT_LEVEL
) -> CompressedColumn:
    """Every non-null value as one zstd frame (`pa.binary()`); nulls stay null, empty values become the
    frame of empty content, which decompresses to an empty value again."""
    storage = _storage(values)
    count = len(storage)
    if count == 0:
        return CompressedColumn(_empty_binary(), 0, 0)
    starts, lengths = _value_bounds(storage)
    present = pc.is_valid(storage)
    nonempty = pc.and_(present, pc.greater(lengths, _u64(0)))
    compressing = pc.sum(nonempty.cast(pa.int64())).as_py() or 0
    bytes_in = pc.sum(pc.filter(lengths, present)).as_py() or 0

    compressor = _compressor(dictionary, level)
    frames = _empty_binary()
    if compressing:
        if compressing < count:
            starts, lengths = pc.filter(starts, nonempty), pc.filter(lengths, nonempty)
        frames = _binary_array(
            compressor.multi_compress_to_buffer(_segments(storage, starts, lengths), threads=THREADS)
        )
    if compressing < count:
        # Nulls stay null (zero bytes), empty values get the frame of empty content, the rest their frames.
        empty_frame = pa.scalar(compressor.compress(b""), pa.binary())
        filled = pc.if_else(present, empty_frame, pa.scalar(None, pa.binary()))
        frames = pc.replace_with_mask(filled, nonempty, frames) if compressing else filled
    bytes_out = pc.sum(_byte_lengths(frames)).as_py() or 0
    return CompressedColumn(frames, bytes_in, bytes_out)


# --- decompression -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FrameHeaders:
    dict_id: pa.Array  # uint64, 0 for frames without a dictionary (and for null values)
    content_size: pa.Array  # uint64 (0 for null values)
    malformed: pa.Array  # bool, never null: a non-null value that is not a frame fdm can decompress


def _little_endian(rows: pa.FixedSizeListArray, start: int, width: int) -> pa.Array:
    """The unsigned little-endian integer of `width` bytes at `start` of every row."""
    total = pa.nulls(len(rows), pa.uint64()).fill_null(0)
    for byte in range(width):
        octet = pc.list_element(rows, start + byte).cast(pa.uint64())
        total = pc.bit_wise_or(total, pc.shift_left(octet, 8 * byte))
    return total


def _frame_headers(frames: pa.Array) -> _FrameHeaders:
    """Each frame's dictionary id and content size, read from its header with Arrow compute.

    Where the fields sit depends only on the frame header descriptor byte (zstd's frame format, RFC 8878
    section 3.1.1.1), and a column has very few distinct descriptors (content sizes of 1 or 2 bytes, with or
    without a dictionary), so the fields are read once per distinct descriptor, at fixed positions.
    """
    count = len(frames)
    present = pc.is_valid(frames)
    window = pc.binary_slice(frames, 4, 4 + _HEADER_WINDOW)
    joined = cast(pa.Array, pc.call_function("binary_join_element_wise", [window, _ZEROS, _NOTHING]))
    padded = pc.binary_slice(joined, 0, _HEADER_WINDOW)
    fixed = padded.fill_null(_ZEROS).cast(pa.binary(_HEADER_WINDOW))
    octets = pa.Array.from_buffers(
        pa.uint8(), count * _HEADER_WINDOW, [None, fixed.buffers()[1]], offset=fixed.offset * _HEADER_WINDOW
    )
    rows = pa.FixedSizeListArray.from_arrays(octets, _HEADER_WINDOW)
    descriptor = pc.list_element(rows, 0)
    frame_bytes = _byte_lengths(frames).fill_null(0).cast(pa.int64())

    dict_id = pa.nulls(count, pa.uint64()).fill_null(0)
    content_size = dict_id
    malformed = pc.and_(present, pc.not_equal(pc.binary_slice(frames, 0, 4), pa.scalar(_MAGIC, pa.binary())))
    for shape in cast(list[int], pc.unique(descriptor.filter(present)).to_pylist()):
        single_segment = (shape >> 5) & 1
        dict_bytes = (0, 1, 2, 4)[shape & 3]
        size_bytes = (single_segment, 2, 4, 8)[shape >> 6]
        dict_start = 2 - single_segment
        size_start = dict_start + dict_bytes
        header_bytes = 4 + size_start + size_bytes  # with the magic
        of_shape = pc.and_(present, pc.equal(descriptor, pa.scalar(shape, pa.uint8())))
        if shape & 0x08 or size_bytes == 0:  # a reserved bit set, or no content size (fdm always writes it)
            malformed = pc.or_(malformed, of_shape)
            continue
        sizes = _little_endian(rows, size_start, size_bytes)
        if size_bytes == 2:
            sizes = pc.add(sizes, 256)
        dict_id = pc.if_else(of_shape, _little_endian(rows, dict_start, dict_bytes), dict_id)
        content_size = pc.if_else(of_shape, sizes, content_size)
        too_short = pc.less(frame_bytes, pa.scalar(header_bytes + _BLOCK_HEADER, pa.int64()))
        malformed = pc.or_(malformed, pc.and_(of_shape, too_short))
    malformed = pc.or_(malformed, pc.greater(content_size, _u64(_MAX_VALUE_BYTES)))
    return _FrameHeaders(dict_id, content_size, malformed)


def _first(mask: pa.Array) -> int:
    positions = pc.indices_nonzero(mask)
    return int(positions[0].as_py()) if len(positions) else -1


def _empty_frames(dictionary: Dictionary | None) -> list[bytes]:
    """The frames of empty content fdm writes (or wrote) with this dictionary, with and without checksum."""
    zstd_dict = dictionary.zstd_dict() if dictionary is not None else None
    return [
        zstd.ZstdCompressor(dict_data=zstd_dict, write_checksum=checksum, write_content_size=True).compress(
            b""
        )
        for checksum in (True, False)
    ]


def _check_empty_frames(frames: pa.Array, empty: pa.Array, dictionary: Dictionary | None) -> None:
    """Frames of empty content are compared with known ones; the rare other form (a frame another tool wrote)
    is decompressed on its own."""
    known = pa.array(_empty_frames(dictionary), pa.binary())
    unknown = pc.and_(empty, pc.invert(pc.is_in(frames, value_set=known)))
    positions = pc.indices_nonzero(unknown).to_pylist()
    if not positions:
        return
    decompressor = (
        zstd.ZstdDecompressor(dict_data=dictionary.zstd_dict()) if dictionary else zstd.ZstdDecompressor()
    )
    for position in positions:
        frame = frames[position].as_py()
        try:
            # decompressobj decodes the frame in full; decompress() returns b"" on the header's word.
            decoded = decompressor.decompressobj().decompress(frame)
        except zstd.ZstdError:
            decoded = None
        if decoded != b"":
            raise CorruptValue(f"the compressed value in row {position} is corrupt")


def decompress_array(values: pa.Array, dictionaries: Mapping[int, Dictionary]) -> pa.Array:
    """The values `compress_array` compressed, as `pa.binary()` (cast to string or JSON as needed).

    Frames may use different dictionaries (older runs used older ones) or none; each group is decompressed in
    one batch call and the values are put back in their rows. A frame naming a dictionary that is not given
    raises UnknownDictionary; a damaged frame raises CorruptValue. Neither message carries the data.
    """
    if not isinstance(values, pa.Array) or not (
        pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)
    ):
        kind = values.type if isinstance(values, pa.Array) else type(values).__name__
        raise TypeError(f"compressed values are binary or large_binary, not {kind}")
    count = len(values)
    if count == 0:
        return _empty_binary()
    headers = _frame_headers(values)
    bad = _first(headers.malformed)
    if bad >= 0:
        raise CorruptValue(
            f"the compressed value in row {bad} is corrupt: not a zstd frame with a content size"
        )
    present = pc.is_valid(values)
    used = cast(list[int], pc.unique(headers.dict_id.filter(present)).to_pylist())
    missing = sorted(dict_id for dict_id in used if dict_id and dict_id not in dictionaries)
    if missing:
        raise UnknownDictionary(
            f"compressed values use dictionary id {', '.join(map(str, missing))}, which is not stored for "
            "this table (_fdm.compression_dictionaries)"
        )
    nonempty = pc.and_(present, pc.greater(headers.content_size, _u64(0)))
    if (pc.sum(pc.filter(headers.content_size, nonempty)).as_py() or 0) > _MAX_VALUE_BYTES:
        raise ValueError("the decompressed values would add up to more than 2 GiB; split the batch")

    result: pa.Array | None = None
    for dict_id in used:
        dictionary = dictionaries[dict_id] if dict_id else None
        of_dictionary = pc.and_(present, pc.equal(headers.dict_id, _u64(dict_id)))
        _check_empty_frames(values, pc.and_(of_dictionary, pc.invert(nonempty)), dictionary)
        selected = pc.and_(of_dictionary, nonempty)
        selected_count = pc.sum(selected.cast(pa.int64())).as_py() or 0
        if not selected_count:
            continue
        group = values if selected_count == count else values.filter(selected)
        decoded = _decompress_group(group, dictionary, selected)
        if selected_count == count:
            return decoded
        if result is None:
            result = pc.if_else(present, _NOTHING, pa.scalar(None, pa.binary()))
        result = pc.replace_with_mask(result, selected, decoded)
    return result if result is not None else pc.if_else(present, _NOTHING, pa.scalar(None, pa.binary()))


def _decompress_group(frames: pa.Array, dictionary: Dictionary | None, rows: pa.Array) -> pa.Array:
    decompressor = (
        zstd.ZstdDecompressor(dict_data=dictionary.zstd_dict()) if dictionary else zstd.ZstdDecompressor()
    )
    starts, lengths = _value_bounds(frames)
    try:
        results = decompressor.multi_decompress_to_buffer(_segments(frames, starts, lengths), threads=THREADS)
    except (zstd.ZstdError, ValueError) as exc:
        raise CorruptValue(f"a compressed value is corrupt ({_row_of(exc, rows)})") from None
    return _binary_array(results)


def _row_of(exc: Exception, rows: pa.Array) -> str:
    """zstd names the item it failed on within the group; say which row of the column that is."""
    words = str(exc).split()
    if "item" in words:
        index = words.index("item") + 1
        item = words[index].rstrip(":") if index < len(words) else ""
        if item.isdigit():
            positions = pc.indices_nonzero(rows)
            if int(item) < len(positions):
                return f"row {positions[int(item)].as_py()}"
    return "zstd could not decode it"


# --- dictionaries --------------------------------------------------------------------------------------------


def _random_dict_id() -> int:
    return MIN_DICT_ID + secrets.randbelow(MAX_DICT_ID - MIN_DICT_ID + 1)


def train_dictionary(
    sample: pa.Array, *, max_size: int = 16_384, dict_id: int | None = None, level: int = DEFAULT_LEVEL
) -> Dictionary | None:
    """A dictionary for values like the sample's, or None when one would not help.

    1. Keep the sample's non-empty values; None when fewer than MIN_TRAINING_VALUES or when their median size
       is above MAX_MEDIAN_VALUE_BYTES (large values compress well on their own).
    2. Hold out every HELD_OUT_EVERY-th value and train on the rest (zstd's fastcover, parameters optimised).
    3. Compress the held-out values with and without the dictionary; keep it only when it saves at least
       MIN_DICTIONARY_SAVING of the bytes compressed without it.

    `dict_id` (default: random in zstd's unreserved range) is written into the dictionary and every frame it
    compresses. The sample is converted to Python bytes once (training runs once per column, off the hot path).
    """
    storage = _storage(sample)
    wide = pa.types.is_large_string(storage.type) or pa.types.is_large_binary(storage.type)
    raw = storage.cast(pa.large_binary() if wide else pa.binary())
    usable = raw.filter(cast(Any, pc.greater(_byte_lengths(raw), pa.scalar(0, pa.int64())).fill_null(False)))
    if len(usable) < MIN_TRAINING_VALUES:
        return None
    median = pc.approximate_median(_byte_lengths(usable)).as_py()
    if median is None or median > MAX_MEDIAN_VALUE_BYTES:
        return None
    chosen_id = _random_dict_id() if dict_id is None else dict_id
    if not MIN_DICT_ID <= chosen_id <= MAX_DICT_ID:
        raise ValueError(f"dictionary id {chosen_id} is outside {MIN_DICT_ID}..{MAX_DICT_ID}")

    values = cast(list[bytes], usable.to_pylist())
    held_out = values[::HELD_OUT_EVERY]
    training = [value for index, value in enumerate(values) if index % HELD_OUT_EVERY]
    try:
        trained = zstd.train_dictionary(max_size, training, dict_id=chosen_id, level=level)
    except zstd.ZstdError:
        return None  # zstd found nothing worth a dictionary (too little or too uniform data)
    dictionary = Dictionary(dict_id=trained.dict_id(), data=trained.as_bytes())

    check = pa.array(held_out, pa.binary())
    without = compress_array(check, level=level).bytes_out
    with_dictionary = compress_array(check, dictionary=dictionary, level=level).bytes_out
    if with_dictionary > without * (1 - MIN_DICTIONARY_SAVING):
        return None
    return dictionary
