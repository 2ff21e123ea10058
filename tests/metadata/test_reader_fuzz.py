"""Bad input to the metadata reader: truncated and corrupted assemblies and PDBs read, or raise BadImageError.

`hotreload delta` and `hotreload watch` read whatever files they are given. A corrupt file must end in a message
that says what is wrong, never in an IndexError, struct.error, RecursionError, a huge allocation or a hang. The
properties start from a real F# build (HotLib with try/with, closures and locals: fat bodies with exception
sections, StandAloneSig, TypeSpec, a portable PDB) and aim their mutations at the structures the reader trusts:
the PE headers, the metadata root and stream headers, the table header's row counts, heaps and method bodies.
Every read touches everything: each row of each table, each heap entry a row points at, each signature, each
method body and its instructions, each PDB document and sequence-point blob.

`HOTRELOAD_FUZZ_EXAMPLES=5000` runs a deeper search than CI's.
"""

from __future__ import annotations

import os
import signal
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import FrameType

import pytest
from fsharp_testkit import BuildFarm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotreload.metadata.errors import BadImageError
from hotreload.metadata.il import instructions, parse_body
from hotreload.metadata.reader import Assembly, MetadataImage
from hotreload.metadata.schema import SCHEMA, Coded, CustomAttributeType, T, TypeDefOrRef
from hotreload.metadata.sigs import MAX_TYPE_DEPTH, map_signature, map_type_signature, read_compressed
from hotreload.pdb import Pdb, decode_sequence_points

EXAMPLES = int(os.environ.get("HOTRELOAD_FUZZ_EXAMPLES", "200"))
TIME_LIMIT = 5.0
"""Seconds one read may take: a read of the sample takes about a millisecond, so this is a hang."""
MEMORY_LIMIT = 64 << 20
"""Peak bytes one read may allocate (the sample is 8 KB): more means a size was taken from the file unchecked."""

FUZZ = settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SIGNATURE_TABLES = {T.MethodDef: 4, T.Field: 2, T.MemberRef: 2, T.StandAloneSig: 0, T.Property: 2}
"""Tables whose rows hold a signature blob, and the column that holds it."""


# ---- reading everything ---------------------------------------------------------------------------------

def _ignore_type(_table: T, _row: int) -> bytes:
    return b""


def _read_tables(md: MetadataImage) -> None:
    """Every row of every table, and every heap entry, coded index and signature a row points at."""
    for table, rows in md.tables.items():
        for rid in range(1, len(rows) + 1):
            for (_name, kind), value in zip(SCHEMA[table], md.row(table, rid), strict=True):
                if kind == "str":
                    md.string(value)
                elif kind == "blob":
                    md.blob(value)
                elif kind == "guid":
                    md.guid(value)
                elif isinstance(kind, Coded):
                    kind.decode(value)
    for table, column in SIGNATURE_TABLES.items():
        for row in md.rows(table):
            map_signature(md.blob(row[column]), _ignore_type)
    for (blob,) in md.rows(T.TypeSpec):
        map_type_signature(md.blob(blob), _ignore_type)
    for heap in ("#Strings", "#US", "#Blob", "#GUID"):
        md.heap_size(heap)
    for offset in md.user_strings().values():
        md.user_string(offset)


def read_assembly(data: bytes) -> None:
    asm = Assembly(data)
    _read_tables(asm.md)
    for rva, *_ in asm.md.rows(T.MethodDef):
        if rva:
            body = parse_body(asm.body_at(rva))
            for _ in instructions(body.code):
                pass
    for rva, _field in asm.md.rows(T.FieldRva):
        asm.data_at(rva, 64)


def read_pdb(data: bytes) -> None:
    pdb = Pdb(data)
    _read_tables(pdb.md)
    pdb.documents()
    for rid in range(1, len(pdb.md.rows(T.MethodDebugInformation)) + 1):
        pdb.method_info(rid)


class Hang(Exception):
    """A read that did not finish within TIME_LIMIT."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt a hang with an exception, so Hypothesis reports (and shrinks) the input that caused it.

    SIGALRM is also pytest-timeout's: its handler and remaining time are put back afterwards.
    """
    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"still reading after {seconds} s: an infinite loop?")

    start = time.monotonic()
    handler = signal.signal(signal.SIGALRM, expire)
    outer, _interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 0.001))


def reads_or_refuses(read: Callable[[bytes], object], data: bytes) -> None:
    """The property: `read` succeeds or raises BadImageError with a message, in bounded time and memory.

    Memory is traced during the read only: tracing Hypothesis' own work as well would make the tests 5x slower.
    """
    tracemalloc.start()
    try:
        with time_limit(TIME_LIMIT):
            read(data)
    except BadImageError as exc:
        assert str(exc), "BadImageError without a message"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"reading {len(data)} bytes allocated {peak >> 20} MB"


# ---- the sample and where its structures are ------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where the reader's structures sit in one sample file (file offsets), so mutations can aim at them."""

    data: bytes
    metadata: tuple[int, int]  # (start, end) of the metadata root and its streams
    stream_headers: tuple[int, ...]  # the (offset, size) pair of each stream header
    stream_count: int  # the root's stream count (u16)
    tables_header: int  # the #~ stream: heap-size flags at +6, valid mask at +8
    row_counts: tuple[int, ...]  # the u32 row count of each present table
    heaps: tuple[tuple[int, int], ...]  # (start, end) of each heap stream (#Strings, #US, #GUID, #Blob)
    bodies: tuple[int, int]  # (start, end) of the method bodies; (0, 0) for a PDB


def layout(data: bytes, md_start: int) -> Layout:
    md = MetadataImage(data[md_start:])
    vlen, = struct.unpack_from("<I", data, md_start + 12)
    pos = md_start + 16 + vlen + 4
    headers = []
    for _ in md.streams:
        headers.append(pos)
        end = data.index(b"\0", pos + 8)
        pos = md_start + ((end - md_start + 4) & ~3)
    tables = md_start + md.streams["#~"][0]
    valid, = struct.unpack_from("<Q", data, tables + 8)
    rows = tuple(tables + 24 + 4 * i for i in range(valid.bit_count()))
    end = md_start + max(off + size for off, size in md.streams.values())
    heaps = tuple((md_start + off, md_start + off + size) for name, (off, size) in md.streams.items()
                  if name in ("#Strings", "#US", "#GUID", "#Blob") and size)
    return Layout(data, (md_start, end), tuple(headers), md_start + 16 + vlen + 2, tables, rows, heaps, (0, 0))


@dataclass(frozen=True)
class Samples:
    dll: Layout
    pdb: Layout

    def __repr__(self) -> str:  # Hypothesis prints the fixture with a failing example: not 8 KB of bytes
        return f"Samples(dll: {len(self.dll.data)} bytes, pdb: {len(self.pdb.data)} bytes)"


@pytest.fixture(scope="module")
def samples(build_farm: BuildFarm) -> Samples:
    build = build_farm["all"]
    data, pdb = build.dll.read_bytes(), build.pdb.read_bytes()
    asm = Assembly(data)
    dll = layout(data, data.index(asm.md.raw))
    starts = [asm.pe.rva_to_offset(row[0]) for row in asm.md.rows(T.MethodDef) if row[0]]
    ends = [len(asm.body_at(row[0])) + start for row, start in zip(
        (r for r in asm.md.rows(T.MethodDef) if r[0]), starts, strict=True)]
    dll = replace(dll, bodies=(min(starts), max(ends)))
    read_assembly(data)  # the unmutated sample reads (else every property would pass by refusing it)
    read_pdb(pdb)
    assert dll.bodies[1] > dll.bodies[0] and len(dll.row_counts) > 10
    assert any(parse_body(asm.body_at(r[0])).clauses for r in asm.md.rows(T.MethodDef) if r[0]), "no try/with"
    return Samples(dll, layout(pdb, 0))


# ---- mutations ---------------------------------------------------------------------------------------------

def _u32(sample: Layout) -> st.SearchStrategy[int]:
    """Sizes, offsets and counts: edge values, values near the file's own size, anything."""
    n = len(sample.data)
    return st.one_of(st.sampled_from([0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                                      0xFFFFFFFF, n - 1, n, n + 1]),
                     st.integers(0, n + 64), st.integers(0, 0xFFFFFFFF))


def _overwrite(data: bytearray, pos: int, value: bytes) -> None:
    data[pos:pos + len(value)] = value[:max(0, len(data) - pos)]


def _scribble(draw: st.DataObject, sample: Layout, start: int, end: int) -> bytes:
    """1-16 bytes, bits or u32 values written at random places in [start, end)."""
    data = bytearray(sample.data)
    for _ in range(draw.draw(st.integers(1, 16), label="writes")):
        pos = draw.draw(st.integers(start, end - 1), label="at")
        how = draw.draw(st.sampled_from(["byte", "bit", "u32"]), label="how")
        if how == "byte":
            data[pos] = draw.draw(st.integers(0, 255), label="byte")
        elif how == "bit":
            data[pos] ^= 1 << draw.draw(st.integers(0, 7), label="bit")
        else:
            _overwrite(data, pos, struct.pack("<I", draw.draw(_u32(sample), label="u32")))
    return bytes(data)


def _sample(samples: Samples, kind: str) -> tuple[Layout, Callable[[bytes], None]]:
    return (samples.dll, read_assembly) if kind == "dll" else (samples.pdb, read_pdb)


@pytest.mark.runtime
@pytest.mark.parametrize("kind", ["dll", "pdb"])
@FUZZ
@given(draw=st.data())
def test_truncated_file(samples: Samples, kind: str, draw: st.DataObject) -> None:
    """Cut anywhere, or (more often than chance would) inside the metadata, where the structure is."""
    sample, read = _sample(samples, kind)
    cut = draw.draw(st.one_of(st.integers(0, len(sample.data) - 1),
                              st.integers(sample.metadata[0], sample.metadata[1] - 1)), label="cut")
    reads_or_refuses(read, sample.data[:cut])


@pytest.mark.runtime
@pytest.mark.parametrize("kind", ["dll", "pdb"])
@FUZZ
@given(draw=st.data())
def test_metadata_bytes_overwritten(samples: Samples, kind: str, draw: st.DataObject) -> None:
    """Anywhere in the root, the stream headers, the tables and the heaps."""
    sample, read = _sample(samples, kind)
    reads_or_refuses(read, _scribble(draw, sample, *sample.metadata))


@pytest.mark.runtime
@pytest.mark.parametrize("kind", ["dll", "pdb"])
@FUZZ
@given(draw=st.data())
def test_stream_headers_corrupted(samples: Samples, kind: str, draw: st.DataObject) -> None:
    """Stream offsets and sizes (past the end, overlapping, zero), the stream count, and the names."""
    sample, read = _sample(samples, kind)
    data = bytearray(sample.data)
    for _ in range(draw.draw(st.integers(1, 3), label="changes")):
        header = draw.draw(st.sampled_from(sample.stream_headers), label="header")
        field = draw.draw(st.sampled_from(["offset", "size", "name", "count"]), label="field")
        if field == "count":
            _overwrite(data, sample.stream_count, struct.pack("<H", draw.draw(st.integers(0, 0xFFFF), label="n")))
        elif field == "name":
            data[header + 8 + draw.draw(st.integers(0, 4), label="char")] = draw.draw(st.integers(0, 255), label="c")
        else:
            _overwrite(data, header + (4 if field == "size" else 0), struct.pack("<I", draw.draw(_u32(sample))))
    reads_or_refuses(read, bytes(data))


@pytest.mark.runtime
@pytest.mark.parametrize("kind", ["dll", "pdb"])
@FUZZ
@given(draw=st.data())
def test_table_header_corrupted(samples: Samples, kind: str, draw: st.DataObject) -> None:
    """Row counts (which also widen other tables' index columns), the valid-table mask and the heap-size flags."""
    sample, read = _sample(samples, kind)
    data = bytearray(sample.data)
    for _ in range(draw.draw(st.integers(1, 3), label="changes")):
        what = draw.draw(st.sampled_from(["rows", "rows", "mask", "heaps"]), label="what")
        if what == "rows":
            slot = draw.draw(st.sampled_from(sample.row_counts), label="table")
            _overwrite(data, slot, struct.pack("<I", draw.draw(_u32(sample), label="count")))
        elif what == "mask":
            data[sample.tables_header + 8 + draw.draw(st.integers(0, 7), label="byte")] ^= 1 << draw.draw(
                st.integers(0, 7), label="bit")
        else:
            data[sample.tables_header + 6] = draw.draw(st.integers(0, 255), label="flags")
    reads_or_refuses(read, bytes(data))


@pytest.mark.runtime
@pytest.mark.parametrize("kind", ["dll", "pdb"])
@FUZZ
@given(draw=st.data())
def test_heap_entries_corrupted(samples: Samples, kind: str, draw: st.DataObject) -> None:
    """Inside one heap: string terminators, blob and #US lengths, signatures, document names, sequence points."""
    sample, read = _sample(samples, kind)
    start, end = draw.draw(st.sampled_from(sample.heaps), label="heap")
    reads_or_refuses(read, _scribble(draw, sample, start, end))


@pytest.mark.runtime
@FUZZ
@given(draw=st.data())
def test_method_bodies_corrupted(samples: Samples, draw: st.DataObject) -> None:
    """Headers (tiny/fat, code size, flags), exception sections and instruction streams."""
    sample = samples.dll
    reads_or_refuses(read_assembly, _scribble(draw, sample, *sample.bodies))


@pytest.mark.runtime
@FUZZ
@given(draw=st.data())
def test_pe_headers_corrupted(samples: Samples, draw: st.DataObject) -> None:
    """DOS/PE headers, the optional header's data directories, the section table and the CLI header."""
    sample = samples.dll
    reads_or_refuses(read_assembly, _scribble(draw, sample, 0, min(sample.bodies[0], 0x400)))


# ---- the parsers on arbitrary and on almost-valid bytes (no build needed) ------------------------------------

@st.composite
def fat_bodies(draw: st.DrawFn) -> bytes:
    """A fat method header, code, then data sections of any kind and size (0-3 included: not even a header)."""
    code = draw(st.binary(max_size=16))
    flags = 0x3 | 3 << 12 | draw(st.sampled_from([0, 0x8, 0x18]))  # MoreSects, InitLocals
    out = struct.pack("<HHII", flags, 8, len(code), 0) + code
    for _ in range(draw(st.integers(0, 3))):
        out += bytes(-len(out) % 4)
        kind = draw(st.sampled_from([0x01, 0x41, 0x81, 0xC1, 0x00, 0x02]))  # EHTable, fat, more sections
        size = draw(st.one_of(st.integers(0, 7), st.integers(0, 64)))
        out += bytes([kind]) + (size.to_bytes(3, "little") if kind & 0x40 else bytes([size, 0, 0]))
        fits = draw(st.booleans())  # the section holds what its size says, so the next one is read too
        out += draw(st.binary(min_size=max(size - 4, 0), max_size=max(size - 4, 0)) if fits else st.binary(max_size=48))
    return out + draw(st.binary(max_size=8))


TYPE_PREFIXES = [b"\x0f", b"\x10", b"\x1d", b"\x45", b"\x15\x12\x08\x01", b"\x1f\x08", b"\x1b\x00\x00"]
"""PTR, BYREF, SZARRAY, PINNED, GENERICINST CLASS <tok> 1, CMOD_REQD <tok>, FNPTR default 0 params: each wraps the
type that follows."""


@st.composite
def nested_signatures(draw: st.DrawFn) -> bytes:
    """A field signature whose type nests 0 to 3000 levels deep, then ends (or not) in int32."""
    pattern = draw(st.lists(st.sampled_from(TYPE_PREFIXES), min_size=1, max_size=4))
    depth = draw(st.integers(0, 3000))
    return b"\x06" + b"".join(pattern[i % len(pattern)] for i in range(depth)) + draw(st.sampled_from([b"\x08", b""]))


@settings(max_examples=EXAMPLES)
@given(body=fat_bodies())
def test_almost_valid_method_body(body: bytes) -> None:
    reads_or_refuses(lambda b: [*instructions(parse_body(b).code)], body)


@settings(max_examples=EXAMPLES // 4)
@given(blob=nested_signatures())
def test_deeply_nested_signature(blob: bytes) -> None:
    reads_or_refuses(lambda b: map_signature(b, _ignore_type), blob)


@pytest.mark.parametrize("parse", [
    pytest.param(lambda b: map_signature(b, _ignore_type), id="signature"),
    pytest.param(lambda b: map_type_signature(b, _ignore_type), id="type-signature"),
    pytest.param(lambda b: [*instructions(parse_body(b).code)], id="method-body"),
    pytest.param(lambda b: decode_sequence_points(b, 0), id="sequence-points"),
    pytest.param(lambda b: decode_sequence_points(b, 1), id="sequence-points-one-document"),
    pytest.param(lambda b: _read_tables(MetadataImage(b"BSJB" + b)), id="metadata"),
])
@settings(max_examples=EXAMPLES)
@given(blob=st.binary(max_size=200))
def test_any_bytes(parse: Callable[[bytes], object], blob: bytes) -> None:
    reads_or_refuses(parse, blob)


# ---- the bugs this found, one input each ------------------------------------------------------------------

def test_zero_size_method_data_section_is_refused_not_a_hang() -> None:
    """A fat body announcing a data section of size 0 made parse_body loop forever (body_size already refused it)."""
    body = struct.pack("<HHII", 0x3 | 0x8 | 3 << 12, 8, 0, 0) + bytes([0xC1, 0, 0, 0]) + bytes(8)
    with time_limit(TIME_LIMIT), pytest.raises(BadImageError, match="data section .* size 0"):
        parse_body(body)
    small = struct.pack("<HHII", 0x3 | 0x8 | 3 << 12, 8, 0, 0) + bytes([0x81, 2, 0, 0]) + bytes(8)
    with time_limit(TIME_LIMIT), pytest.raises(BadImageError, match="size 2"):
        parse_body(small)


def test_deeply_nested_signature_is_refused_not_a_recursion_error() -> None:
    nested = b"\x06" + b"\x0f" * 5000 + b"\x08"  # FIELD, then 5000 PTRs to int32
    with pytest.raises(BadImageError, match="nested more than"):
        map_signature(nested, _ignore_type)
    fine = b"\x06" + b"\x0f" * (MAX_TYPE_DEPTH - 1) + b"\x08"
    assert map_signature(fine, _ignore_type) == fine


def test_truncated_compressed_integer_is_bad_image() -> None:
    """Sequence points and document names are read with read_compressed outside any signature walker."""
    for blob in (b"\x81", b"\xc0\x00", b"\xc0\x00\x00"):
        with pytest.raises(BadImageError, match="runs past the end"):
            read_compressed(blob, 0)
    with pytest.raises(BadImageError):
        decode_sequence_points(b"\x00\x01\x02\x81", 1)


def test_undefined_coded_index_tag_is_bad_image() -> None:
    """TypeDefOrRef has three tables for two tag bits: tag 3 indexed past the tuple (IndexError)."""
    assert TypeDefOrRef.decode(0x10) == (T.TypeDef, 4)
    with pytest.raises(BadImageError, match="TypeDefOrRef coded index 0x13: tag 3"):
        TypeDefOrRef.decode(0x13)
    with pytest.raises(BadImageError, match="tag 3"):
        map_signature(b"\x06\x12\x13", _ignore_type)  # FIELD CLASS <TypeDefOrRef tag 3>
    assert CustomAttributeType.decode(0x1B) == (T.MemberRef, 3)
    for unused in (0, 1, 4):  # CustomAttributeType's unused tags (names.py asserted they never occur)
        with pytest.raises(BadImageError, match=f"CustomAttributeType coded index .*: tag {unused}"):
            CustomAttributeType.decode(0x18 | unused)


def test_odd_length_user_string_is_bad_image() -> None:
    """#US entries are UTF-16 plus one flag byte, so an even length is corrupt (it raised UnicodeDecodeError)."""
    md = MetadataImage(_metadata_with_user_strings(b"\x00\x04a\x00b\x00"))
    with pytest.raises(BadImageError, match="odd length"):
        md.user_string(1)
    with pytest.raises(BadImageError, match="odd length"):
        md.user_strings()


def _metadata_with_user_strings(us: bytes) -> bytes:
    """A minimal metadata root: an empty #~ stream (no tables) and the given #US heap."""
    version = b"v4.0.30319\0\0"
    tables = struct.pack("<IBBBBQQ", 0, 2, 0, 0, 1, 0, 0)
    us = us + b"\0" * (-len(us) % 4)
    headers_size = (8 + 4) + (8 + 4)
    start = 16 + len(version) + 4 + headers_size
    root = struct.pack("<IHHII", 0x424A5342, 1, 1, 0, len(version)) + version + struct.pack("<HH", 0, 2)
    root += struct.pack("<II", start, len(tables)) + b"#~\0\0"
    root += struct.pack("<II", start + len(tables), len(us)) + b"#US\0"
    return root + tables + us
