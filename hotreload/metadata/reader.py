"""Reads ECMA-335 metadata (assemblies, EnC deltas, portable PDBs) into plain rows of integers.

Our own reader rather than dnfile: the delta writer needs the raw heap offsets, exact heap sizes and the
same table schema, and tests read our deltas (``#-`` with ``#JTD``) back with it.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator, Mapping
from functools import cached_property

from .errors import BadImageError
from .il import body_size
from .pe import PEImage
from .schema import FIXED_SIZES, SCHEMA, TABLE_COUNT, Coded, T
from .sigs import read_compressed

Row = tuple[int, ...]


class MetadataImage:
    """One metadata root: streams, heaps and tables (rows as tuples of raw column values)."""

    def __init__(self, metadata: bytes, external_row_counts: list[int] | None = None) -> None:
        self.raw = metadata
        self._strings: dict[int, str] = {}  # #Strings offset -> its entry (see `string`)
        try:
            self._parse_root()
            self._parse_tables(external_row_counts)
        except (struct.error, IndexError) as exc:
            raise BadImageError(f"truncated or corrupt metadata: {exc}") from None

    # ---- root and streams -------------------------------------------------------------------
    def _parse_root(self) -> None:
        d = self.raw
        sig, = struct.unpack_from("<I", d, 0)
        if sig != 0x424A5342:
            raise BadImageError("no metadata signature (BSJB)")
        vlen, = struct.unpack_from("<I", d, 12)
        if vlen > 255:
            raise BadImageError("metadata version string too long")
        self.version = d[16:16 + vlen].split(b"\0")[0].decode("ascii", "replace")
        pos = 16 + vlen
        _flags, nstreams = struct.unpack_from("<HH", d, pos)
        pos += 4
        self.streams: dict[str, tuple[int, int]] = {}
        for i in range(nstreams):
            if pos + 8 > len(d):
                raise BadImageError(f"stream header {i + 1} of {nstreams} runs past the end of the metadata")
            off, size = struct.unpack_from("<II", d, pos)
            pos += 8
            end = d.find(b"\0", pos)
            if end < 0:
                raise BadImageError("unterminated stream name in the metadata root")
            name = d[pos:end].decode("ascii", "replace")
            pos = (end + 4) & ~3
            if off + size > len(d):
                raise BadImageError(f"stream {name!r} runs past the end of the metadata")
            self.streams[name] = (off, size)
        self.is_minimal_delta = "#JTD" in self.streams

    def _stream(self, name: str) -> bytes:
        if name not in self.streams:
            return b""
        off, size = self.streams[name]
        return self.raw[off:off + size]

    @cached_property
    def strings_heap(self) -> bytes:
        return self._stream("#Strings")

    @cached_property
    def blob_heap(self) -> bytes:
        return self._stream("#Blob")

    @cached_property
    def guid_heap(self) -> bytes:
        return self._stream("#GUID")

    @cached_property
    def us_heap(self) -> bytes:
        return self._stream("#US")

    def heap_size(self, name: str) -> int:
        """Size of a heap as the runtime sees it: what an EnC delta's heap offsets continue from.

        The stream header's size, except for #Strings: the runtime's string pool (and SRM) drop the alignment
        padding and keep a single terminating NUL, so delta strings start right after the last string.
        """
        size = self.streams.get(name, (0, 0))[1]
        if name == "#Strings" and size:
            return min(size, len(self.strings_heap.rstrip(b"\0")) + 1)
        return size

    # ---- tables -------------------------------------------------------------------------------
    def _parse_tables(self, external_row_counts: list[int] | None) -> None:
        name = "#~" if "#~" in self.streams else "#-"
        if name not in self.streams:
            raise BadImageError("no metadata table stream")
        tables = self._stream(name)
        if len(tables) < 24:
            raise BadImageError(f"table stream {name} is {len(tables)} bytes: shorter than its 24-byte header")
        self.pdb_id = b""
        self.pdb_entry_point = 0
        external = [0] * TABLE_COUNT
        if "#Pdb" in self.streams:
            pdb = self._stream("#Pdb")
            if len(pdb) < 32 + 4 * int.from_bytes(pdb[24:32], "little").bit_count():
                raise BadImageError(f"#Pdb stream is {len(pdb)} bytes: too short for its id and row counts")
            self.pdb_id = pdb[:20]
            self.pdb_entry_point, mask = struct.unpack_from("<IQ", pdb, 20)
            pos = 32
            for i in range(TABLE_COUNT):
                if mask >> i & 1:
                    external[i], = struct.unpack_from("<I", pdb, pos)
                    pos += 4
        if external_row_counts:
            external = list(external_row_counts) + [0] * (TABLE_COUNT - len(external_row_counts))
        heap_sizes = tables[6]
        valid, self.sorted_mask = struct.unpack_from("<QQ", tables, 8)
        if len(tables) < 24 + 4 * valid.bit_count():
            raise BadImageError(f"table stream {name} is {len(tables)} bytes: too short for the row counts of "
                                f"{valid.bit_count()} tables")
        pos = 24
        self.row_counts = [0] * TABLE_COUNT
        for i in range(TABLE_COUNT):
            if valid >> i & 1:
                self.row_counts[i], = struct.unpack_from("<I", tables, pos)
                pos += 4
        if heap_sizes & 0x40:  # "extra data" flag of uncompressed streams
            pos += 4
        wide = self.is_minimal_delta
        big_str = wide or bool(heap_sizes & 1)
        big_guid = wide or bool(heap_sizes & 2)
        big_blob = wide or bool(heap_sizes & 4)
        counts = [self.row_counts[i] + external[i] for i in range(TABLE_COUNT)]

        def size_of(kind: object) -> int:
            if isinstance(kind, str):
                if kind in FIXED_SIZES:
                    return FIXED_SIZES[kind]
                return 4 if {"str": big_str, "guid": big_guid, "blob": big_blob}[kind] else 2
            if wide:
                return 4
            if isinstance(kind, Coded):
                limit = 1 << (16 - kind.bits)
                return 4 if max(counts[t] if t is not None else 0 for t in kind.tables) >= limit else 2
            return 4 if counts[int(kind)] >= 0x10000 else 2  # type: ignore[call-overload]

        self.tables = _Tables(tables)
        self.table_offsets: dict[T, int] = {}
        stream_off = self.streams[name][0]
        for i in range(TABLE_COUNT):
            n = self.row_counts[i]
            if not n:
                continue
            if i not in T._value2member_map_:
                raise BadImageError(f"unknown metadata table {i:#x}")
            t = T(i)
            fmt = "<" + "".join("H" if size_of(k) == 2 else ("B" if size_of(k) == 1 else "I")
                                for _, k in SCHEMA[t])
            width = struct.calcsize(fmt)
            end = pos + n * width
            if end > len(tables):
                raise BadImageError(f"table {t.name} runs past the end of the table stream")
            self.table_offsets[t] = stream_off + pos
            self.tables.layout[t] = (fmt, pos, end)
            pos = end

    def rows(self, table: T) -> list[Row]:
        rows = self.tables.decoded.get(table)  # the hot path: a plain dict lookup
        if rows is None:
            return self.tables[table] if table in self.tables.layout else []
        return rows

    def column(self, table: T, index: int) -> list[int]:
        """Column `index` of every row of `table` (see _Tables.column): [] when the table has no rows."""
        return self.tables.column(table, index)

    def table_bytes(self, table: T) -> bytes:
        """The table's rows as stored (b"" when it has none): whole tables compare without decoding a row."""
        return self.tables.raw(table)

    def row(self, table: T, rid: int) -> Row:
        """One row; of a table not decoded yet, only that row is read (a save that changes bodies only asks for
        a few rows of a large MethodDef table)."""
        rows = self.tables.decoded.get(table)
        if rows is None:
            return self.tables.one(table, rid)
        if not 1 <= rid <= len(rows):
            raise BadImageError(f"{table.name} row {rid} does not exist")
        return rows[rid - 1]

    # ---- heaps ----------------------------------------------------------------------------------
    def string(self, offset: int) -> str:
        """The #Strings entry at `offset` (memoized: a structural save reads each name many times)."""
        found = self._strings.get(offset)
        if found is None:
            found = self._strings[offset] = self._read_string(offset)
        return found

    def _read_string(self, offset: int) -> str:
        heap = self.strings_heap
        if offset >= len(heap):
            if offset == 0:
                return ""
            raise BadImageError(f"#Strings offset {offset:#x} out of range")
        end = heap.find(b"\0", offset)
        if end < 0:
            end = len(heap)
        return heap[offset:end].decode("utf-8", "surrogateescape")

    def blob(self, offset: int) -> bytes:
        heap = self.blob_heap
        if offset == 0 and not heap:
            return b""
        if offset >= len(heap):
            raise BadImageError(f"#Blob offset {offset:#x} out of range")
        length, pos = read_compressed(heap, offset)
        if pos + length > len(heap):
            raise BadImageError(f"#Blob entry at {offset:#x} runs past the heap")
        return heap[pos:pos + length]

    def guid(self, index: int) -> bytes:
        if index == 0:
            return b"\0" * 16
        start = (index - 1) * 16
        if start + 16 > len(self.guid_heap):
            raise BadImageError(f"#GUID index {index} out of range")
        return self.guid_heap[start:start + 16]

    def user_string(self, offset: int) -> str:
        heap = self.us_heap
        if offset >= len(heap):
            raise BadImageError(f"#US offset {offset:#x} out of range")
        length, pos = read_compressed(heap, offset)
        if pos + length > len(heap):
            raise BadImageError(f"#US entry at {offset:#x} runs past the heap")
        return _utf16(heap, offset, pos, length - 1 if length else 0)

    def user_strings(self) -> dict[str, int]:
        """Every #US entry, value -> offset, so a delta can reuse strings the module already has."""
        heap = self.us_heap
        out: dict[str, int] = {}
        pos = 1
        while pos < len(heap):
            length, data = read_compressed(heap, pos)
            if length == 0:
                pos = data
                continue
            if data + length > len(heap):
                raise BadImageError(f"#US entry at {pos:#x} runs past the heap")
            out.setdefault(_utf16(heap, pos, data, length - 1), pos)
            pos = data + length
        return out


def _utf16(heap: bytes, entry: int, start: int, size: int) -> str:
    """The UTF-16 text of the #US entry at `entry`; an odd byte count (2 per char, + 1 flag byte) is corruption."""
    if size % 2:
        raise BadImageError(f"#US entry at {entry:#x} has an odd length ({size + 1} bytes): not UTF-16 text")
    return heap[start:start + size].decode("utf-16-le", "surrogatepass")


class _Tables(Mapping[T, list[Row]]):
    """The tables present, each decoded into rows when first asked for: a save that changes only method bodies
    reads a few of a large assembly's tables (hotreload.incremental compares the rest as bytes)."""

    def __init__(self, stream: bytes) -> None:
        self.stream = stream
        self.layout: dict[T, tuple[str, int, int]] = {}  # table -> (row format, start, end) in the stream
        self.decoded: dict[T, list[Row]] = {}
        self.columns: dict[tuple[T, int], list[int]] = {}  # (table, column) -> its values (see `column`)
        self.structs: dict[T, struct.Struct] = {}  # table -> its row format, for rows read alone (see `one`)

    def __getitem__(self, table: T) -> list[Row]:
        rows = self.decoded.get(table)
        if rows is None:
            fmt, start, end = self.layout[table]
            rows = self.decoded[table] = list(struct.iter_unpack(fmt, self.stream[start:end]))
        return rows

    def __iter__(self) -> Iterator[T]:
        return iter(self.layout)

    def __len__(self) -> int:
        return len(self.layout)

    def one(self, table: T, rid: int) -> Row:
        """Row `rid` of `table`, read alone; BadImageError when the table has no such row."""
        layout = self.layout.get(table)
        if layout is None:
            raise BadImageError(f"{table.name} row {rid} does not exist")
        fmt, start, end = layout
        reader = self.structs.get(table)
        if reader is None:
            reader = self.structs[table] = struct.Struct(fmt)
        at = start + (rid - 1) * reader.size
        if rid < 1 or at + reader.size > end:
            raise BadImageError(f"{table.name} row {rid} does not exist")
        return reader.unpack_from(self.stream, at)

    def column(self, table: T, index: int) -> list[int]:
        """One column of every row, without decoding the rows: the column's bytes taken by strided slices (C
        speed) and read as an array. A save that changes bodies only needs the RVAs of a large MethodDef table."""
        found = self.columns.get((table, index))
        if found is None:
            found = self.columns[(table, index)] = self._column(table, index)
        return found

    def _column(self, table: T, index: int) -> list[int]:
        rows = self.decoded.get(table)
        if rows is not None or table not in self.layout:
            return [row[index] for row in self[table]] if table in self.layout else []
        fmt, start, end = self.layout[table]
        sizes = [struct.calcsize("<" + code) for code in fmt[1:]]
        width, at, size = sum(sizes), sum(sizes[:index]), sizes[index]
        if sys.byteorder != "little" or size == 1:
            return [row[index] for row in struct.iter_unpack(fmt, self.stream[start:end])]
        count = (end - start) // width
        values = bytearray(count * size)
        for byte in range(size):
            values[byte::size] = self.stream[start + at + byte:end:width]
        return memoryview(values).cast("H" if size == 2 else "I").tolist()

    def raw(self, table: T) -> bytes:
        if table not in self.layout:
            return b""
        _fmt, start, end = self.layout[table]
        return self.stream[start:end]


class Assembly:
    """A PE assembly on disk plus its metadata, with method bodies addressable by RVA."""

    def __init__(self, data: bytes, path: str = "<memory>") -> None:
        self.path = path
        self.pe = PEImage(data)
        self.md = MetadataImage(self.pe.metadata)

    @classmethod
    def from_file(cls, path: str) -> Assembly:
        """Read an assembly; a BadImageError names the file (a command reads several)."""
        with open(path, "rb") as f:
            data = f.read()
        try:
            return cls(data, path)
        except BadImageError as exc:
            raise BadImageError(f"{path} is not a readable .NET assembly ({exc}); rebuild it") from None

    def data_at(self, rva: int, size: int) -> bytes:
        """`size` bytes of mapped data (a field's initial value) at `rva`."""
        off = self.pe.rva_to_offset(rva)
        return self.pe.data[off:off + size]

    def resources(self) -> dict[str, bytes]:
        """The managed resources embedded in this file, by name (ECMA-335 II.24.2.4: each a u4 length, then its
        bytes, at its ManifestResource row's offset into the CLI header's resources directory)."""
        found: dict[str, bytes] = {}
        for offset, _flags, name, implementation in self.md.rows(T.ManifestResource):
            if implementation != 0 or not self.pe.resources_rva:
                continue  # in another file or assembly: not ours to read
            start = self.pe.rva_to_offset(self.pe.resources_rva + offset)
            size, = struct.unpack_from("<I", self.pe.data, start)
            found[self.md.string(name)] = self.pe.data[start + 4:start + 4 + size]
        return found

    def body_at(self, rva: int) -> bytes:
        """The method body at `rva`; for a header it cannot size, the rest of its section (the parser says why)."""
        off = self.pe.rva_to_offset(rva)
        end = len(self.pe.data)
        for s in self.pe.sections:
            if s.raw_offset <= off < s.raw_offset + s.raw_size:
                end = s.raw_offset + s.raw_size
                break
        size = body_size(self.pe.data, off)
        return self.pe.data[off:min(end, off + size) if size is not None else end]
