"""What one running assembly looks like to the next delta: a value that each applied delta advances.

Generation 0 is the assembly as it was loaded; each delta the runtime accepted adds reference rows, definitions,
heap bytes and table rows. As Roslyn's EmitBaseline, a baseline is never changed in place: `advanced(delta)` is a
new value, taken only after ApplyUpdate succeeded, so a delta that was refused, failed or was never sent leaves
the running assembly's record exactly as it was. Each hot-reloaded assembly (an app and each F# library it
references) has its own.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from .indexed import Build
from .metadata.schema import TABLE_COUNT, T, token
from .pdb import Pdb

if TYPE_CHECKING:
    from .delta import Delta

DEF_TABLES = (T.TypeDef, T.MethodDef, T.Field)
REF_TABLES = (T.AssemblyRef, T.ModuleRef, T.TypeRef, T.TypeSpec, T.MemberRef, T.MethodSpec, T.StandAloneSig)


class Baseline:
    """The running module's metadata as deltas extend it (gen 0 = the assembly that was loaded).

    Read it, never assign to it: `advanced` gives the next generation's baseline."""

    def __init__(self, build: Build, pdb: Pdb | None) -> None:
        md = build.asm.md
        self.build0 = build
        self.generation = 0
        self.enc_id = b"\0" * 16
        self.strings_size = md.heap_size("#Strings")
        self.blob_size = md.heap_size("#Blob")
        self.us_size = md.heap_size("#US")
        self.guid_size = md.heap_size("#GUID")
        self.row_counts = tuple(md.row_counts)
        self.pdb_row_counts = tuple(pdb.md.row_counts) if pdb else (0,) * TABLE_COUNT
        names = build.names
        self.defs: dict[str, int] = {}
        for t in DEF_TABLES:
            for rid in range(1, len(md.rows(t)) + 1):
                self.defs.setdefault(names.key(t, rid), token(t, rid))
        self.refs: dict[str, int] = {}
        for t in REF_TABLES:
            for rid in range(1, len(md.rows(t)) + 1):
                self.refs.setdefault(names.key(t, rid), token(t, rid))
        self.user_strings = md.user_strings()
        self.documents = pdb.documents() if pdb else {}
        self.module_row = md.row(T.Module, 1)
        self.method_rows: dict[int, tuple[int, ...]] = {}  # rows of methods added by deltas
        self.local_signatures: dict[int, int] = {}  # method row -> StandAloneSig row of the body a delta sent
        self.attribute_changes: dict[int, list[int]] = {}  # parent -> its CA rows, where deltas changed them
        self.property_maps = {parent: i for i, (parent, _first) in enumerate(md.rows(T.PropertyMap), 1)}
        self.properties: dict[str, int] = dict(build.properties)  # 'Type::Name|sig' -> running Property row

    def attribute_rows(self, parent: int) -> list[int]:
        """CustomAttribute rows the running module has for `parent` (a HasCustomAttribute coded index)."""
        if parent in self.attribute_changes:
            return list(self.attribute_changes[parent])
        return [i for i, _row in self.build0.rows_of(T.CustomAttribute, 0, parent)]

    def advanced(self, delta: Delta) -> Baseline:
        """The baseline of the generation `delta` produced; take it only after the runtime accepted the delta.
        This one is left as it was (the maps are copied, the build of generation 0 is shared)."""
        assert delta.generation == self.generation + 1, f"delta {delta.generation} after {self.generation}"
        new = copy.copy(self)
        new.generation = delta.generation
        new.refs = {**self.refs, **delta.new_refs}
        new.defs = {**self.defs, **delta.new_defs}
        new.method_rows = {**self.method_rows, **delta.new_method_rows}
        new.property_maps = {**self.property_maps, **delta.new_property_maps}
        new.properties = {**self.properties, **delta.new_properties}
        new.attribute_changes = {**self.attribute_changes, **delta.attribute_rows}
        new.local_signatures = {**self.local_signatures, **delta.local_signatures}
        new.user_strings = {**self.user_strings, **delta.new_user_strings}
        new.documents = {**self.documents, **delta.new_documents}
        new.row_counts = tuple(a + b for a, b in zip(self.row_counts, delta.added_rows, strict=True))
        new.pdb_row_counts = tuple(a + b for a, b in zip(self.pdb_row_counts, delta.added_pdb_rows, strict=True))
        new.strings_size = self.strings_size + delta.strings_added
        new.blob_size = self.blob_size + delta.blobs_added
        new.us_size = self.us_size + delta.user_strings_added
        new.guid_size = delta.guid_size
        new.enc_id = delta.enc_id
        return new
