"""Which entities of a new build are the running build's own, compiled again unchanged, so a save need not compare
them.

F# compiles files in order, each from the files before it and the references only: a file's types, code and
generated names come from its text and what precedes it. When a save keeps the flags and the references and
changes only files later in the compile order, the entities of the files before the first changed one are compiled
as they were; only their rows moved (the compiler writes later files' types first, so an entity added to the last
file renumbers nearly every row). Those entities are paired here by position within their outermost type, and
the comparison passes over them: in a project of many files the comparison then costs what the edited files
weigh, not what the whole assembly does.

An outermost type is carried when the files its code lies in (per its PDB's sequence points, nested types
included) are all in that prefix, in both builds, and its types, methods and fields have the same names in the
same order in both. Anything else (code in several files, a type with no lines, generated types shared by files)
is compared as before.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field

from .indexed import Build
from .metadata.schema import T
from .sources import Sources, type_documents


@dataclass(frozen=True)
class Carried:
    """New build row -> running build row, per table: entities compiled as they were, renumbered."""

    types: dict[int, int] = field(default_factory=dict)
    methods: dict[int, int] = field(default_factory=dict)
    fields: dict[int, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.types)

    def of(self, table: T) -> dict[int, int]:
        return {T.TypeDef: self.types, T.MethodDef: self.methods, T.Field: self.fields}[table]

    def olds(self, table: T) -> frozenset[int]:
        """Rows of the running build some new row continues (memoized: asked once per table by the matcher)."""
        memo = self.__dict__.setdefault("_olds", {})
        found = memo.get(table)
        if found is None:
            found = memo[table] = frozenset(self.of(table).values())
        return found


NOTHING = Carried()


def carried_rows(old: Build, new: Build, sources: Sources, prefix: Collection[str]) -> Carried:
    """The entities of `new` whose code lies only in `prefix` (source paths the caller vouches were compiled as
    for `old`: the files before the first changed one, same flags and references), paired with `old`'s."""
    if not prefix:
        return NOTHING
    wanted = {os.path.normcase(os.path.normpath(p)) for p in prefix}
    sides = []
    for side, build in enumerate((old, new)):
        # a file is vouched for by the caller and by both PDBs (the same checksum: what each compile read)
        documents = {i for i in sources.unchanged[side]
                     if os.path.normcase(os.path.normpath(sources.names[side][i - 1])) in wanted}
        sides.append(_Side(build, type_documents(sources.pdbs[side], build), documents, sources.sourceless[side]))
    old_side, new_side = sides
    old_roots = old_side.carriable()
    out = Carried()
    if not old_roots:
        return out
    old_names = (old.names.raw_names(T.TypeDef), old.names.raw_names(T.MethodDef), old.names.raw_names(T.Field))
    new_names = (new.names.raw_names(T.TypeDef), new.names.raw_names(T.MethodDef), new.names.raw_names(T.Field))
    for name, (nstart, nend) in new_side.carriable().items():
        found = old_roots.get(name)
        if found is None or found[1] - found[0] != nend - nstart:
            continue
        ostart, oend = found
        if old_names[0][ostart - 1:oend - 1] != new_names[0][nstart - 1:nend - 1]:
            continue
        if old_side.nesting(ostart, oend) != new_side.nesting(nstart, nend):
            continue
        spans = []
        for table, column, index in ((T.MethodDef, 5, 1), (T.Field, 4, 2)):
            (ofirst, olists, osize), (nfirst, nlists, nsize) = (old_side.members(column, ostart, oend),
                                                                new_side.members(column, nstart, nend))
            if olists != nlists or osize != nsize \
                    or old_names[index][ofirst - 1:ofirst - 1 + osize] != new_names[index][nfirst - 1:nfirst - 1 + nsize]:
                break
            spans.append((table, ofirst, nfirst, nsize))
        else:
            out.types.update(zip(range(nstart, nend), range(ostart, oend)))
            for table, ofirst, nfirst, size in spans:
                out.of(table).update(zip(range(nfirst, nfirst + size), range(ofirst, ofirst + size)))
    return out


class _Side:
    """One build's outermost types whose code lies in the prefix, each with the rows it and its nested types span."""

    def __init__(self, build: Build, documents: list[frozenset[int]], prefix: set[int], sourceless: set[int]) -> None:
        self.build, self.documents, self.prefix, self.sourceless = build, documents, prefix, sourceless

    def carriable(self) -> dict[str, tuple[int, int]]:
        """Full name of an outermost type -> [first row, end row) of it and its nested types, for those whose rows
        are contiguous (as F# writes them) and whose code lies in prefix files only (at least one line there)."""
        names = self.build.names
        enclosing = names.enclosing
        count = len(self.build.asm.md.rows(T.TypeDef))
        outermost = [rid for rid in range(1, count + 1) if rid not in enclosing]
        documents, sourceless, prefix = self.documents, self.sourceless, self.prefix
        out: dict[str, tuple[int, int]] = {}
        for start, end in zip(outermost, [*outermost[1:], count + 1], strict=True):
            code = frozenset().union(*documents[start:end]) - sourceless
            if code and code <= prefix and all(_outermost(enclosing, r) == start for r in range(start + 1, end)):
                out[names.typedef_name(start)] = (start, end)
        return out

    def members(self, column: int, start: int, end: int) -> tuple[int, list[int], int]:
        """The methods (column 5) or fields (column 4) of TypeDef rows [start, end): (first row, where each type's
        list starts relative to the first, how many in all)."""
        rows = self.build.asm.md.rows(T.TypeDef)
        firsts = [row[column] for row in rows[start - 1:end - 1]]
        table = T.MethodDef if column == 5 else T.Field
        stop = rows[end - 1][column] if end - 1 < len(rows) else len(self.build.asm.md.rows(table)) + 1
        return firsts[0], [f - firsts[0] for f in firsts], stop - firsts[0]

    def nesting(self, start: int, end: int) -> list[int]:
        """Each row's enclosing row, relative to `start` (-1 for the outermost)."""
        enclosing = self.build.names.enclosing
        return [enclosing[r] - start if r in enclosing else -1 for r in range(start, end)]


def _outermost(enclosing: dict[int, int], rid: int) -> int:
    while rid in enclosing:
        rid = enclosing[rid]
    return rid
