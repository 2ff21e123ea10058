"""One compiled assembly indexed by identity: the unit the differ compares and the delta writer reads."""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable
from functools import cached_property

from .metadata.il import TOKEN_KINDS, MethodBody, instructions, parse_body, split_tokens
from .metadata.reader import Assembly
from .metadata.schema import (
    HasCustomAttribute,
    HasSemantics,
    MemberRefParent,
    MethodDefOrRef,
    T,
    TypeDefOrRef,
    TypeOrMethodDef,
    split_token,
)
from .metadata.sigs import read_compressed
from .names import Names

_PRIMITIVE_SIZES = {0x02: 1, 0x04: 1, 0x05: 1, 0x03: 2, 0x06: 2, 0x07: 2, 0x08: 4, 0x09: 4, 0x0C: 4, 0x0A: 8, 0x0B: 8,
                    0x0D: 8}


class Build:
    """One compiled assembly, indexed by identity; bodies are normalized lazily and memoized."""

    def __init__(self, asm: Assembly, renames: dict[tuple[int, int], str] | None = None) -> None:
        self.asm = asm
        self.renames = dict(renames or {})
        self.names = Names(asm, self.renames)
        self._normalized: dict[int, tuple[object, ...]] = {}
        self._row_index: dict[tuple[T, int], dict[int, list[tuple[int, tuple[int, ...]]]]] = {}
        self.retired: frozenset[str] = frozenset()  # keys of types removed from the running module, still loaded
        self.carried_from: Build | None = None  # the build whose rows, names and signatures this one has

    @classmethod
    def from_file(cls, path: str) -> Build:
        return cls(Assembly.from_file(path))

    def renamed(self, renames: dict[tuple[int, int], str]) -> Build:
        """The same assembly seen with running-module names for entities that only moved (see match.py).

        Only compiler-generated, line-named entities (`f@12`) are renamed, and every key that names one contains
        '@' (F# identifiers cannot, outside backticks): keys and normalized bodies without '@' are the same under
        the new names, so they are carried over rather than computed again for thousands of methods.
        """
        if not renames:
            return self
        build = Build(self.asm, {**self.renames, **renames})
        if all("@" in self.names.raw_name(T(table), row) for table, row in renames):
            build.names.carry_from(self.names)
            build._row_index = self._row_index
            build._normalized = {rid: body for rid, body in self._normalized.items() if not _names_generated(body)}
        return build

    def carried_to(self, asm: Assembly, changed_bodies: Iterable[int]) -> Build:
        """A build of `asm`, which has this build's rows, names and signatures (see incremental.py): its index is
        this one's (no re-indexing), and so are the normalized forms of bodies that did not change."""
        build = Build(asm, self.renames)
        build.carried_from = self
        build.names = self.names.carried_to(asm)
        build._row_index = self._row_index
        build._normalized = dict(self._normalized)
        for rid in changed_bodies:
            build._normalized.pop(rid, None)
        for name, value in self.__dict__.items():
            if name in _INDEX_PROPERTIES:
                build.__dict__[name] = value
        return build

    # ---- members of a type ----------------------------------------------------------------------
    def _range(self, owner_table: T, rid: int, col: int, member_table: T) -> range:
        """Rows of `member_table` listed by owner `rid` (the list runs to the next owner's first row)."""
        owners = self.asm.md.rows(owner_table)
        end = owners[rid][col] if rid < len(owners) else len(self.asm.md.rows(member_table)) + 1
        return range(owners[rid - 1][col], end)

    def methods_of(self, rid: int) -> range:
        return self._range(T.TypeDef, rid, 5, T.MethodDef)

    def fields_of(self, rid: int) -> range:
        return self._range(T.TypeDef, rid, 4, T.Field)

    def params_of(self, method_rid: int) -> range:
        return self._range(T.MethodDef, method_rid, 5, T.Param)

    def rows_of(self, table: T, column: int, value: int) -> list[tuple[int, tuple[int, ...]]]:
        """(row id, row) of `table` whose `column` holds `value` (a parent, owner or class), indexed once."""
        index = self._row_index.get((table, column))
        if index is None:
            index = self._row_index[(table, column)] = {}
            for i, row in enumerate(self.asm.md.rows(table), 1):
                index.setdefault(row[column], []).append((i, tuple(row)))
        return index.get(value, [])

    @cached_property
    def property_owner(self) -> dict[int, int]:
        """Property row -> the TypeDef row that declares it."""
        maps = self.asm.md.rows(T.PropertyMap)
        return {prop: parent for i, (parent, _first) in enumerate(maps, 1)
                for prop in self._range(T.PropertyMap, i, 1, T.Property)}

    @cached_property
    def field_rvas(self) -> dict[int, int]:
        """Field row -> RVA of its initial data (array literals and other mapped data)."""
        return {field_rid: rva for rva, field_rid in self.asm.md.rows(T.FieldRva)}

    def field_data(self, rid: int) -> bytes | None:
        """The initial data of a field mapped to an RVA (array literals), or None for ordinary fields."""
        rva = self.field_rvas.get(rid)
        if rva is None:
            return None
        sig = self.asm.md.blob(self.asm.md.row(T.Field, rid)[2])
        size = _PRIMITIVE_SIZES.get(sig[1], 0) if len(sig) > 1 else 0
        if len(sig) > 2 and sig[1] in (0x11, 0x12):  # VALUETYPE/CLASS: the ClassLayout size of that TypeDef
            coded, _ = read_compressed(sig, 2)
            table, type_rid = TypeDefOrRef.decode(coded)
            if table == T.TypeDef:
                size = next((row[1] for _i, row in self.rows_of(T.ClassLayout, 2, type_rid)), 0)
        return self.asm.data_at(rva, size or 64)

    @cached_property
    def fsharp_kinds(self) -> dict[int, int]:
        """TypeDef row -> F# SourceConstructFlags from [<CompilationMapping>] (1 union, 2 record, 3 class, 7 module)."""
        out: dict[int, int] = {}
        md = self.asm.md
        for parent, ctor, value in md.rows(T.CustomAttribute):
            table, row = HasCustomAttribute.decode(parent)
            if table != T.TypeDef:
                continue
            if "CompilationMappingAttribute" in self.names.attribute_key((parent, ctor, value)).split("::")[0]:
                blob = md.blob(value)
                if len(blob) >= 6:
                    out[row] = struct.unpack_from("<i", blob, 2)[0] & 31
        return out

    @cached_property
    def initializer_methods(self) -> list[int]:
        """MethodDef rows named .cctor or main@: static initializers and a top-level program's code (the same rows
        in a build carried over: a lambda's edit asks for them without scanning every method's name again)."""
        md = self.asm.md
        return [rid for rid, row in enumerate(md.rows(T.MethodDef), 1) if md.string(row[3]) in (".cctor", "main@")]

    @cached_property
    def types(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.names.keys_of(T.TypeDef), 1)}

    @cached_property
    def methods(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.names.keys_of(T.MethodDef), 1)}

    @cached_property
    def fields(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.names.keys_of(T.Field), 1)}

    def body(self, rid: int) -> MethodBody | None:
        raw = self.__dict__.get("_raw_bodies")  # (diff._raw_bodies: each body's bytes, cut in one pass)
        if raw is not None and raw.get(rid):
            return parse_body(raw[rid])
        rva = self.asm.md.row(T.MethodDef, rid)[0]
        return parse_body(self.asm.body_at(rva)) if rva else None

    def normalized(self, rid: int) -> tuple[object, ...]:
        """A body with every token replaced by the identity it names: equal iff semantically the same IL."""
        if rid not in self._normalized:
            body = self.body(rid)
            if body is None:
                self._normalized[rid] = ()
            else:
                code, tokens = split_tokens(bytes(body.code))
                refs = tuple(map(self.names.token_key, tokens))
                locals_key = self.names.token_key(body.local_sig) if body.local_sig else ""
                clauses = tuple(
                    (c.flags, c.try_offset, c.try_length, c.handler_offset, c.handler_length,
                     self.names.token_key(c.class_token_or_filter) if c.flags == 0 and c.class_token_or_filter
                     else c.class_token_or_filter)
                    for c in body.clauses)
                self._normalized[rid] = (code, refs, locals_key, clauses, body.max_stack,
                                         body.init_locals)
        return self._normalized[rid]

    def referenced_types(self, rid: int) -> set[int]:
        """TypeDef rows the body of method `rid` names: the types, the types of members it uses, and the types of
        generic instantiations (closures of generic code are used through a TypeSpec)."""
        body = self.body(rid)
        out: set[int] = set()
        if body is not None:
            for ins in instructions(body.code):
                if ins.kind in TOKEN_KINDS:
                    self._type_of(struct.unpack_from("<I", body.code, ins.operand_offset)[0], out)
        return out

    def token_types(self, tok: int) -> set[int]:
        """TypeDef rows a token names: the type, the type of a member, the type of a generic instantiation."""
        out: set[int] = set()
        self._type_of(tok, out)
        return out

    def _type_of(self, tok: int, out: set[int]) -> None:
        table, row = split_token(tok)
        md = self.asm.md
        if not row:
            return
        if table == T.TypeDef:
            out.add(row)
        elif table == T.MethodDef:
            out.add(self.names.method_owner[row])
        elif table == T.Field:
            out.add(self.names.field_owner[row])
        elif table == T.TypeSpec:
            blob = md.blob(md.row(T.TypeSpec, row)[0])
            if len(blob) > 2 and blob[0] == 0x15 and blob[1] in (0x11, 0x12):  # GENERICINST CLASS/VALUETYPE
                spec_table, spec_row = TypeDefOrRef.decode(read_compressed(blob, 2)[0])
                if spec_table == T.TypeDef:
                    out.add(spec_row)
        elif table in (T.MemberRef, T.MethodSpec):
            coded = md.row(T(table), row)[0]
            parent_table, parent_row = (MemberRefParent if table == T.MemberRef else MethodDefOrRef).decode(coded)
            if parent_table is not None:
                self._type_of((int(parent_table) << 24) | parent_row, out)

    @cached_property
    def _interfaces(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for cls, iface in self.asm.md.rows(T.InterfaceImpl):
            out.setdefault(cls, []).append(self.names.extends_key(iface))
        return out

    @cached_property
    def generic_params(self) -> dict[tuple[int, int], list[tuple[int, int, str, tuple[str, ...]]]]:
        """(TypeDef or MethodDef table, row) -> [(number, flags, name, constraints)]: what constraints are."""
        md = self.asm.md
        constraints: dict[int, list[str]] = {}
        for owner, constraint in md.rows(T.GenericParamConstraint):
            constraints.setdefault(owner, []).append(self.names.extends_key(constraint))
        out: dict[tuple[int, int], list[tuple[int, int, str, tuple[str, ...]]]] = {}
        for i, (number, flags, owner, name) in enumerate(md.rows(T.GenericParam), 1):
            table, row = TypeOrMethodDef.decode(owner)
            assert table is not None
            out.setdefault((int(table), row), []).append(
                (number, flags, md.string(name), tuple(sorted(constraints.get(i, [])))))
        return out

    def type_shape(self, rid: int) -> tuple[object, ...]:
        """(flags, base type, interfaces, generic parameters with constraints): what an edit may not change."""
        flags, _name, _ns, extends, *_ = self.asm.md.row(T.TypeDef, rid)
        interfaces = tuple(sorted(self._interfaces.get(rid, [])))
        generics = tuple(self.generic_params.get((int(T.TypeDef), rid), []))
        return flags, self.names.extends_key(extends), interfaces, generics

    def field_flags(self, rid: int) -> int:
        return self.asm.md.row(T.Field, rid)[0]

    def method_flags(self, rid: int) -> tuple[int, int]:
        row = self.asm.md.row(T.MethodDef, rid)
        return row[2], row[1]

    @cached_property
    def attributes(self) -> dict[str, list[str]]:
        """Custom attributes by the identity of what they decorate (types, methods, fields)."""
        return self._attributes_but({})

    def adopt_attributes(self, other: Build, rows: dict[T, dict[int, int]]) -> None:
        """Take `other`'s attributes for this build's `rows` (table -> row -> `other`'s row) of the TypeDef, MethodDef
        and Field tables: entities compiled as they were (hotreload.carry), whose attributes are the same."""
        found = self._attributes_but(rows)
        theirs, their_key, key = other.attributes, other.names.key, self.names.key
        for table, pairs in rows.items():
            for n, o in pairs.items():
                attributes = theirs.get(their_key(table, o))
                if attributes is not None:
                    found[key(table, n)] = attributes
        self.__dict__["attributes"] = found

    def _attributes_but(self, rows: dict[T, dict[int, int]]) -> dict[str, list[str]]:
        skip = {HasCustomAttribute.encode(table, n) for table, pairs in rows.items() for n in pairs}
        out: dict[str, list[str]] = {}
        for row in self.asm.md.rows(T.CustomAttribute):
            if row[0] in skip:
                continue
            table, prow = HasCustomAttribute.decode(row[0])
            if table not in (T.TypeDef, T.MethodDef, T.Field):
                continue
            out.setdefault(self.names.key(table, prow), []).append(self.names.attribute_key(row))
        return {k: sorted(v) for k, v in out.items()}

    @cached_property
    def other_attributes(self) -> dict[str, list[str]]:
        """Custom attributes on what `attributes` leaves out, by a readable identity: 'Param:<method key>#<n>'
        (n 0 is the return value), 'Property:<key>', 'Event:<key>', 'Assembly:' and 'Module:'."""
        md = self.asm.md
        targets = (T.Param, T.Property, T.Event, T.Assembly, T.Module)
        decoded = [(HasCustomAttribute.decode(row[0]), row) for row in md.rows(T.CustomAttribute)]
        rows = [(t, r, row) for (t, r), row in decoded if t in targets]
        if not rows:
            return {}
        firsts = md.column(T.MethodDef, 5)  # each method's first Param row: a parameter's owner is found by bisection
        property_key = {rid: key for key, rid in self.properties.items()}
        event_key = {rid: key for key, rid in self.events.items()}
        out: dict[str, list[str]] = {}
        for table, rid, row in rows:
            if table == T.Param:
                owner = bisect.bisect_right(firsts, rid)
                key = f"Param:{self.names.key(T.MethodDef, owner)}#{md.row(T.Param, rid)[1]}"
            elif table == T.Property:
                key = f"Property:{property_key[rid]}"
            elif table == T.Event:
                key = f"Event:{event_key[rid]}"
            else:
                key = f"{T(table).name}:"
            out.setdefault(key, []).append(self.names.attribute_key(row))
        return {k: sorted(v) for k, v in out.items()}

    @cached_property
    def events(self) -> dict[str, int]:
        """'Type::Name' -> Event row."""
        md = self.asm.md
        out: dict[str, int] = {}
        for i, (parent, _first) in enumerate(md.rows(T.EventMap), 1):
            for rid in self._range(T.EventMap, i, 1, T.Event):
                out[f"{self.names.typedef_name(parent)}::{md.string(md.row(T.Event, rid)[1])}"] = rid
        return out

    @cached_property
    def properties(self) -> dict[str, int]:
        """'Type::Name|sig' -> Property row."""
        md = self.asm.md
        out: dict[str, int] = {}
        for prop, parent in self.property_owner.items():
            _flags, name, sig = md.row(T.Property, prop)
            out[f"{self.names.typedef_name(parent)}::{md.string(name)}|{self.names.sig(sig)}"] = prop
        return out

    @cached_property
    def semantics(self) -> dict[int, list[tuple[int, int]]]:
        """Property row -> [(semantics flags, MethodDef row)]."""
        out: dict[int, list[tuple[int, int]]] = {}
        for sem, method, assoc in self.asm.md.rows(T.MethodSemantics):
            table, row = HasSemantics.decode(assoc)
            if table == T.Property:
                out.setdefault(row, []).append((sem, method))
        return out


def _names_generated(body: tuple[object, ...]) -> bool:
    """Whether a normalized body names a line-named (compiler-generated) entity: its tokens' keys, locals, clauses."""
    return bool(body) and "@" in repr(body[1:4])


_INDEX_PROPERTIES = frozenset(name for name, value in vars(Build).items() if isinstance(value, cached_property))
"""Cached views of the rows (keys, owners, attributes, ...): equal for builds with equal rows."""
