"""Builds EnC deltas (metadata, IL, PDB) for changed method bodies, generation after generation.

`DeltaBuilder` maps each token of the new build's IL to a row of the running module (its `Baseline`, see
hotreload.baseline), emitting new reference rows (TypeRef, MemberRef, ...) and heap entries as needed. The
baseline is a value: the one a delta was written against is advanced (`Baseline.advanced`) only after the
runtime accepted that delta.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass, field

from .baseline import DEF_TABLES as _DEF_TABLES
from .baseline import REF_TABLES as _REF_TABLES
from .baseline import Baseline
from .diff import Build, ChangedMethod, Diff
from .errors import HotReloadError
from .metadata.il import MethodBody, encode_body, map_tokens
from .metadata.schema import (
    TABLE_COUNT,
    Coded,
    CustomAttributeType,
    HasConstant,
    HasCustomAttribute,
    HasSemantics,
    MemberRefParent,
    MethodDefOrRef,
    ResolutionScope,
    T,
    TypeDefOrRef,
    TypeOrMethodDef,
    split_token,
    token,
)
from .metadata.sigs import compressed, encode_type_token, map_signature, map_type_signature
from .metadata.writer import BlobHeap, StringHeap, UserStringHeap, check_added_rows, pdb_stream, write_metadata
from .names import display_name
from .pdb import MethodDebugInfo, Pdb, SequencePoint, encode_sequence_points
from .refusal import Refusal, RefusalKind

_ADD_METHOD, _ADD_FIELD, _ADD_PARAMETER, _ADD_PROPERTY = 1, 2, 3, 4
MAX_DATA_FIELDS = 25
"""FieldRVA rows the running module may have. Past 25 rows CoreCLR looks the table up through a hash that applying
an update does not maintain (INDEX_ROW_COUNT_THRESHOLD in metamodelrw.cpp), so it rejects a delta that adds a data
field beyond it: such an edit is refused instead."""
MAX_CONSTANTS = 25
"""Constant rows (union case tags, `[<Literal>]` values) the running module may have, for the same reason: a constant
added past them is applied, but reflection cannot find its value (`%A` and `ToString` of an added union throw)."""


class UnsupportedEdit(HotReloadError):
    """The new IL needs something a body-only delta cannot express (e.g. a member that does not exist yet)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


@dataclass
class Delta:
    generation: int
    metadata: bytes
    il: bytes
    pdb: bytes
    methods: list[ChangedMethod]
    method_tokens: dict[str, int]  # method key -> MethodDef token in the running module
    method_il: dict[str, bytes]  # method key -> IL code bytes we sent (to verify through reflection)
    summary: list[str] = field(default_factory=list)  # what it carries, for status lines
    new_rids: dict[str, int] = field(default_factory=dict)  # method key -> its row in the new build (not deleted)
    # what the baseline gains once the runtime accepts this delta
    new_refs: dict[str, int] = field(default_factory=dict)
    new_defs: dict[str, int] = field(default_factory=dict)
    new_method_rows: dict[int, tuple[int, ...]] = field(default_factory=dict)
    new_property_maps: dict[int, int] = field(default_factory=dict)
    new_properties: dict[str, int] = field(default_factory=dict)  # property key -> its running row
    attribute_rows: dict[int, list[int]] = field(default_factory=dict)  # parent -> its CA rows from now on
    local_signatures: dict[int, int] = field(default_factory=dict)  # method row -> its body's StandAloneSig row
    new_user_strings: dict[str, int] = field(default_factory=dict)
    new_documents: dict[str, int] = field(default_factory=dict)
    added_rows: list[int] = field(default_factory=lambda: [0] * TABLE_COUNT)
    added_pdb_rows: list[int] = field(default_factory=lambda: [0] * TABLE_COUNT)
    strings_added: int = 0
    blobs_added: int = 0
    user_strings_added: int = 0
    guid_size: int = 0
    enc_id: bytes = b""


class DeltaBuilder:
    """Emits one generation's delta for a set of changed methods of `new` (a newer build)."""

    def __init__(self, base: Baseline, new: Build, new_pdb: Pdb | None) -> None:
        self.base = base
        self.new = new
        self.new_pdb = new_pdb
        self.md = new.asm.md
        self.strings = StringHeap(base.strings_size)
        self.blobs = BlobHeap(base.blob_size)
        self.user_strings = UserStringHeap(base.us_size)
        self.rows: dict[T, list[tuple[int, ...]]] = {}
        self.rids: dict[T, list[int]] = {}
        self.new_refs: dict[str, int] = {}
        self.new_defs: dict[str, int] = {}
        self.new_method_rows: dict[int, tuple[int, ...]] = {}
        self.new_property_maps: dict[int, int] = {}
        self.new_properties: dict[str, int] = {}
        self.attribute_rows: dict[int, list[int]] = {}
        self.new_user_strings: dict[str, int] = {}
        self._reserved: dict[T, int] = {}
        self._new_rows: dict[T, int] = {}  # rows added (not updated) so far, per table
        self._deleted_refs: tuple[int, int] | None = None
        self.context = ""
        self.constant_owner = ""  # what the first constant added belongs to (a field: "Type.field")

    # ---- token mapping -------------------------------------------------------------------------
    def _add_row(self, table: T, row: tuple[int, ...], rid: int | None = None) -> int:
        """A row of the delta: `rid` for a row updated in place (or a definition's id reserved by `_next`),
        else the table's next new row."""
        if rid is None:
            rid = self._next_new(table)
        if rid > self.base.row_counts[table]:
            self._new_rows[table] = self._new_rows.get(table, 0) + 1
        self.rows.setdefault(table, []).append(row)
        self.rids.setdefault(table, []).append(rid)
        return rid

    def _next_new(self, table: T) -> int:
        """Row id of the next row added to `table`: rows updated in place (an attribute rewritten or detached)
        take none, so added rows continue the running table with no gap."""
        return self.base.row_counts[table] + self._new_rows.get(table, 0) + 1

    def map_token(self, tok: int) -> int:
        """Token of the new build -> token of the same entity in the running module (adding rows if needed)."""
        table, row = split_token(tok)
        if table == 0x70:
            return 0x70000000 | self._user_string(self.md.user_string(row))
        if tok == 0 or row == 0:
            return tok
        t = T(table)
        key = self.new.names.key(t, row)
        if t in _DEF_TABLES:
            found = self.base.defs.get(key) or self.new_defs.get(key)
            if found is None:
                raise UnsupportedEdit(Refusal(RefusalKind.NEW_REFERENCE, self.context,
                                              f"uses {key[2:].split('|')[0]}, which the running app does not have"))
            return found
        found = self.base.refs.get(key) or self.new_refs.get(key)
        if found is None:
            found = token(t, self._add_reference(t, row))
            self.new_refs[key] = found
        return found

    def _user_string(self, value: str) -> int:
        off = self.base.user_strings.get(value)
        if off is None:
            off = self.user_strings.add(value)
            self.new_user_strings[value] = off
        return off

    def _map_type(self, table: T, row: int) -> bytes:
        mapped = self.map_token(token(table, row))
        t, r = split_token(mapped)
        return encode_type_token(T(t), r)

    def _sig(self, blob_offset: int) -> int:
        return self.blobs.add(map_signature(self.md.blob(blob_offset), self._map_type))

    def _coded(self, coded_index: Coded, value: int) -> int:
        table, row = coded_index.decode(value)
        if table is None or row == 0:
            return value
        t, r = split_token(self.map_token(token(table, row)))
        return coded_index.encode(T(t), r)

    def _add_reference(self, t: T, row: int) -> int:
        md = self.md
        r = md.row(t, row)
        new_row: tuple[int, ...]
        if t == T.AssemblyRef:
            new_row = (r[0], r[1], r[2], r[3], r[4], self.blobs.add(md.blob(r[5])), self.strings.add(md.string(r[6])),
                       self.strings.add(md.string(r[7])), self.blobs.add(md.blob(r[8])))
        elif t == T.ModuleRef:
            new_row = (self.strings.add(md.string(r[0])),)
        elif t == T.TypeRef:
            scope_table, _ = ResolutionScope.decode(r[0])
            scope = r[0] if scope_table == T.Module else self._coded(ResolutionScope, r[0])
            new_row = (scope, self.strings.add(md.string(r[1])), self.strings.add(md.string(r[2])))
        elif t == T.TypeSpec:
            new_row = (self.blobs.add(map_type_signature(md.blob(r[0]), self._map_type)),)
        elif t == T.MemberRef:
            new_row = (self._coded(MemberRefParent, r[0]), self.strings.add(md.string(r[1])), self._sig(r[2]))
        elif t == T.MethodSpec:
            new_row = (self._coded(MethodDefOrRef, r[0]), self._sig(r[1]))
        elif t == T.StandAloneSig:
            new_row = (self._sig(r[0]),)
        else:
            raise UnsupportedEdit(Refusal(RefusalKind.REFERENCE_KIND, self.context, t.name))
        return self._add_row(t, new_row)

    # ---- the delta ---------------------------------------------------------------------------------
    def build(self, diff: Diff | list[ChangedMethod]) -> Delta:
        """One generation: updated, added and deleted definitions of `diff` (or just changed bodies)."""
        if isinstance(diff, list):
            diff = Diff(new=self.new, changed=diff)
        base, names = self.base, self.new.names
        generation = base.generation + 1
        self.il = bytearray(b"\0\0\0\0")
        self.method_tokens: dict[str, int] = {}
        self.method_il: dict[str, bytes] = {}
        self.new_rids: dict[str, int] = {}
        self.debug: list[tuple[int, MethodDebugInfo]] = []
        self.enc_adds: dict[T, list[tuple[int, int]]] = {}  # table -> [(parent token, op)] paired with its rows

        # Rows for every added definition first: bodies and signatures may refer to any of them.
        for rid in diff.added_types:
            self.new_defs[names.key(T.TypeDef, rid)] = token(T.TypeDef, self._next(T.TypeDef))
        # a data field whose data went back to what an earlier generation added already exists
        added_fields = [rid for rid in diff.added_fields if names.key(T.Field, rid) not in base.defs]
        data_fields = [rid for rid in added_fields if rid in self.new.field_rvas]
        if data_fields and base.row_counts[T.FieldRva] + len(data_fields) > MAX_DATA_FIELDS:
            raise UnsupportedEdit(Refusal(
                RefusalKind.CAPABILITY, display_name(names.key(T.Field, data_fields[0])),
                f"changed array literal data needs a new data field, and the running module has "
                f"{base.row_counts[T.FieldRva]}: the .NET runtime rejects updates past {MAX_DATA_FIELDS}"))
        for rid in added_fields:
            self.new_defs[names.key(T.Field, rid)] = token(T.Field, self._next(T.Field))
        # a method deleted earlier and now back with the same signature continues its running row
        revived = [rid for rid in diff.added_methods if names.key(T.MethodDef, rid) in base.defs]
        added_methods = [rid for rid in diff.added_methods if rid not in revived]
        for rid in added_methods:
            self.new_defs[names.key(T.MethodDef, rid)] = token(T.MethodDef, self._next(T.MethodDef))

        for rid in diff.added_types:
            self._add_type(rid)
        for rid in added_fields:
            self._add_field(rid)
        for rid in added_methods:
            self._add_method(rid)
        for change in sorted(diff.changed, key=lambda c: base.defs.get(c.key, 0)):
            self._update_method(change.key, change.new_rid)
        for rid in revived:
            key = names.key(T.MethodDef, rid)
            self._update_method(key, rid)
            self._set_attributes(T.MethodDef, base.defs[key] & 0xFFFFFF, rid)  # drops [MetadataUpdateDeleted]
        for key in diff.deleted:
            self._delete_method(key, display_name(key) in diff.resigned)
        for rid in diff.added_properties:
            self._add_property(rid)
        for key in diff.property_attributes:
            running_property = base.properties.get(key)
            if running_property is not None:
                self.context = key
                self._set_attributes(T.Property, running_property, self.new.properties[key])
        for key in diff.removed_properties:
            running_property = base.properties.get(key)
            if running_property is not None:  # reflection (F# printing, serializers) must not find it as a field
                self._detach_attributes(HasCustomAttribute.encode(T.Property, running_property))
        for key in diff.attributes:
            table = {"T": T.TypeDef, "M": T.MethodDef, "F": T.Field}[key[0]]
            new_rid = {T.TypeDef: self.new.types, T.MethodDef: self.new.methods, T.Field: self.new.fields}[table][key]
            self.context = key[2:]
            self._set_attributes(table, base.defs[key] & 0xFFFFFF, new_rid)

        if self.new_pdb is not None:  # same code, new lines: only the PDB delta carries them
            for change in diff.moved:
                running = base.defs.get(change.key)
                if running is not None:  # (moved methods are never also changed, added or deleted)
                    info = self.new_pdb.method_info(change.new_rid)
                    info.local_signature = self._running_local_signature(running & 0xFFFFFF)
                    self.debug.append((running & 0xFFFFFF, info))

        constants = sum(1 for r in self.rids.get(T.Constant, []) if r > base.row_counts[T.Constant])
        if constants and base.row_counts[T.Constant] + constants > MAX_CONSTANTS:
            raise UnsupportedEdit(Refusal(
                RefusalKind.CAPABILITY, self.constant_owner.rpartition(".")[0] or self.constant_owner,
                f"it adds constants (union case tags, literal values) to a module that would then have "
                f"{base.row_counts[T.Constant] + constants}: the .NET runtime does not find constants added past "
                f"{MAX_CONSTANTS} (reflection, %A and ToString on them would throw)"))
        moved_rids = {base.defs[c.key] & 0xFFFFFF for c in diff.moved if c.key in base.defs}
        metadata, enc_id, guids = self._metadata(generation)
        added = [0] * TABLE_COUNT
        for t in self.rows:
            added[t] = sum(1 for r in self.rids[t] if r > base.row_counts[t])
        pdb_bytes, new_docs, pdb_added = self._pdb_delta(self.debug, added, generation)
        return Delta(
            generation=generation, metadata=metadata, il=bytes(self.il), pdb=pdb_bytes, methods=list(diff.changed),
            method_tokens=self.method_tokens, method_il=self.method_il, summary=diff.summary(), new_rids=self.new_rids,
            new_refs=self.new_refs, new_defs=self.new_defs, new_method_rows=self.new_method_rows,
            new_property_maps=self.new_property_maps, new_properties=self.new_properties, attribute_rows=self.attribute_rows,
            local_signatures={rid: info.local_signature for rid, info in self.debug if rid not in moved_rids},
            new_user_strings=self.new_user_strings, new_documents=new_docs, added_rows=added,
            added_pdb_rows=pdb_added, strings_added=len(self.strings.data),
            blobs_added=len(self.blobs.data) + (-len(self.blobs.data) % 4),
            user_strings_added=len(self.user_strings.data) + (-len(self.user_strings.data) % 4),
            guid_size=len(guids), enc_id=enc_id,
        )

    def _running_local_signature(self, rid: int) -> int:
        """StandAloneSig row of the running body of method `rid` (0 when it has no locals)."""
        known = self.base.local_signatures.get(rid)
        if known is not None:
            return known
        body = self.base.build0.body(rid) if rid <= len(self.base.build0.asm.md.rows(T.MethodDef)) else None
        return body.local_sig & 0xFFFFFF if body is not None else 0

    def _next(self, table: T) -> int:
        """Reserves the next row id of a definition table (TypeDef, Field, MethodDef) for an added definition."""
        self._reserved[table] = self._reserved.get(table, 0) + 1
        return self.base.row_counts[table] + self._reserved[table]

    def _def_rid(self, table: T, rid: int) -> int:
        return self.map_token(token(table, rid)) & 0xFFFFFF

    def _log_add(self, table: T, parent: int, op: int) -> None:
        self.enc_adds.setdefault(table, []).append((parent, op))

    def _body(self, key: str, rid: int, running_rid: int) -> int:
        """Maps and appends the body of the new build's method `rid`; returns its offset in the IL delta."""
        body = self.new.body(rid)
        if body is None:
            return 0
        self.context = display_name(key)
        body.code = map_tokens(body.code, lambda _kind, tok: self.map_token(tok))
        body.local_sig = self.map_token(body.local_sig) if body.local_sig else 0
        for c in body.clauses:
            if c.flags == 0 and c.class_token_or_filter:
                c.class_token_or_filter = self.map_token(c.class_token_or_filter)
        while len(self.il) % 4:
            self.il.append(0)
        rva = len(self.il)
        self.il += encode_body(body)
        self.method_tokens[key] = token(T.MethodDef, running_rid)
        self.method_il[key] = body.code
        self.new_rids[key] = rid
        if self.new_pdb is not None:
            info = self.new_pdb.method_info(rid)
            info.local_signature = body.local_sig & 0xFFFFFF
            self.debug.append((running_rid, info))
        return rva

    def _attributes(self, table: T, rid: int, running: int) -> None:
        """Copies the custom attributes of a new build's entity onto its running row `running`."""
        parent = HasCustomAttribute.encode(table, rid)
        running_parent = HasCustomAttribute.encode(table, running)
        rows = self.attribute_rows.setdefault(running_parent, [])
        for _i, (_p, ctor, value) in self.new.rows_of(T.CustomAttribute, 0, parent):
            rows.append(self._add_row(T.CustomAttribute, (running_parent, self._coded(CustomAttributeType, ctor),
                                                          self.blobs.add(self.md.blob(value)))))

    def _constant(self, table: T, rid: int, running: int) -> None:
        for _i, (kind, _p, value) in self.new.rows_of(T.Constant, 1, HasConstant.encode(table, rid)):
            self.constant_owner = self.constant_owner or self.context
            self._add_row(T.Constant, (kind, HasConstant.encode(table, running), self.blobs.add(self.md.blob(value))))

    def _generic_params(self, table: T, rid: int, running: int) -> None:
        for i, (number, flags, _o, name) in self.new.rows_of(T.GenericParam, 2, TypeOrMethodDef.encode(table, rid)):
            gp = self._add_row(T.GenericParam, (number, flags, TypeOrMethodDef.encode(table, running),
                                                self.strings.add(self.md.string(name))))
            for _c, (_owner, constraint) in self.new.rows_of(T.GenericParamConstraint, 0, i):
                self._add_row(T.GenericParamConstraint, (gp, self._coded(TypeDefOrRef, constraint)))

    def _add_type(self, rid: int) -> None:
        md, names = self.md, self.new.names
        flags, _name, ns, extends, *_ = md.row(T.TypeDef, rid)
        running = self._def_rid(T.TypeDef, rid)
        self.context = names.typedef_name(rid)
        self._add_row(T.TypeDef, (flags, self.strings.add(names.own_name(T.TypeDef, rid)),
                                  self.strings.add(md.string(ns)), self._coded(TypeDefOrRef, extends), 0, 0), running)
        enclosing = names.enclosing.get(rid)
        if enclosing:
            self._add_row(T.NestedClass, (running, self._def_rid(T.TypeDef, enclosing)))
        new = self.new
        for _i, (_cls, iface) in new.rows_of(T.InterfaceImpl, 0, rid):
            self._add_row(T.InterfaceImpl, (running, self._coded(TypeDefOrRef, iface)))
        for _i, (_cls, body, decl) in new.rows_of(T.MethodImpl, 0, rid):
            self._add_row(T.MethodImpl, (running, self._coded(MethodDefOrRef, body), self._coded(MethodDefOrRef, decl)))
        for _i, (packing, size, _parent) in new.rows_of(T.ClassLayout, 2, rid):
            self._add_row(T.ClassLayout, (packing, size, running))
        self._generic_params(T.TypeDef, rid, running)
        self._attributes(T.TypeDef, rid, running)

    def _owner_token(self, table: T, rid: int) -> int:
        owner = (self.new.names.field_owner if table == T.Field else self.new.names.method_owner)[rid]
        return self.map_token(token(T.TypeDef, owner))

    def _add_field(self, rid: int) -> None:
        md, names = self.md, self.new.names
        flags, _name, sig = md.row(T.Field, rid)
        running = self._def_rid(T.Field, rid)
        self.context = display_name(names.key(T.Field, rid))
        self._log_add(T.Field, self._owner_token(T.Field, rid), _ADD_FIELD)
        self._add_row(T.Field, (flags, self.strings.add(names.own_name(T.Field, rid)), self._sig(sig)), running)
        for _i, (offset, _f) in self.new.rows_of(T.FieldLayout, 1, rid):
            self._add_row(T.FieldLayout, (offset, running))
        data = self.new.field_data(rid)
        if data is not None:  # AddFieldRva: the data follows the bodies in the IL delta, the RVA is its offset
            while len(self.il) % 8:
                self.il.append(0)
            self._add_row(T.FieldRva, (len(self.il), running))
            self.il += data
        self._constant(T.Field, rid, running)
        self._attributes(T.Field, rid, running)

    def _add_method(self, rid: int) -> None:
        md, names = self.md, self.new.names
        key = names.key(T.MethodDef, rid)
        _rva, impl, flags, _name, sig, _params = md.row(T.MethodDef, rid)
        running = self._def_rid(T.MethodDef, rid)
        self._log_add(T.MethodDef, self._owner_token(T.MethodDef, rid), _ADD_METHOD)
        rva = self._body(key, rid, running)
        row = (rva, impl, flags, self.strings.add(names.own_name(T.MethodDef, rid)), self._sig(sig), 0)
        self._add_row(T.MethodDef, row, running)
        self.new_method_rows[running] = row
        for p in self.new.params_of(rid):
            pflags, seq, pname = md.row(T.Param, p)
            self._log_add(T.Param, token(T.MethodDef, running), _ADD_PARAMETER)
            prow = self._add_row(T.Param, (pflags, seq, self.strings.add(md.string(pname))))
            self._constant(T.Param, p, prow)
            self._attributes(T.Param, p, prow)
        self._generic_params(T.MethodDef, rid, running)
        self._attributes(T.MethodDef, rid, running)

    def _running_method_row(self, rid: int) -> tuple[int, ...]:
        known = self.base.method_rows.get(rid)
        return known if known is not None else tuple(self.base.build0.asm.md.row(T.MethodDef, rid))

    def _update_method(self, key: str, new_rid: int) -> None:
        running = self.base.defs.get(key)
        if running is None:
            raise UnsupportedEdit(Refusal(RefusalKind.MISSING_METHOD, display_name(key)))
        rid = running & 0xFFFFFF
        rva = self._body(key, new_rid, rid)
        if not rva:
            raise UnsupportedEdit(Refusal(RefusalKind.NO_BODY, display_name(key)))
        self._add_row(T.MethodDef, (rva,) + tuple(self._running_method_row(rid)[1:]), rid)

    def _delete_method(self, key: str, resigned: bool = False) -> None:
        """The running method keeps its row but now throws, and is marked [MetadataUpdateDeleted]. `resigned`: the
        source still defines it, with another signature (a new method the new code calls)."""
        running = self.base.defs.get(key)
        if running is None:
            return
        rid = running & 0xFFFFFF
        name = display_name(key)
        exc_ctor, attr_ctor = self._deletion_refs()
        message = (f"{name} was replaced by hot reload: its signature changed, and the new code calls the new one; "
                   "this caller holds the old one (restart to drop it)." if resigned else
                   f"{name} was deleted by hot reload (the source no longer defines it); restart to drop it.")
        code = (b"\x72" + struct.pack("<I", 0x70000000 | self._user_string(message))
                + b"\x73" + struct.pack("<I", token(T.MemberRef, exc_ctor)) + b"\x7a")
        while len(self.il) % 4:
            self.il.append(0)
        rva = len(self.il)
        self.il += encode_body(MethodBody(max_stack=8, init_locals=False, local_sig=0, code=code))
        self.method_tokens[key] = running
        self.method_il[key] = code
        self._add_row(T.MethodDef, (rva,) + tuple(self._running_method_row(rid)[1:]), rid)
        parent = HasCustomAttribute.encode(T.MethodDef, rid)
        marker = self._add_row(T.CustomAttribute, (parent, CustomAttributeType.encode(T.MemberRef, attr_ctor),
                                                   self.blobs.add(b"\x01\x00\x00\x00")))
        self.attribute_rows[parent] = self.base.attribute_rows(parent) + [marker]

    def _deletion_refs(self) -> tuple[int, int]:
        """MemberRef rows of MissingMethodException(string) and MetadataUpdateDeletedAttribute(), once per delta."""
        if self._deleted_refs is None:
            runtime = self._system_runtime()
            exc_type = self._add_row(T.TypeRef, (ResolutionScope.encode(T.AssemblyRef, runtime),
                                                 self.strings.add("MissingMethodException"), self.strings.add("System")))
            exc_ctor = self._add_row(T.MemberRef, (MemberRefParent.encode(T.TypeRef, exc_type),
                                                   self.strings.add(".ctor"), self.blobs.add(b"\x20\x01\x01\x0e")))
            attr_type = self._add_row(T.TypeRef, (ResolutionScope.encode(T.AssemblyRef, self._runtime_loader(runtime)),
                                                  self.strings.add("MetadataUpdateDeletedAttribute"),
                                                  self.strings.add("System.Runtime.CompilerServices")))
            attr_ctor = self._add_row(T.MemberRef, (MemberRefParent.encode(T.TypeRef, attr_type),
                                                    self.strings.add(".ctor"), self.blobs.add(b"\x20\x00\x01")))
            self._deleted_refs = (exc_ctor, attr_ctor)
        return self._deleted_refs

    def _system_runtime(self) -> int:
        md = self.base.build0.asm.md
        for i, row in enumerate(md.rows(T.AssemblyRef), 1):
            if md.string(row[6]) in ("System.Runtime", "netstandard"):
                return i
        raise UnsupportedEdit(Refusal(RefusalKind.DELETED_METHOD, self.context, "the app does not reference System.Runtime"))

    def _set_attributes(self, table: T, running: int, new_rid: int) -> None:
        """The entity's custom attributes become the new build's: its running rows are rewritten in place,
        extra ones added, and surplus ones detached, as the runtime's ChangeCustomAttributes expects: parent nil,
        constructor a nil MethodDef (a coded index cannot be 0: its tag 0 is unused, readers reject it), no value."""
        parent_new = HasCustomAttribute.encode(table, new_rid)
        parent = HasCustomAttribute.encode(table, running)
        wanted = [(self._coded(CustomAttributeType, ctor), self.blobs.add(self.md.blob(value)))
                  for _i, (_p, ctor, value) in self.new.rows_of(T.CustomAttribute, 0, parent_new)]
        rows = self.base.attribute_rows(parent)
        for i, rid in enumerate(rows):
            if i < len(wanted):
                self._add_row(T.CustomAttribute, (parent, *wanted[i]), rid)
            else:
                self._add_row(T.CustomAttribute, (0, CustomAttributeType.encode(T.MethodDef, 0), 0), rid)
        added = [self._add_row(T.CustomAttribute, (parent, ctor, value)) for ctor, value in wanted[len(rows):]]
        self.attribute_rows[parent] = rows[:len(wanted)] + added

    def _detach_attributes(self, parent: int) -> None:
        """Every custom attribute of a running entity detached (as `_set_attributes` detaches surplus ones)."""
        for rid in self.base.attribute_rows(parent):
            self._add_row(T.CustomAttribute, (0, CustomAttributeType.encode(T.MethodDef, 0), 0), rid)
        self.attribute_rows[parent] = []

    def _runtime_loader(self, system_runtime: int) -> int:
        """AssemblyRef row of System.Runtime.Loader (which forwards MetadataUpdateDeletedAttribute), added once."""
        for key, tok in {**self.base.refs, **self.new_refs}.items():
            if key.startswith("A:System.Runtime.Loader,"):
                return tok & 0xFFFFFF
        md = self.base.build0.asm.md
        r = md.row(T.AssemblyRef, system_runtime)
        row = (r[0], r[1], r[2], r[3], r[4], self.blobs.add(md.blob(r[5])), self.strings.add("System.Runtime.Loader"),
               self.strings.add(md.string(r[7])), self.blobs.add(md.blob(r[8])))
        rid = self._add_row(T.AssemblyRef, row)
        self.new_refs[f"A:System.Runtime.Loader,{r[0]}.{r[1]}.{r[2]}.{r[3]},{md.string(r[7])},{md.blob(r[5]).hex()}"] = \
            token(T.AssemblyRef, rid)
        return rid

    def _add_property(self, rid: int) -> None:
        md, new = self.md, self.new
        flags, name, sig = md.row(T.Property, rid)
        owner_running = self._def_rid(T.TypeDef, new.property_owner[rid])
        prop = self._next_new(T.Property)
        map_rid = self.base.property_maps.get(owner_running) or self.new_property_maps.get(owner_running)
        if map_rid is None:
            map_rid = self._add_row(T.PropertyMap, (owner_running, prop))
            self.new_property_maps[owner_running] = map_rid
        self._log_add(T.Property, token(T.PropertyMap, map_rid), _ADD_PROPERTY)
        self._add_row(T.Property, (flags, self.strings.add(md.string(name)), self._sig(sig)), prop)
        self.new_properties[next(k for k, r in new.properties.items() if r == rid)] = prop
        for sem, method in new.semantics.get(rid, []):
            self._add_row(T.MethodSemantics, (sem, self._def_rid(T.MethodDef, method),
                                              HasSemantics.encode(T.Property, prop)))
        self._constant(T.Property, rid, prop)
        self._attributes(T.Property, rid, prop)

    def _metadata(self, generation: int) -> tuple[bytes, bytes, bytes]:
        """The metadata delta: Module row, every added/updated row, EncLog and EncMap."""
        base = self.base
        # Module row: the runtime reads Name/Mvid/EncBaseId from the delta's own heaps, so they are
        # written again. #GUID is padded to its previous size; new GUIDs follow.
        enc_id = uuid.uuid4().bytes_le
        base_md = base.build0.asm.md
        mod = base.module_row
        guid_list = [base_md.guid(mod[2]), enc_id] + ([base.enc_id] if base.generation else [])
        guids = b"\0" * base.guid_size + b"".join(guid_list)
        first = base.guid_size // 16 + 1
        mvid_index, enc_id_index = first, first + 1
        enc_base_index = first + 2 if base.generation else 0
        tables: dict[T, list[tuple[int, ...]]] = {
            T.Module: [(generation, self.strings.add(base_md.string(mod[1])), mvid_index, enc_id_index,
                        enc_base_index)]}
        enc_map: list[int] = []
        for t in sorted(self.rows):
            order = sorted(range(len(self.rows[t])), key=lambda i: self.rids[t][i])
            tables[t] = [self.rows[t][i] for i in order]
            enc_map += [token(t, self.rids[t][i]) for i in order]
        check_added_rows(self.rids, base.row_counts)
        tables[T.EncLog] = self._enc_log()
        tables[T.EncMap] = [(tok,) for tok in sorted(enc_map)]
        metadata = write_metadata(tables, bytes(self.strings.data), bytes(self.user_strings.data), guids,
                                  bytes(self.blobs.data))
        return metadata, enc_id, guids

    def _enc_log(self) -> list[tuple[int, ...]]:
        """EncLog in the order the runtime applies it: references, definitions (each added member right after
        the Add* entry naming its parent), then the tables that point at definitions."""
        log: list[tuple[int, ...]] = []

        def plain(t: T) -> None:
            log.extend((token(t, r), 0) for r in sorted(self.rids.get(t, [])))

        def with_parents(t: T) -> None:
            rids = self.rids.get(t, [])
            adds = self.enc_adds.get(t, [])
            # added rows were appended in the same order as their Add* entries
            new_rows = [r for r in rids if r > self.base.row_counts[t]]
            parent_of = dict(zip(new_rows, adds, strict=True))
            for r in sorted(rids):
                if r in parent_of:
                    log.append(parent_of[r])
                log.append((token(t, r), 0))

        for t in _REF_TABLES:
            plain(t)
        plain(T.TypeDef)
        plain(T.EventMap)
        plain(T.PropertyMap)
        with_parents(T.Field)
        with_parents(T.MethodDef)
        with_parents(T.Property)
        with_parents(T.Param)
        for t in (T.Constant, T.CustomAttribute, T.DeclSecurity, T.ClassLayout, T.FieldLayout, T.MethodSemantics,
                  T.MethodImpl, T.ImplMap, T.FieldRva, T.NestedClass, T.GenericParam, T.InterfaceImpl,
                  T.GenericParamConstraint):
            plain(t)
        return log

    def _pdb_delta(self, debug: list[tuple[int, MethodDebugInfo]], added: list[int],
                   generation: int) -> tuple[bytes, dict[str, int], list[int]]:
        """Portable PDB delta: MethodDebugInformation (sequence points) for every updated method."""
        base = self.base
        strings = StringHeap(0)
        blobs = BlobHeap(0)
        docs: dict[str, int] = {}
        doc_rows: list[tuple[int, ...]] = []
        doc_rids: list[int] = []
        new_pdb = self.new_pdb

        def map_doc(doc: int) -> int:
            assert new_pdb is not None
            name = new_pdb.document_name(doc)
            known = base.documents.get(name) or docs.get(name)
            if known:
                return known
            rid = base.pdb_row_counts[T.Document] + len(doc_rows) + 1
            r = new_pdb.md.row(T.Document, doc)
            name_blob = new_pdb.md.blob(r[0])
            sep = bytes([name_blob[0]]) if name_blob else b"/"
            parts = name.split(sep.decode("latin-1")) if name_blob and name_blob[0] else [name]
            encoded = sep + b"".join(compressed(blobs.add(p.encode("utf-8"))) for p in parts)
            doc_rows.append((blobs.add(encoded), 0, blobs.add(new_pdb.md.blob(r[2])), 0))
            doc_rids.append(rid)
            docs[name] = rid
            return rid

        mdi_rows: list[tuple[int, ...]] = []
        mdi_rids: list[int] = []
        for rid, info in sorted(debug):
            points = [SequencePoint(p.il_offset, map_doc(p.document), p.start_line, p.start_column, p.end_line,
                                    p.end_column) for p in info.points]
            doc_col, blob = encode_sequence_points(MethodDebugInfo(info.local_signature, points))
            # no sequence points: a nil blob (a blob holding only the local signature has no initial document,
            # and readers such as SRM reject it)
            mdi_rows.append((doc_col, blobs.add(blob) if points else 0))
            mdi_rids.append(rid)
        tables: dict[T, list[tuple[int, ...]]] = {}
        if doc_rows:
            tables[T.Document] = doc_rows
        if mdi_rows:
            tables[T.MethodDebugInformation] = mdi_rows
        enc_map: list[tuple[int, ...]] = [(token(T.Document, r),) for r in doc_rids]
        enc_map += [(token(T.MethodDebugInformation, r),) for r in mdi_rids]
        tables[T.EncMap] = enc_map
        type_system = [base.row_counts[i] + added[i] if i < 0x30 else 0 for i in range(TABLE_COUNT)]
        pdb_id = uuid.uuid4().bytes + struct.pack("<I", generation)
        data = write_metadata(tables, bytes(strings.data), b"\0", b"", bytes(blobs.data),
                              pdb=pdb_stream(pdb_id, 0, type_system))
        pdb_added = [0] * TABLE_COUNT
        pdb_added[T.Document] = len(doc_rows)
        return data, docs, pdb_added


def build_delta(base: Baseline, new: Build, new_pdb: Pdb | None, diff: Diff | list[ChangedMethod]) -> Delta:
    """The next generation's delta; `new` must be the build the diff was made against (`Diff.new`)."""
    return DeltaBuilder(base, new, new_pdb).build(diff)


def load_build(dll_path: str) -> tuple[Build, Pdb | None]:
    """Read a build's assembly and, when present beside it, its portable PDB."""
    build = Build.from_file(dll_path)
    pdb_path = os.path.splitext(dll_path)[0] + ".pdb"
    pdb = Pdb.from_file(pdb_path) if os.path.exists(pdb_path) else None
    return build, pdb
