"""Serializes EnC delta metadata: `#-` tables with 4-byte indexes, `#JTD` marker, heaps that continue the baseline.

Layout as the runtime and System.Reflection.Metadata read it: metadata root, stream headers
(#-, #Strings, #US, #GUID, #Blob, #JTD, and #Pdb for a PDB delta), then the streams.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from itertools import pairwise

from .schema import SCHEMA, TABLE_COUNT, T, split_token
from .sigs import compressed

# The tables ECMA-335 II.22 requires sorted, and the columns they are sorted by. A delta's rows are in row-id order
# (its EncMap order), which is not always key order: the header marks a table sorted only when it is.
_SORT_KEYS: dict[T, tuple[int, ...]] = {
    T.InterfaceImpl: (0, 1), T.Constant: (1,), T.CustomAttribute: (0,), T.FieldMarshal: (0,), T.DeclSecurity: (1,),
    T.ClassLayout: (2,), T.FieldLayout: (1,), T.MethodSemantics: (2,), T.MethodImpl: (0,), T.ImplMap: (1,),
    T.FieldRva: (1,), T.NestedClass: (0,), T.GenericParam: (2, 0), T.GenericParamConstraint: (0,),
}
_SORTED_DEBUG_TABLES = (1 << T.LocalScope) | (1 << T.StateMachineMethod) | (1 << T.CustomDebugInformation)
# EncLog operations that add a member: (the table of the parent the entry names, the table of the added row)
ENC_ADDS: dict[int, tuple[T, T]] = {1: (T.TypeDef, T.MethodDef), 2: (T.TypeDef, T.Field), 3: (T.MethodDef, T.Param),
                                    4: (T.PropertyMap, T.Property), 5: (T.EventMap, T.Event)}
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


class DeltaInvariantError(AssertionError):
    """A delta that breaks the EnC format's rules (EncMap order, EncLog pairing): a bug in the writer, never in
    the user's edit. Raised before the delta can reach the runtime."""


def check_enc_tables(tables: dict[T, list[tuple[int, ...]]]) -> None:
    """The invariants the runtime and System.Reflection.Metadata rely on (Roslyn asserts the same ones):

    * EncMap: one token per row of every table in the delta (never the Module row), distinct and strictly
      increasing (table, then row): a reader maps the delta's n-th row of a table to that table's n-th token.
    * EncLog: every row of the delta exactly once as a Default (0) entry; each Add* entry names a parent of the
      right table and is followed at once by the Default entry of the row it adds.
    """
    enc_map = [row[0] for row in tables.get(T.EncMap, [])]
    for a, b in pairwise(enc_map):
        if a >= b:
            raise DeltaInvariantError(f"EncMap not strictly increasing: {a:#010x} then {b:#010x}")
    mapped: dict[int, int] = {}
    for tok in enc_map:
        mapped[tok >> 24] = mapped.get(tok >> 24, 0) + 1
    for t, rows in tables.items():
        if t in (T.EncLog, T.EncMap):
            continue
        expected, found = (0 if t == T.Module else len(rows)), mapped.pop(int(t), 0)
        if found != expected:
            raise DeltaInvariantError(f"EncMap lists {found} {t.name} token(s) for {expected} row(s)")
    if mapped:
        raise DeltaInvariantError(f"EncMap names rows of tables the delta does not have: {sorted(mapped)}")
    if T.EncLog not in tables:
        return  # a PDB delta has no EncLog
    log = tables[T.EncLog]
    logged = sorted(tok for tok, op in log if op == 0)
    if logged != enc_map:
        raise DeltaInvariantError("EncLog's Default entries are not the delta's rows, each once: "
                                  f"{sorted(set(logged) ^ set(enc_map)) or 'duplicates'}")
    for i, (tok, op) in enumerate(log):
        if op == 0:
            continue
        if op not in ENC_ADDS:
            raise DeltaInvariantError(f"EncLog entry {i} has unknown operation {op}")
        parent, child = ENC_ADDS[op]
        table, _row = split_token(tok)
        nxt = log[i + 1] if i + 1 < len(log) else None
        if table != parent or nxt is None or nxt[1] != 0 or split_token(nxt[0])[0] != child:
            raise DeltaInvariantError(f"EncLog entry {i} ({tok:#010x}, op {op}) must name a {parent.name} and be "
                                      f"followed by the {child.name} it adds")


def check_added_rows(rids: dict[T, list[int]], row_counts: Sequence[int]) -> None:
    """Rows a delta adds to a table get exactly the next ids (rows so far, all generations, + 1, + 2, ...): the
    runtime appends rows up to the id it is given, so a gap leaves an empty row behind and the next generation
    would write over a row the runtime already has."""
    for t, ids in rids.items():
        added = sorted(r for r in ids if r > row_counts[t])
        if added != list(range(row_counts[t] + 1, row_counts[t] + 1 + len(added))):
            raise DeltaInvariantError(f"{t.name} rows added as {added} after {row_counts[t]} rows")


def _sorted_mask(tables: Mapping[T, Sequence[tuple[int, ...]]]) -> int:
    """Sorted-table bits: a delta's CustomAttribute rows are in row-id order (as Roslyn and SRM write them, the
    bit always clear); any other table's bit is set unless its rows are out of key order."""
    mask = 0
    for t, key in _SORT_KEYS.items():
        rows = tables.get(t, [])
        if t != T.CustomAttribute and all([a[c] for c in key] <= [b[c] for c in key] for a, b in pairwise(rows)):
            mask |= 1 << int(t)
    return mask


def write_tables(tables: Mapping[T, Sequence[tuple[int, ...]]]) -> bytes:
    """The `#-` stream of a minimal delta: every heap/row/coded index is 4 bytes wide."""
    present = [t for t in sorted(tables) if tables[t]]
    valid = 0
    for t in present:
        valid |= 1 << int(t)
    sorted_mask = _sorted_mask(tables) | (valid & _SORTED_DEBUG_TABLES)
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
    """A complete delta metadata blob (what ApplyUpdate takes as its metadata argument, or a PDB delta).

    With EncLog/EncMap tables (a delta) it raises DeltaInvariantError when they break the format's rules (see
    check_enc_tables)."""
    if T.EncMap in tables or T.EncLog in tables:
        check_enc_tables(tables)
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
