"""Serializes EnC delta metadata: `#-` tables with 4-byte indexes, `#JTD` marker, heaps that continue the baseline.

Layout as the runtime and System.Reflection.Metadata read it: metadata root, stream headers
(#-, #Strings, #US, #GUID, #Blob, #JTD, and #Pdb for a PDB delta), then the streams.
"""

from __future__ import annotations

import struct

from .schema import SCHEMA, TABLE_COUNT, T
from .sigs import compressed

_SORTED_TYPE_SYSTEM_TABLES = 0x16003301FA00
_SORTED_DEBUG_TABLES = (1 << T.LocalScope) | (1 << T.StateMachineMethod) | (1 << T.CustomDebugInformation)
_VERSION = b"v4.0.30319"


def _align4(data: bytes | bytearray) -> bytes:
    return bytes(data) + b"\0" * (-len(data) % 4)


class StringHeap:
    """Delta #Strings: starts with the empty string; offsets continue from `start`."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {}

    def add(self, value: str) -> int:
        if not value:
            return 0
        if value not in self.index:
            self.index[value] = self.start + len(self.data)
            self.data += value.encode("utf-8", "surrogateescape") + b"\0"
        return self.index[value]


class BlobHeap:
    """Delta #Blob: starts with the empty blob; offsets continue from `start`."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.data = bytearray(b"\0")
        self.index: dict[bytes, int] = {}

    def add(self, value: bytes) -> int:
        if not value:
            return 0
        if value not in self.index:
            self.index[value] = self.start + len(self.data)
            self.data += compressed(len(value)) + value
        return self.index[value]


class UserStringHeap:
    """Delta #US: starts with an empty entry; offsets (the ldstr token rows) continue from `start`."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {}

    def add(self, value: str) -> int:
        if value not in self.index:
            offset = self.start + len(self.data)
            if offset >= 0x1000000:
                raise ValueError("#US heap is full (16 MB): restart the app to continue")
            self.index[value] = offset
            encoded = value.encode("utf-16-le", "surrogatepass")
            special = any(ord(c) >= 0x7F or 0x01 <= ord(c) <= 0x08 or 0x0E <= ord(c) <= 0x1F
                          or c in "'-" for c in value)
            self.data += compressed(len(encoded) + 1) + encoded + (b"\1" if special else b"\0")
        return self.index[value]


def write_tables(tables: dict[T, list[tuple[int, ...]]]) -> bytes:
    """The `#-` stream of a minimal delta: every heap/row/coded index is 4 bytes wide."""
    present = [t for t in sorted(tables) if tables[t]]
    valid = 0
    for t in present:
        valid |= 1 << int(t)
    sorted_mask = _SORTED_TYPE_SYSTEM_TABLES | (valid & _SORTED_DEBUG_TABLES)
    out = bytearray(struct.pack("<IBBBBQQ", 0, 2, 0, 0x01 | 0x02 | 0x04 | 0x20 | 0x80, 1, valid, sorted_mask))
    for t in present:
        out += struct.pack("<I", len(tables[t]))
    for t in present:
        fmt = "<" + "".join("H" if kind == "u2" else "I" for _, kind in SCHEMA[t])
        for row in tables[t]:
            out += struct.pack(fmt, *row)
    out.append(0)
    return _align4(out)


def pdb_stream(pdb_id: bytes, entry_point: int, type_system_row_counts: list[int]) -> bytes:
    mask = 0
    counts = b""
    for i in range(TABLE_COUNT):
        if i < 0x30 and type_system_row_counts[i]:
            mask |= 1 << i
            counts += struct.pack("<I", type_system_row_counts[i])
    return pdb_id[:20].ljust(20, b"\0") + struct.pack("<IQ", entry_point, mask) + counts


def write_metadata(tables: dict[T, list[tuple[int, ...]]], strings: bytes, user_strings: bytes, guids: bytes,
                   blobs: bytes, pdb: bytes | None = None) -> bytes:
    """A complete delta metadata blob (what ApplyUpdate takes as its metadata argument, or a PDB delta)."""
    streams: list[tuple[bytes, bytes]] = []
    if pdb is not None:
        streams.append((b"#Pdb", _align4(pdb)))
    streams += [
        (b"#-", write_tables(tables)),
        (b"#Strings", _align4(strings)),
        (b"#US", _align4(user_strings)),
        (b"#GUID", _align4(guids)),
        (b"#Blob", _align4(blobs)),
        (b"#JTD", b""),
    ]
    version = _align4(_VERSION + b"\0")
    header = struct.pack("<IHHII", 0x424A5342, 1, 1, 0, len(version)) + version + struct.pack("<HH", 0, len(streams))
    header_len = len(header) + sum(8 + len(_align4(name + b"\0")) for name, _ in streams)
    offset = header_len
    out = bytearray(header)
    for name, data in streams:
        out += struct.pack("<II", offset, len(data)) + _align4(name + b"\0")
        offset += len(data)
    for _, data in streams:
        out += data
    return bytes(out)
