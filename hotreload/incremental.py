"""Saves that change only method bodies, recognised from the metadata tables instead of entity by entity.

Most saves edit code inside existing functions. The compiler then emits the same metadata rows, strings and
signatures as before; only method bodies (and their RVAs), user strings and sequence points differ. Then every row
keeps its identity, so the running build's index (names, keys, attributes, ...) carries over to the new build
unchanged, and a method changed exactly when its body bytes changed (or a string it loads did). The cost grows
with the number of changed methods, not with the size of the assembly. Anything else (a row added, renamed or
retyped, a string or signature added, array-literal data changed) goes through the full comparison in diff.py.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import re
import struct
from collections.abc import Callable

from .indexed import Build
from .metadata.errors import BadImageError
from .metadata.il import body_size, instructions, parse_body
from .metadata.schema import T
from .metadata.sigs import read_compressed
from .pdb import Pdb

_LDSTR = 0x72


def same_structure(old: Build, new: Build) -> bool:
    """True when every metadata row, name and signature is as in `old` (method RVAs and user strings aside).

    Compared as stored bytes, table by table, without decoding rows: equal row counts and heap sizes give equal
    column widths, so equal bytes are equal rows."""
    a, b = old.asm.md, new.asm.md
    if a.strings_heap != b.strings_heap or a.blob_heap != b.blob_heap or a.row_counts != b.row_counts:
        return False
    for table in T:
        if table == T.MethodDef:
            if _methods_but_rvas(old) != _methods_but_rvas(new):
                return False
        elif table == T.Module:
            if [r[:2] + r[5:] for r in a.rows(table)] != [r[:2] + r[5:] for r in b.rows(table)]:  # a new MVID
                return False
        elif a.table_bytes(table) != b.table_bytes(table):
            return False
    return all(old.field_data(rid) == new.field_data(rid) for rid in old.field_rvas)


def _methods_but_rvas(build: Build) -> bytes:
    """The MethodDef table's bytes with every row's RVA (its first 4 bytes) zeroed (memoized on the build: the
    running build's were made when it was new)."""
    cached = build.__dict__.get("_methods_but_rvas")
    if cached is None:
        md = build.asm.md
        table = bytearray(md.table_bytes(T.MethodDef))
        rows = md.row_counts[T.MethodDef]
        width = len(table) // rows if rows else 0
        for k in range(4 if width else 0):
            table[k::width] = bytes(rows)
        cached = build.__dict__["_methods_but_rvas"] = bytes(table)
    return cached


def _us(build: Build, offset: int) -> str | None:
    try:
        return build.asm.md.user_string(offset)
    except BadImageError:
        return None


def _same_code(old: Build, new: Build, rid: int) -> bool:
    """Bodies whose bytes differ may still be the same code: a string they load moved in #US (its token
    changed). Same bytes outside ldstr operands, and the same strings in them, is the same code."""
    a = parse_body(old.asm.body_at(old.asm.md.column(T.MethodDef, 0)[rid - 1]))
    b = parse_body(new.asm.body_at(new.asm.md.column(T.MethodDef, 0)[rid - 1]))
    if (a.max_stack, a.init_locals, a.local_sig, a.clauses, len(a.code)) != \
            (b.max_stack, b.init_locals, b.local_sig, b.clauses, len(b.code)):
        return False
    code_a, code_b = bytearray(a.code), bytearray(b.code)
    for ins in instructions(b.code):
        if ins.opcode == _LDSTR:
            at = ins.operand_offset
            if code_a[at - 1] != _LDSTR:
                return False
            ta, = struct.unpack_from("<I", code_a, at)
            tb, = struct.unpack_from("<I", code_b, at)
            if ta >> 24 != 0x70 or _us(old, ta & 0xFFFFFF) != _us(new, tb & 0xFFFFFF):
                return False
            code_a[at:at + 4] = code_b[at:at + 4] = b"\0\0\0\0"
    return code_a == code_b


class Spans:
    """Items (method bodies, PDB blobs) laid out in one buffer: where each starts and how long it is."""

    def __init__(self, data: bytes, starts: dict[int, int], length: Callable[[int], int]) -> None:
        self.data = data
        self.starts = starts
        self.length = length

    @functools.cached_property
    def order(self) -> list[int]:
        """The items by where they start (kept: the running build's spans are compared again at the next save)."""
        return sorted(self.starts, key=self.starts.__getitem__)

    @functools.cached_property
    def ordered_starts(self) -> list[int]:
        return list(map(self.starts.__getitem__, self.order))

    def span(self, first: int, last: int) -> bytes:
        """The bytes from the start of item `first` to the end of item `last`."""
        return self.data[self.starts[first]:self.starts[last] + self.length(self.starts[last])]


def _bisect_runs(old: Spans, new: Spans, run: list[int], out: list[int]) -> None:
    if old.span(run[0], run[-1]) == new.span(run[0], run[-1]):
        return
    if len(run) == 1:
        out.append(run[0])
        return
    half = len(run) // 2
    _bisect_runs(old, new, run[:half], out)
    _bisect_runs(old, new, run[half:], out)


def differing(old: Spans, new: Spans) -> list[int]:
    """Items whose bytes differ, found with few slice comparisons: items are taken in runs that lie the same
    distance apart in both buffers (one item that grew moves the rest), a run is compared whole and split in
    halves only when it differs. Cost: one pass over the bytes in C, plus a few comparisons per changed item;
    the per-item work (shifts, runs) is done by C iterators, which a large assembly's ~20,000 methods need."""
    order = old.order
    shifts = list(map(operator.sub, map(new.starts.__getitem__, order), old.ordered_starts))
    out: list[int] = []
    at = 0
    for _shift, run in itertools.groupby(shifts):
        size = len(list(run))
        _bisect_runs(old, new, order[at:at + size], out)
        at += size
    return sorted(out)


def body_spans(build: Build, rids: list[int]) -> Spans:
    """Method bodies of `build` by MethodDef row (memoized on the build for the usual `rids`, every method with a
    body: the running build's were found when it was the new one)."""
    return _memo(build, "_body_spans", rids, lambda: _body_spans(build, rids))


def _body_spans(build: Build, rids: list[int]) -> Spans:
    all_rvas = build.asm.md.column(T.MethodDef, 0)
    pe = build.asm.pe
    if rids is with_body(build):  # the usual case: the rows with a body are those with an RVA
        rvas = list(filter(None, all_rvas))
    else:
        rvas = [all_rvas[rid - 1] for rid in rids]
    section = next((sec for sec in pe.sections if rvas and sec.virtual_address <= min(rvas)
                    and max(rvas) < sec.virtual_address + sec.raw_size), None)
    if section is not None:  # the usual case: every body in one section (.text)
        shift = section.raw_offset - section.virtual_address
        starts = dict(zip(rids, map(shift.__add__, rvas)))
    else:
        starts = {rid: pe.rva_to_offset(rva) for rid, rva in zip(rids, rvas)}
    return Spans(pe.data, starts, lambda start: body_size(pe.data, start) or 1)


def sequence_point_spans(pdb: Pdb, rids: range) -> Spans:
    """Sequence-point blobs of a PDB by MethodDef row (memoized on the PDB, which the next save compares again)."""
    return _memo(pdb, "_point_spans", rids, lambda: _sequence_point_spans(pdb, rids))


def _memo(owner: object, name: str, key: object, compute: Callable[[], Spans]) -> Spans:
    """`compute()`, kept on `owner` for the same `key` (the next save compares the same build again)."""
    cached = owner.__dict__.get(name)
    if cached is None or cached[0] != key:
        cached = owner.__dict__[name] = (key, compute())
    return cached[1]


def _sequence_point_spans(pdb: Pdb, rids: range) -> Spans:
    heap = pdb.md.blob_heap

    def length(start: int) -> int:
        size, pos = read_compressed(heap, start)
        return pos - start + size

    points = pdb.md.column(T.MethodDebugInformation, 1)[rids.start - 1:rids.stop - 1]  # 0: no sequence points
    return Spans(heap, dict(itertools.compress(zip(itertools.count(rids.start), points), points)), length)


_LDSTR_PATTERN = re.compile(rb"\x72(...)\x70", re.DOTALL)


def _loaded_strings_moved(old: Build, new: Build, bodies: Spans) -> set[int]:
    """Methods whose bytes are unchanged but may load a different string: an ldstr token whose #US entry differs.

    Found by scanning the bodies for the ldstr pattern in one pass; a match that is not really an ldstr only makes
    its method a candidate, which the exact comparison then settles."""
    if old.asm.md.us_heap == new.asm.md.us_heap or not bodies.starts:
        return set()
    order = sorted(bodies.starts, key=bodies.starts.__getitem__)
    starts = [bodies.starts[rid] for rid in order]
    region_start = starts[0]
    region = bodies.span(order[0], order[-1])
    out: set[int] = set()
    for match in _LDSTR_PATTERN.finditer(region):
        offset = int.from_bytes(match.group(1), "little")
        if _us(old, offset) != _us(new, offset):
            out.add(order[bisect.bisect_right(starts, region_start + match.start()) - 1])
    return out


def with_body(build: Build) -> list[int]:
    """MethodDef rows that have a body (memoized on the build)."""
    cached = build.__dict__.get("_with_body")
    if cached is None:
        rvas = build.asm.md.column(T.MethodDef, 0)
        cached = build.__dict__["_with_body"] = list(itertools.compress(itertools.count(1), rvas))
    return cached


def changed_bodies(old: Build, new: Build) -> list[int]:
    """Changed methods of two builds of the same structure (see same_structure)."""
    rids, new_rids = with_body(old), with_body(new)
    if new_rids != rids:  # a body appeared or vanished (abstract/extern rows): the rows with both
        rids = new_rids = sorted(set(rids) & set(new_rids))
    old_bodies, new_bodies = body_spans(old, rids), body_spans(new, new_rids)
    suspects = set(differing(old_bodies, new_bodies)) | _loaded_strings_moved(old, new, old_bodies)
    return [rid for rid in sorted(suspects) if not _same_code(old, new, rid)]


def moved_candidates(old_pdb: Pdb, new_pdb: Pdb, methods: int) -> list[int]:
    """Methods (same rows in both builds) whose sequence-point blobs differ."""
    rids = range(1, methods + 1)
    old, new = sequence_point_spans(old_pdb, rids), sequence_point_spans(new_pdb, rids)
    if old.starts.keys() != new.starts.keys():
        return sorted(old.starts.keys() ^ new.starts.keys() | set(differing(
            Spans(old.data, {r: old.starts[r] for r in old.starts.keys() & new.starts.keys()}, old.length),
            Spans(new.data, {r: new.starts[r] for r in old.starts.keys() & new.starts.keys()}, new.length))))
    return differing(old, new)
