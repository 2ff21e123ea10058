"""Which source files the code of a build's entities lies in, and which files a save left as they were.

Read from the builds' portable PDBs: each method's sequence points name one Document row (or several, for
inlined code), and each Document row carries its file's checksum.
"""

from __future__ import annotations

import weakref

from .indexed import Build
from .metadata.schema import T
from .pdb import Pdb


class Sources:
    """Which source files each entity's code lies in, and which files a save left as they were (same checksum in
    both PDBs). Files are Document rows of each side's PDB; what a PDB says of its build's types is memoized on
    the PDB (`type_documents`), so the running build's was mostly found when it was the new one."""

    def __init__(self, old_pdb: Pdb, new_pdb: Pdb) -> None:
        self.pdbs = (old_pdb, new_pdb)
        names = self.names = (self._names(old_pdb), self._names(new_pdb))  # per side: file of each Document row
        old_hashes, new_hashes = self._hashes(old_pdb, names[0]), self._hashes(new_pdb, names[1])
        unchanged = {name for name, digest in new_hashes.items() if digest and old_hashes.get(name) == digest}
        # F#'s "unknown" document holds hidden lines only (generated code), and has no checksum: no source at all
        sourceless = {name for name, digest in {**old_hashes, **new_hashes}.items() if not digest} | {""}
        # per side: Document rows whose file is unchanged; rows of no source (-1: a method without lines)
        self.unchanged = tuple({i for i, name in enumerate(side, 1) if name in unchanged} for side in names)
        self.sourceless = tuple({i for i, name in enumerate(side, 1) if name in sourceless} | {-1} for side in names)

    @staticmethod
    def _names(pdb: Pdb) -> list[str]:
        return [pdb.document_name(rid) for rid in range(1, len(pdb.md.rows(T.Document)) + 1)]

    @staticmethod
    def _hashes(pdb: Pdb, names: list[str]) -> dict[str, bytes]:
        return {name: pdb.md.blob(row[2]) for name, row in zip(names, pdb.md.rows(T.Document), strict=True)}

    def untouched(self, side: int, build: Build, table: T, rid: int) -> bool:
        """Whether the entity's code lies in files the save left as they were (side 0: the running build, 1: the
        new one): a method's lines; for a type, its methods' lines and those of the type it is nested in,
        outermost (a closure's Invoke often has no lines of its own; the module type it is nested in is one
        file's). Code spread over several files (inlined) is not untouched."""
        pdb = self.pdbs[side]
        if table == T.MethodDef:
            methods = pdb.method_documents
            documents: set[int] | frozenset[int] = {methods[rid - 1] if rid <= len(methods) else -1}
        elif table == T.TypeDef:
            root = rid
            while root in build.names.enclosing:
                root = build.names.enclosing[root]
            types = type_documents(pdb, build)
            documents = types[rid] | types[root]
        else:
            return False
        documents -= self.sourceless[side]
        return bool(documents) and 0 not in documents and documents <= self.unchanged[side]


_TYPE_DOCUMENTS: weakref.WeakKeyDictionary[Pdb, list[frozenset[int]]] = weakref.WeakKeyDictionary()


def type_documents(pdb: Pdb, build: Build) -> list[frozenset[int]]:
    """Per TypeDef row: the Document rows of its methods (see Pdb.method_documents), found in one pass over the
    methods and kept for the PDB's lifetime (the build a PDB belongs to has its rows)."""
    found = _TYPE_DOCUMENTS.get(pdb)
    if found is None:
        methods = pdb.method_documents
        sets: list[set[int]] = [set() for _ in range(len(build.asm.md.rows(T.TypeDef)) + 1)]
        for rid, owner in enumerate(build.names.method_owner[1:], 1):
            sets[owner].add(methods[rid - 1] if rid <= len(methods) else -1)
        found = _TYPE_DOCUMENTS[pdb] = [frozenset(s) for s in sets]
    return found
