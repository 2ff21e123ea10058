"""Compares two builds of one assembly by identity and finds what changed.

Method bodies are compared token-normalized: each token is replaced by the identity of what it names,
so a body whose bytes differ only because rows shifted counts as unchanged. Changes the delta writer
cannot express yet become `Refusal`s that name the member and the kind of change.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from .metadata.il import TOKEN_KINDS, MethodBody, instructions, parse_body
from .metadata.reader import Assembly
from .metadata.schema import HasCustomAttribute, T, TypeOrMethodDef
from .names import Names, display_name


@dataclass(frozen=True)
class Refusal:
    """An edit that cannot be applied to the running app, said so the user knows what to do."""

    kind: str
    member: str
    detail: str = ""
    hint: str = "restart the app to pick it up"
    location: str = ""  # "File.fs:12" when known

    def __str__(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.kind} in {self.member}{extra} ({self.hint})"


@dataclass(frozen=True)
class ChangedMethod:
    key: str
    old_rid: int  # row in the previous build
    new_rid: int  # row in the new build

    @property
    def name(self) -> str:
        return display_name(self.key)


@dataclass
class Diff:
    changed: list[ChangedMethod] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


class Build:
    """One compiled assembly, indexed by identity; bodies are normalized lazily and memoized."""

    def __init__(self, asm: Assembly) -> None:
        self.asm = asm
        self.names = Names(asm)
        self._normalized: dict[int, tuple[object, ...]] = {}

    @classmethod
    def from_file(cls, path: str) -> Build:
        return cls(Assembly.from_file(path))

    @cached_property
    def types(self) -> dict[str, int]:
        return {self.names.key(T.TypeDef, i): i for i in range(1, len(self.asm.md.rows(T.TypeDef)) + 1)}

    @cached_property
    def methods(self) -> dict[str, int]:
        return {self.names.key(T.MethodDef, i): i for i in range(1, len(self.asm.md.rows(T.MethodDef)) + 1)}

    @cached_property
    def fields(self) -> dict[str, int]:
        return {self.names.key(T.Field, i): i for i in range(1, len(self.asm.md.rows(T.Field)) + 1)}

    def body(self, rid: int) -> MethodBody | None:
        rva = self.asm.md.row(T.MethodDef, rid)[0]
        return parse_body(self.asm.body_at(rva)) if rva else None

    def normalized(self, rid: int) -> tuple[object, ...]:
        """A body with every token replaced by the identity it names: equal iff semantically the same IL."""
        if rid not in self._normalized:
            body = self.body(rid)
            if body is None:
                self._normalized[rid] = ()
            else:
                code = bytearray(body.code)
                refs: list[str] = []
                for ins in instructions(body.code):
                    if ins.kind in TOKEN_KINDS:
                        tok, = struct.unpack_from("<I", body.code, ins.operand_offset)
                        refs.append(self.names.token_key(tok))
                        code[ins.operand_offset:ins.operand_offset + 4] = b"\0\0\0\0"
                locals_key = self.names.token_key(body.local_sig) if body.local_sig else ""
                clauses = tuple(
                    (c.flags, c.try_offset, c.try_length, c.handler_offset, c.handler_length,
                     self.names.token_key(c.class_token_or_filter) if c.flags == 0 and c.class_token_or_filter
                     else c.class_token_or_filter)
                    for c in body.clauses)
                self._normalized[rid] = (bytes(code), tuple(refs), locals_key, clauses, body.max_stack,
                                         body.init_locals)
        return self._normalized[rid]

    @cached_property
    def _interfaces(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for cls, iface in self.asm.md.rows(T.InterfaceImpl):
            out.setdefault(cls, []).append(self.names.extends_key(iface))
        return out

    @cached_property
    def _type_generic_counts(self) -> Counter[int]:
        owners = (TypeOrMethodDef.decode(row[2]) for row in self.asm.md.rows(T.GenericParam))
        return Counter(rid for table, rid in owners if table == T.TypeDef)

    def type_shape(self, rid: int) -> tuple[object, ...]:
        flags, _name, _ns, extends, *_ = self.asm.md.row(T.TypeDef, rid)
        interfaces = tuple(sorted(self._interfaces.get(rid, [])))
        return flags, self.names.extends_key(extends), interfaces, self._type_generic_counts[rid]

    def field_flags(self, rid: int) -> int:
        return self.asm.md.row(T.Field, rid)[0]

    def method_flags(self, rid: int) -> tuple[int, int]:
        row = self.asm.md.row(T.MethodDef, rid)
        return row[2], row[1]

    @cached_property
    def attributes(self) -> dict[str, list[str]]:
        """Custom attributes by the identity of what they decorate (types, methods, fields)."""
        out: dict[str, list[str]] = {}
        for row in self.asm.md.rows(T.CustomAttribute):
            table, prow = HasCustomAttribute.decode(row[0])
            if table not in (T.TypeDef, T.MethodDef, T.Field):
                continue
            out.setdefault(self.names.key(table, prow), []).append(self.names.attribute_key(row))
        return {k: sorted(v) for k, v in out.items()}

    @cached_property
    def properties(self) -> set[str]:
        md = self.asm.md
        maps = md.rows(T.PropertyMap)
        count = len(md.rows(T.Property))
        out: set[str] = set()
        for i, (parent, first) in enumerate(maps):
            end = maps[i + 1][1] if i + 1 < len(maps) else count + 1
            for p in range(first, end):
                _flags, name, sig = md.row(T.Property, p)
                out.add(f"{self.names.typedef_name(parent)}::{md.string(name)}|{self.names.sig(sig)}")
        return out


def _type_display(key: str) -> str:
    return key[2:]


def _member_of(key: str) -> str:
    return display_name(key) if key.startswith(("M:", "F:")) else _type_display(key)


def _is_initializer(key: str) -> bool:
    name = display_name(key)
    return name.endswith("..cctor") or (name.startswith("<StartupCode$") and name.endswith(".main@"))


def diff_builds(old: Build, new: Build) -> Diff:
    """What changed from `old` to `new`: method bodies to update, and edits that must be refused."""
    result = Diff()
    refuse = result.refusals.append

    old_types, new_types = old.types, new.types
    for key in sorted(new_types.keys() - old_types.keys()):
        kind = "new closure or compiler-generated type" if "@" in key else "added type"
        refuse(Refusal(kind, _type_display(key), "adding types is not supported yet"))
    for key in sorted(old_types.keys() - new_types.keys()):
        kind = "removed closure or compiler-generated type" if "@" in key else "removed type"
        refuse(Refusal(kind, _type_display(key), "removing types is not supported"))
    for key in sorted(old_types.keys() & new_types.keys()):
        if old.type_shape(old_types[key]) != new.type_shape(new_types[key]):
            refuse(Refusal("type shape change (attributes, base type, interfaces or generic parameters)",
                           _type_display(key)))

    old_fields, new_fields = old.fields, new.fields
    for key in sorted(new_fields.keys() - old_fields.keys()):
        refuse(Refusal("added field", display_name(key), "adding fields is not supported yet"))
    for key in sorted(old_fields.keys() - new_fields.keys()):
        refuse(Refusal("removed or retyped field", display_name(key)))
    for key in sorted(old_fields.keys() & new_fields.keys()):
        if old.field_flags(old_fields[key]) != new.field_flags(new_fields[key]):
            refuse(Refusal("field attribute change", display_name(key)))

    old_methods, new_methods = old.methods, new.methods
    added = new_methods.keys() - old_methods.keys()
    removed = old_methods.keys() - new_methods.keys()
    removed_names = {display_name(k) for k in removed}
    added_names = {display_name(k) for k in added}
    for name in sorted(removed_names & added_names):
        refuse(Refusal("signature change", name, "parameter or return types changed"))
    for key in sorted(added):
        if display_name(key) not in removed_names:
            refuse(Refusal("added method", display_name(key), "adding functions or members is not supported yet"))
    for key in sorted(removed):
        if display_name(key) not in added_names:
            refuse(Refusal("removed method", display_name(key), "deleting functions or members is not supported"))

    for key in sorted(old_methods.keys() & new_methods.keys()):
        orid, nrid = old_methods[key], new_methods[key]
        if old.method_flags(orid) != new.method_flags(nrid):
            refuse(Refusal("method attribute change", display_name(key), "accessibility, static or virtual changed"))
            continue
        if old.normalized(orid) != new.normalized(nrid):
            if _is_initializer(key):
                refuse(Refusal("module-level value or static initializer change", display_name(key),
                               "initializers already ran and would not run again"))
            else:
                result.changed.append(ChangedMethod(key, orid, nrid))

    if old.properties != new.properties:
        for prop in sorted(old.properties ^ new.properties):
            refuse(Refusal("added, removed or retyped property", prop.split("|")[0].replace("::", ".")))

    old_attrs, new_attrs = old.attributes, new.attributes
    for key in sorted(old_attrs.keys() | new_attrs.keys()):
        if key in (old_types.keys() ^ new_types.keys()) or key in (added | removed):
            continue
        if old_attrs.get(key, []) != new_attrs.get(key, []):
            refuse(Refusal("custom attribute change", _member_of(key), "attribute edits are not supported yet"))
    return result
