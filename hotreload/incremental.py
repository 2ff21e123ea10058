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
    """True when every metadata row, name and signature is as in `old` (method RVAs and user strings aside)."""
    a, b = old.asm.md, new.asm.md
    if a.strings_heap != b.strings_heap or a.blob_heap != b.blob_heap or a.row_counts != b.row_counts:
        return False
    for table in T:
        rows_a, rows_b = a.rows(table), b.rows(table)
        if table == T.MethodDef:
            if _methods_but_rvas(old) != _methods_but_rvas(new):
                return False
        elif table == T.Module:
            if [r[:2] + r[5:] for r in rows_a] != [r[:2] + r[5:] for r in rows_b]:  # the MVID is new each build
                return False
        elif rows_a != rows_b:
            return False
    return all(old.field_data(rid) == new.field_data(rid) for rid in old.field_rvas)


def _methods_but_rvas(build: Build) -> list[tuple[int, ...]]:
    """MethodDef rows without their RVA (memoized on the build: the running build's were made when it was new)."""
    cached = build.__dict__.get("_methods_but_rvas")
    if cached is None:
        cached = build.__dict__["_methods_but_rvas"] = [r[1:] for r in build.asm.md.rows(T.MethodDef)]
    return cached


def _us(build: Build, offset: int) -> str | None:
    try:
        return build.asm.md.user_string(offset)
    except BadImageError:
        return None


def _same_code(old: Build, new: Build, rid: int) -> bool:
    """Bodies whose bytes differ may still be the same code: a string they load moved in #US (its token
    changed). Same bytes outside ldstr operands, and the same strings in them, is the same code."""
    a = parse_body(old.asm.body_at(old.asm.md.row(T.MethodDef, rid)[0]))
    b = parse_body(new.asm.body_at(new.asm.md.row(T.MethodDef, rid)[0]))
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
    halves only when it differs. Cost: one pass over the bytes in C, plus a few comparisons per changed item."""
    order = sorted(old.starts, key=old.starts.__getitem__)
    out: list[int] = []
    run: list[int] = []
    shift = 0
    for item in order:
        item_shift = new.starts[item] - old.starts[item]
        if run and item_shift != shift:
            _bisect_runs(old, new, run, out)
            run = []
        if not run:
            shift = item_shift
        run.append(item)
    if run:
        _bisect_runs(old, new, run, out)
    return sorted(out)


def body_spans(build: Build, rids: list[int]) -> Spans:
    """Method bodies of `build` by MethodDef row (memoized on the build for the usual `rids`, every method with a
    body: the running build's were found when it was the new one)."""
    return _memo(build, "_body_spans", rids, lambda: _body_spans(build, rids))


def _body_spans(build: Build, rids: list[int]) -> Spans:
    rows = build.asm.md.rows(T.MethodDef)
    pe = build.asm.pe
    rvas = [rows[rid - 1][0] for rid in rids]
    section = next((sec for sec in pe.sections if rvas and sec.virtual_address <= min(rvas)
                    and max(rvas) < sec.virtual_address + sec.raw_size), None)
    if section is not None:  # the usual case: every body in one section (.text)
        shift = section.raw_offset - section.virtual_address
        starts = {rid: rva + shift for rid, rva in zip(rids, rvas)}
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
    rows = pdb.md.rows(T.MethodDebugInformation)
    heap = pdb.md.blob_heap

    def length(start: int) -> int:
        size, pos = read_compressed(heap, start)
        return pos - start + size

    return Spans(heap, {rid: rows[rid - 1][1] for rid in rids if rid <= len(rows) and rows[rid - 1][1]}, length)


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
        cached = build.__dict__["_with_body"] = [rid for rid, row in enumerate(build.asm.md.rows(T.MethodDef), 1)
                                                 if row[0]]
    return cached


def changed_bodies(old: Build, new: Build) -> list[int]:
    """Changed methods of two builds of the same structure (see same_structure)."""
    rids = with_body(old)
    if with_body(new) != rids:  # a body appeared or vanished (abstract/extern rows): the rows with both
        rids = sorted(set(rids) & set(with_body(new)))
    old_bodies, new_bodies = body_spans(old, rids), body_spans(new, rids)
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
