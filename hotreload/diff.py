"""Compares two builds of one assembly by identity and finds what changed.

Compiler-generated entities that only moved are first given their running names (match.py). Method
bodies are compared token-normalized: each token is replaced by the identity of what it names, so a body
whose bytes differ only because rows shifted counts as unchanged. Edits the runtime cannot take (its
capabilities, or what would leave running state inconsistent) become `Refusal`s naming member and kind.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import cast

from .carry import NOTHING, Carried, carried_rows
from .incremental import body_spans, changed_bodies, moved_candidates, same_structure, with_body
from .indexed import Build
from .match import is_line_named, match_builds, may_have_swapped
from .metadata.il import body_tokens, instructions
from .metadata.schema import T, split_token
from .names import display_name
from .pdb import Pdb
from .refusal import Refusal
from .refusal import RefusalKind as K
from .sources import Sources

__all__ = ["Build", "ChangedMethod", "Diff", "Refusal", "diff_builds"]


@dataclass(frozen=True)
class ChangedMethod:
    key: str
    old_rid: int  # row in the previous build
    new_rid: int  # row in the new build

    @property
    def name(self) -> str:
        return display_name(self.key)


_UNION, _RECORD = 1, 2
_ATTRIBUTE_HINT = "hotreload applies attribute changes on types, methods and fields only: restart the app to pick it up"
_VIRTUAL = 0x40
_NO_CAPABILITY = "none of the .NET runtime's hot reload capabilities"


@dataclass
class Diff:
    """What one build changes relative to the previous one, as rows of `new` (the new build, running names)."""

    new: Build | None = None
    changed: list[ChangedMethod] = field(default_factory=list)
    added_types: list[int] = field(default_factory=list)  # TypeDef rows, enclosing before nested
    added_methods: list[int] = field(default_factory=list)  # MethodDef rows (of added and of existing types)
    added_fields: list[int] = field(default_factory=list)
    added_properties: list[int] = field(default_factory=list)
    removed_properties: list[str] = field(default_factory=list)  # keys: their attributes are detached
    property_attributes: list[str] = field(default_factory=list)  # keys of properties whose attributes changed
    deleted: list[str] = field(default_factory=list)  # method keys whose running body must throw from now on
    removed_types: list[str] = field(default_factory=list)  # left loaded and unused
    attributes: list[str] = field(default_factory=list)  # keys of existing entities whose attributes changed
    moved: list[ChangedMethod] = field(default_factory=list)  # same code, new source lines (sequence points)
    refusals: list[Refusal] = field(default_factory=list)
    resigned: list[str] = field(default_factory=list)  # functions whose signature changed: deleted and added
    initializer_code: list[str] = field(default_factory=list)  # generated types only initializers run, edited
    record_fields: list[str] = field(default_factory=list)  # fields added to running records: 'Ns.Person.Email'

    @property
    def empty(self) -> bool:
        return not (self.changed or self.added_types or self.added_methods or self.added_fields
                    or self.added_properties or self.deleted or self.attributes or self.property_attributes)

    def summary(self) -> list[str]:
        """Human names of everything the delta will carry, for status lines."""
        assert self.new is not None or self.empty
        out = [c.name for c in self.changed]
        if self.new is not None:
            names = self.new.names
            out += [f"+{_type_display('T:' + names.typedef_name(r))}" for r in self.added_types if "@" not in names.own_name(T.TypeDef, r)]
            added_types = set(self.added_types)
            out += [f"+{display_name(names.key(T.MethodDef, m))}" for m in self.added_methods
                    if names.method_owner[m] not in added_types and "@" not in names.own_name(T.MethodDef, m)]
            out += [f"+{display_name(names.key(T.Field, f))}" for f in self.added_fields
                    if names.field_owner[f] not in added_types and "@" not in names.own_name(T.Field, f)]
        out += [f"-{display_name(k)}" for k in self.deleted if "@" not in k.split("|")[0].rpartition("::")[2]]
        out += [f"[attributes] {_member_of(k)}" for k in self.attributes]
        out += [f"[attributes] {k.split('|')[0].replace('::', '.')}" for k in self.property_attributes]
        return out


def _raw_bodies(build: Build) -> dict[int, bytes]:
    """MethodDef row -> the bytes from its body's start to the next body's (header, code, sections, padding), for
    every method with a body; cut in one pass from the body spans (memoized on the build, which the next save
    compares again as the running one)."""
    found: dict[int, bytes] | None = build.__dict__.get("_raw_bodies")
    if found is None:
        spans = body_spans(build, with_body(build))
        starts = spans.ordered_starts
        ends = [*starts[1:], starts[-1] + spans.length(starts[-1])] if starts else []
        found = build.__dict__["_raw_bodies"] = dict(zip(spans.order, map(spans.data.__getitem__,
                                                                           map(slice, starts, ends))))
    return found


def _type_display(key: str) -> str:
    return key[2:].replace("\u2502", "|")


def _member_of(key: str) -> str:
    return display_name(key) if key.startswith(("M:", "F:")) else _type_display(key)


def _is_initializer(key: str) -> bool:
    name = display_name(key)
    return name.endswith("..cctor") or (name.startswith("<StartupCode$") and name.endswith(".main@"))


def _is_startup_cctor(key: str) -> bool:
    """The static constructor of a file's startup class: it computes the file's module-level values."""
    return key.startswith("M:<StartupCode$") and display_name(key).endswith("..cctor")


def _module_value(field_name: str, build: Build) -> str:
    """'<StartupCode$App>.$Demo.Lib.table@31' -> 'Demo.Lib.table' (the value as the user wrote it). The startup
    class is named after the file, not the module: the module is the one type with the value's getter."""
    owner, _, value = field_name.rpartition(".")
    value = value.split("@")[0]
    modules = {name.rpartition(".")[0] for name in map(display_name, build.methods) if name.endswith(f".get_{value}")}
    if len(modules) == 1:
        return f"{modules.pop()}.{value}"
    return owner.split(".$", 1)[-1] + "." + value


def _owner_name(key: str) -> str:
    return key[2:].split("::", 1)[0]


class _Differ:
    def __init__(self, old: Build, new: Build, capabilities: Iterable[str] | None,
                 carried: Carried = NOTHING) -> None:
        self.old = old
        self.new = new
        self.carried = carried  # entities compiled as they were: never compared (hotreload.carry)
        self.caps = set(capabilities) if capabilities is not None else None
        self.result = Diff(new=new)
        self._initializer_types: set[int] | None = None
        self._delegate_targets: set[int] | None = None
        self.reshaped: set[str] = set()  # records whose fields this save adds or removes
        self._appended: set[str] | None = None
        self._tokens_checked: set[int] = set()  # raw tokens whose keys were compared in both builds
        self._tokens_same: set[int] = set()  # those that name the same entity (or the same string) in both

    def refuse(self, kind: K, member: str, detail: str = "", hint: str = "restart the app to pick it up") -> None:
        self.result.refusals.append(Refusal(kind, member, detail, hint))

    def needs(self, capability: str, what: str, member: str) -> bool:
        """False (and a refusal) when the running runtime lacks `capability`."""
        if self.caps is None or capability in self.caps:
            return True
        self.refuse(K.CAPABILITY, member, f"{what} needs the {capability} capability, which it lacks")
        return False

    def appended_cases(self) -> set[str]:
        """Unions whose cases changed (their `Tags` constants, in order), each refused once, by name: cases added
        after the others would fit the running values, but a constant added by hot reload is listed twice by the
        runtime's reflection (a field of its own and a literal), and F# reflection fails on the union; a case
        inserted before others, removed or renamed would make the running values' tags name other cases."""
        if self._appended is None:
            self._appended = set()
            for key, rid in self.old.types.items():
                if self.old.fsharp_kinds.get(rid) != _UNION or key not in self.new.types:
                    continue
                name = key[2:]
                before = self._tags(self.old, name)
                after = self._tags(self.new, name)
                if before == after:
                    continue
                if before and after[:len(before)] == before:
                    self._appended.add(name)  # said once here, not again for each member of the case
                    added = ", ".join(after[len(before):])
                    self.refuse(K.UNION_CASE, _type_display(key), f"case {added} added after the others: the .NET "
                                "runtime would list the new case's tag constant twice to reflection, which breaks F# "
                                "printing (%A) and serializers of the union")
                else:
                    self.refuse(K.UNION_CASE, _type_display(key), "a case inserted before others, removed or renamed: "
                                "the running values' tags would name other cases")
        return self._appended

    @staticmethod
    def _tags(build: Build, union: str) -> list[str]:
        rid = build.types.get(f"T:{union}/Tags")
        return [build.names.own_name(T.Field, f) for f in build.fields_of(rid)] if rid else []

    def kind_of_old(self, type_name: str) -> int:
        rid = self.old.types.get("T:" + type_name)
        return self.old.fsharp_kinds.get(rid, 0) if rid else 0

    def is_value_type(self, build: Build, rid: int) -> bool:
        base = build.names.extends_key(build.asm.md.row(T.TypeDef, rid)[3])
        return base.endswith(("]System.ValueType", "]System.Enum"))

    def is_generic_type(self, build: Build, rid: int) -> bool:
        return (int(T.TypeDef), rid) in build.generic_params

    # ---- types ---------------------------------------------------------------------------------------
    def types(self) -> None:
        old, new, result = self.old, self.new, self.result
        old_types, new_types = old.types, new.types
        added = [new_types[k] for k in new_types.keys() - old_types.keys()]
        for rid in sorted(added, key=lambda r: (new.names.depth(r), r)):
            key = new.names.key(T.TypeDef, rid)
            if key in old.retired and "@" in key and not new.methods_of(rid) and not new.fields_of(rid):
                continue  # a member-less helper (`T_44Bytes@`, array data) an earlier build had: still loaded, reused
            enclosing = new.names.enclosing.get(rid)
            if enclosing and "@" not in new.names.own_name(T.TypeDef, rid) \
                    and self.kind_of_old(new.names.typedef_name(enclosing)) == _UNION \
                    and new.names.own_name(T.TypeDef, rid) != "Tags" \
                    and new.names.typedef_name(enclosing) not in self.appended_cases():
                self.refuse(K.UNION_CASE, _type_display(key).rpartition("/")[0],
                            "a union's cases are part of its layout; values already built would not match")
                continue
            if not self.needs("NewTypeDefinition", "adding types", _type_display(key)):
                continue
            if new.asm.md.rows(T.EventMap) and any(p == rid for p, _ in new.asm.md.rows(T.EventMap)):
                self.refuse(K.EVENTS, _type_display(key), "events on added types are not supported yet")
                continue
            result.added_types.append(rid)
            result.added_methods += list(new.methods_of(rid))
            result.added_fields += list(new.fields_of(rid))
        for key in sorted(old_types.keys() - new_types.keys()):
            name = _type_display(key)
            parent = name.rpartition("/")[0]
            if "@" not in name.rpartition("/")[2] and parent and self.kind_of_old(parent) == _UNION:
                self.refuse(K.UNION_CASE, parent,
                            "a union's cases are part of its layout; values already built would not match")
            else:
                result.removed_types.append(name)
        carried = self.carried.types
        for key in sorted(old_types.keys() & new_types.keys()):
            if carried.get(new_types[key]) == old_types[key]:
                continue
            before, after = old.type_shape(old_types[key]), new.type_shape(new_types[key])
            if before == after:
                continue
            name = _type_display(key)
            if before[0] != after[0]:
                self.refuse(K.TYPE_ATTRIBUTES, name, "accessibility, sealed/abstract or layout flags changed"
                            + (" (a union's first case without data, or its second case, changes how F# stores it)"
                               if self.kind_of_old(key[2:]) == _UNION else "") + f": {_NO_CAPABILITY} changes them")
            if before[1] != after[1]:
                self.refuse(K.BASE_TYPE, name, f"{str(before[1])[2:] or 'none'} -> {str(after[1])[2:] or 'none'}: "
                            f"{_NO_CAPABILITY} changes a loaded type's base type")
            if before[2] != after[2]:
                self.refuse(K.INTERFACES, name, f"implemented interfaces changed: {_NO_CAPABILITY} adds an interface "
                            "to a loaded type or removes one")
            if before[3] != after[3]:
                params_before = cast(tuple[tuple[object, ...], ...], before[3])
                params_after = cast(tuple[tuple[object, ...], ...], after[3])
                same_params = [p[:3] for p in params_before] == [p[:3] for p in params_after]
                self.refuse(K.GENERIC_CONSTRAINT if same_params else K.GENERIC_PARAMETERS, name)

    # ---- fields --------------------------------------------------------------------------------------
    def fields(self) -> None:
        old, new, result = self.old, self.new, self.result
        old_fields, new_fields = old.fields, new.fields
        added_types = set(result.added_types)
        old_type_names = old.types.keys()
        added = {k: new_fields[k] for k in new_fields.keys() - old_fields.keys()
                 if new.names.field_owner[new_fields[k]] not in added_types}
        removed = {k: old_fields[k] for k in old_fields.keys() - new_fields.keys()
                   if "T:" + _owner_name(k) in old_type_names and "T:" + _owner_name(k) in new.types}
        retyped = ({display_name(k) for k in added} & {display_name(k) for k in removed}) \
            - {display_name(k) for k in added if _owner_name(k).startswith("<StartupCode$")}
        for name in sorted(retyped):
            self.refuse(K.FIELD_TYPE, name, "values already stored would not match the new type")
        for key, rid in sorted(added.items()):
            name = display_name(key)
            if name in retyped:
                continue
            owner = new.names.field_owner[rid]
            owner_name = _owner_name(key)
            if self.kind_of_old(owner_name) == _RECORD and not self.is_value_type(new, owner) \
                    and not new.field_flags(rid) & 0x10:
                if self.needs("AddInstanceFieldToExistingType", "adding record fields", _type_display("T:" + owner_name)):
                    result.added_fields.append(rid)  # the running records read its default value
                    result.record_fields.append(name.replace("/", ".").rstrip("@"))
                    self.reshaped.add(owner_name)
            elif self.kind_of_old(owner_name) == _UNION and owner_name in self.appended_cases() \
                    and new.field_flags(rid) & 0x10:
                continue  # a nullary case's value: the case is refused once, by appended_cases
            elif self.kind_of_old(owner_name) == _UNION and not self.is_value_type(new, owner):
                self.refuse(K.LAYOUT, owner_name, "F# stores this union's cases differently now (a tag field from "
                            "4 cases on, a class per case from the second): values already built would not match")
            elif self.layout_fixed(owner_name, owner):
                self.refuse(K.LAYOUT, owner_name, "a struct's values are stored in place: their size cannot change"
                            if self.is_value_type(new, owner) else "values already built have the old layout")
            elif owner_name.startswith("<StartupCode$"):  # a module-level value: computed after the update
                if self.needs("AddStaticFieldToExistingType", "adding module-level values", _module_value(name, new)):
                    result.added_fields.append(rid)
            elif rid in new.field_rvas and not self.needs("AddFieldRva", "changing array literal data", name):
                continue
            elif self.needs("GenericAddFieldToExistingType" if self.is_generic_type(new, owner) else
                            "AddStaticFieldToExistingType" if new.field_flags(rid) & 0x10 else
                            "AddInstanceFieldToExistingType", "adding fields", name):
                result.added_fields.append(rid)
        for key in sorted(removed):
            name = display_name(key)
            if name in retyped or old.fields[key] in old.field_rvas:
                continue  # data fields are replaced, never removed (see match.py)
            owner_name = _owner_name(key)
            owner_rid = old.types["T:" + owner_name]
            if self.kind_of_old(owner_name) == _RECORD and not self.is_value_type(old, owner_rid) \
                    and not old.field_flags(old.fields[key]) & 0x10:
                self.reshaped.add(owner_name)  # the running records keep the field, unused; its property is deleted
            elif self.layout_fixed(owner_name, owner_rid, build=old):
                self.refuse(K.LAYOUT, owner_name, "a struct's values are stored in place: their size cannot change"
                            if self.is_value_type(old, owner_rid) else "values already built have the old layout")
            elif owner_name.startswith("<StartupCode$"):
                continue  # a removed module-level value: its field stays, unused; its getter is deleted
            else:
                self.refuse(K.REMOVED_FIELD, name, "the running objects still hold it")
        for key in sorted(old_fields.keys() & new_fields.keys()):
            if old.field_flags(old_fields[key]) != new.field_flags(new_fields[key]):
                self.refuse(K.FIELD_ATTRIBUTES, display_name(key))

    def layout_fixed(self, owner_name: str, owner_rid: int, build: Build | None = None) -> bool:
        build = build or self.new
        return self.kind_of_old(owner_name) in (_UNION, _RECORD) or self.is_value_type(build, owner_rid)

    # ---- methods -------------------------------------------------------------------------------------
    def methods(self) -> None:
        old, new, result = self.old, self.new, self.result
        old_methods, new_methods = old.methods, new.methods
        added_types = set(result.added_types)
        added = {k: new_methods[k] for k in new_methods.keys() - old_methods.keys()
                 if new.names.method_owner[new_methods[k]] not in added_types}
        removed = {k: old_methods[k] for k in old_methods.keys() - new_methods.keys()
                   if "T:" + _owner_name(k) in new.types}
        # A function whose parameters or return type changed is a new method; the old one is deleted (it throws
        # MissingMethodException naming it, for code that still holds it). Constructors stay refused: the values
        # they built have the old shape.
        constructors = {display_name(k) for k in added if display_name(k).endswith(("..ctor", "..cctor"))} \
            & {display_name(k) for k in removed}
        reshaped = {name for name in constructors  # a record's fields changed: its constructor is replaced too
                    if name.endswith("..ctor") and name[:-6] in {_type_display("T:" + o) for o in self.reshaped}}
        resigned = constructors - reshaped
        result.resigned = sorted({display_name(k) for k in added} & {display_name(k) for k in removed} - resigned)
        layout_refused = {r.member for r in self.result.refusals if r.kind == K.LAYOUT}
        for name in sorted(resigned):
            if name.endswith("..ctor") and name[:-6] in layout_refused:
                continue  # the record's constructor follows its fields: already said
            self.refuse(K.SIGNATURE, name, "parameter types changed; values built by the old constructor are "
                        "still running")
        for key, rid in sorted(added.items()):
            name = display_name(key)
            if name in resigned:
                continue
            owner = new.names.method_owner[rid]
            flags = new.method_flags(rid)[0]
            if name.endswith(".cctor"):
                if not _owner_name(key).startswith("<StartupCode$"):
                    self.refuse(K.ADDED_INITIALIZER, name, "it would not run for a type already initialized")
                elif self.needs("AddMethodToExistingType", "adding module-level values", name):
                    result.added_methods.append(rid)  # never runs: its values are computed after the update
            elif flags & _VIRTUAL:
                self.refuse(K.ADDED_VIRTUAL, name, f"{_NO_CAPABILITY} adds a virtual, abstract or override method "
                            "to a loaded type (its method table is fixed when it loads)")
            elif self.needs("GenericAddMethodToExistingType" if self.is_generic_type(new, owner)
                            or (int(T.MethodDef), rid) in new.generic_params else "AddMethodToExistingType",
                            "adding methods", name):
                result.added_methods.append(rid)
        for key, rid in sorted(removed.items()):
            name = display_name(key)
            if name in resigned:
                continue
            if name in reshaped:
                result.deleted.append(key)
            elif old.method_flags(rid)[0] & _VIRTUAL:
                self.refuse(K.REMOVED_VIRTUAL, name, f"{_NO_CAPABILITY} removes a virtual, abstract or override "
                            "method from a loaded type (its method table is fixed when it loads)")
            elif _is_startup_cctor(key):
                continue  # the file has no module-level values left: the old initializer ran and stays
            elif _is_initializer(key) or name.endswith(".ctor"):
                self.refuse(K.REMOVED_INITIALIZER, name)
            else:
                result.deleted.append(key)
        # one loop over every method of both builds: rows and generic owners looked up directly, not per call
        old_rows, new_rows = old.asm.md.rows(T.MethodDef), new.asm.md.rows(T.MethodDef)
        table = int(T.MethodDef)
        old_generic = {row for t, row in old.generic_params if t == table}
        new_generic = {row for t, row in new.generic_params if t == table}
        carried = self.carried.methods
        for key in sorted(old_methods.keys() & new_methods.keys()):
            orid, nrid = old_methods[key], new_methods[key]
            if carried.get(nrid) == orid:
                continue
            orow, nrow = old_rows[orid - 1], new_rows[nrid - 1]
            if orow[1] != nrow[1] or orow[2] != nrow[2]:  # (see Build.method_flags)
                self.refuse(K.METHOD_ATTRIBUTES, display_name(key), "accessibility, static or virtual changed")
                continue
            if (orid in old_generic or nrid in new_generic) \
                    and old.generic_params.get((table, orid)) != new.generic_params.get((table, nrid)):
                self.refuse(K.GENERIC_CONSTRAINT, display_name(key),
                            "code already compiled for the old constraints is still running")
                continue
            if not self.same_body(orid, nrid):
                self.body_changed(key, orid, nrid)

    def same_body(self, orid: int, nrid: int) -> bool:
        """Whether two methods have the same code. Bodies with the same bytes whose tokens name the same entities
        in both builds are (each token compared once per save, not once per body); any other pair is compared in
        normalized form. Most bodies of a structural save are the first kind: normalizing all of them was most
        of its cost."""
        old, new = self.old, self.new
        raw = _raw_bodies(old).get(orid)
        if raw and raw == _raw_bodies(new).get(nrid):  # (b"": two rows sharing one body, compared normalized)
            tokens = body_tokens(raw)
            unknown = tokens - self._tokens_checked
            if unknown:
                self._tokens_checked |= unknown
                self._tokens_same.update(t for t in unknown if old.names.token_key(t) == new.names.token_key(t))
            if self._tokens_same.issuperset(tokens):
                return True
        return old.normalized(orid) == new.normalized(nrid)

    def initializer_types(self) -> set[int]:
        """Compiler-generated types (closures, state machines) of the new build that static initializers create,
        directly or through one another: a module-level value's lambdas, which ran once, when it was computed."""
        if self._initializer_types is None:
            names = self.new.names
            generated = {rid for rid in names.enclosing if is_line_named(names.own_name(T.TypeDef, rid))}
            todo = [rid for rid in self.new.initializer_methods
                    if names.method_owner[rid] not in generated and _is_initializer(names.key(T.MethodDef, rid))]
            found: set[int] = set()
            targets: set[int] = set()
            while todo:
                method = todo.pop()
                targets |= self._address_taken(method)
                for rid in self.new.referenced_types(method) & generated - found:
                    found.add(rid)
                    todo += list(self.new.methods_of(rid))
            self._initializer_types = found
            self._delegate_targets = targets
        return self._initializer_types

    def _address_taken(self, rid: int) -> set[int]:
        """Methods whose address the body of `rid` takes (ldftn, ldvirtftn): a delegate made of them."""
        body = self.new.body(rid)
        out: set[int] = set()
        if body is not None:
            for ins in instructions(body.code):
                if ins.opcode in (0xFE06, 0xFE07):
                    table, row = split_token(struct.unpack_from("<I", body.code, ins.operand_offset)[0])
                    if table == T.MethodDef:
                        out.add(row)
        return out

    def body_changed(self, key: str, orid: int, nrid: int) -> None:
        """A method's code changed: an update, unless the runtime cannot take it."""
        new = self.new
        if _is_startup_cctor(key):
            pass  # module-level values: applied, then the edited ones are computed again (hotreload.module_values)
        elif display_name(key).endswith("..cctor") and _owner_name(key) in self.appended_cases():
            return  # the union's nullary cases: the case is refused once, by appended_cases
        elif display_name(key).endswith(".main@"):
            pass  # a top-level program's code: the entry point, applied and said as startup code (session.py)
        elif _is_initializer(key):
            self.refuse(K.INITIALIZER, display_name(key),
                        "runs at startup: initializers already ran and would not run again")
            return
        elif new.names.method_owner[nrid] in new.names.enclosing \
                and new.names.method_owner[nrid] in self.initializer_types() \
                and nrid not in (self._delegate_targets or set()):  # a delegate's code runs when it is invoked
            owner = new.names.typedef_name(new.names.method_owner[nrid])
            if owner not in self.result.initializer_code:  # the values that run it are computed again
                self.result.initializer_code.append(owner)
        if ((int(T.MethodDef), nrid) in new.generic_params
                or self.is_generic_type(new, new.names.method_owner[nrid])) \
                and not self.needs("GenericUpdateMethod", "editing generic code", display_name(key)):
            return
        self.result.changed.append(ChangedMethod(key, orid, nrid))

    # ---- properties and attributes ---------------------------------------------------------------------
    def properties(self) -> None:
        old, new, result = self.old, self.new, self.result
        for key in sorted(new.properties.keys() - old.properties.keys()):
            # a module-level value's property comes with its field and getter
            result.added_properties.append(new.properties[key])
        for key in sorted(old.properties.keys() - new.properties.keys()):
            if "T:" + key.split("::", 1)[0] in new.types:  # its getter is deleted; F# reflection reads attributes
                result.removed_properties.append(key)

    def attributes(self) -> None:
        old, new = self.old, self.new
        old_attrs, new_attrs = old.attributes, new.attributes
        skip = set(old.types.keys() ^ new.types.keys()) | set(old.methods.keys() ^ new.methods.keys()) \
            | set(old.fields.keys() ^ new.fields.keys())
        for key in sorted(old_attrs.keys() | new_attrs.keys()):
            if key in skip:
                continue
            if old_attrs.get(key, []) != new_attrs.get(key, []):
                if key.startswith("T:") and any("CompilationMappingAttribute" in a or "StructLayoutAttribute" in a
                                                for a in old_attrs.get(key, []) + new_attrs.get(key, [])
                                                if a not in old_attrs.get(key, []) or a not in new_attrs.get(key, [])):
                    self.refuse(K.TYPE_KIND, _member_of(key), "the F# type's kind or layout changed")
                elif self.needs("ChangeCustomAttributes", "changing attributes", _member_of(key)):
                    self.result.attributes.append(key)
        old_other, new_other = old.other_attributes, new.other_attributes
        for key in sorted(old_other.keys() | new_other.keys()):
            if old_other.get(key, []) == new_other.get(key, []):
                continue
            target, _, ident = key.partition(":")
            if target == "Param":
                method, _, number = ident.rpartition("#")
                if method in skip:
                    continue  # parameters of added or removed methods come and go with them
                what = "the return value of" if number == "0" else f"parameter {number} of"
                self.refuse(K.ATTRIBUTE_TARGET, display_name(method), f"attributes on {what} it changed",
                            _ATTRIBUTE_HINT)
            elif target in ("Property", "Event"):
                if key not in old_other and ident not in old.properties and ident not in old.events:
                    continue  # an added property or event: added with its attributes (or refused as such)
                if key not in new_other and ident not in new.properties and ident not in new.events:
                    continue  # a removed one (a type no longer used, say): goes with its accessors, or is refused so
                member = ident.split("|")[0].replace("::", ".")
                if target == "Property" and ident in old.properties and ident in new.properties:
                    if self.needs("ChangeCustomAttributes", "changing attributes", member):
                        self.result.property_attributes.append(ident)  # a record field's index among them
                else:
                    self.refuse(K.ATTRIBUTE_TARGET, member, f"attributes on the {target.lower()} changed",
                                _ATTRIBUTE_HINT)
            else:
                self.refuse(K.ATTRIBUTE_TARGET, f"the {target.lower()}", f"{target.lower()}-level attributes changed",
                            _ATTRIBUTE_HINT)

    def events(self) -> None:
        """Events of types that exist in both builds: the runtime's types cannot gain or lose one here."""
        old, new = self.old, self.new
        added_types = {new.names.typedef_name(r) for r in self.result.added_types}
        for key in sorted(old.events.keys() ^ new.events.keys()):
            owner = key.split("::", 1)[0]
            if owner in added_types or "T:" + owner not in old.types or "T:" + owner not in new.types:
                continue
            verb = "added" if key in new.events else "removed"
            self.refuse(K.EVENTS, key.replace("::", "."), f"{verb} event: hotreload cannot add or remove events of "
                        "a type that is already running")

    def run(self) -> Diff:
        self.types()
        self.fields()
        self.methods()
        self.properties()
        self.events()
        self.attributes()
        return self.result


def _moved_candidates(old: Build, new: Build, old_pdb: Pdb, new_pdb: Pdb,
                      carried: Carried = NOTHING) -> list[tuple[str, int, int]]:
    """(key, old row, new row) of methods in both builds whose sequence-point blobs differ (but for carried ones:
    their files are as they were)."""
    old_rows = old_pdb.md.rows(T.MethodDebugInformation)
    new_rows = new_pdb.md.rows(T.MethodDebugInformation)
    continued = carried.methods
    out = []
    for key, nrid in new.methods.items():
        if nrid in continued:
            continue
        orid = old.methods.get(key)
        if orid is None or orid > len(old_rows) or nrid > len(new_rows):
            continue
        if old_pdb.md.blob(old_rows[orid - 1][1]) != new_pdb.md.blob(new_rows[nrid - 1][1]):
            out.append((key, orid, nrid))
    return out


def _moved(old_pdb: Pdb, new_pdb: Pdb, candidates: list[tuple[str, int, int]], result: Diff) -> list[ChangedMethod]:
    """Methods whose code is the same but whose sequence points moved (lines inserted or removed above)."""
    changed = {c.key for c in result.changed}
    out: list[ChangedMethod] = []
    for key, orid, nrid in candidates:
        if key in changed:
            continue
        before, after = old_pdb.method_info(orid), new_pdb.method_info(nrid)
        if [(p.il_offset, old_pdb.document_name(p.document), p.start_line, p.start_column, p.end_line, p.end_column)
                for p in before.points] != \
                [(p.il_offset, new_pdb.document_name(p.document), p.start_line, p.start_column, p.end_line,
                  p.end_column) for p in after.points]:
            out.append(ChangedMethod(key, orid, nrid))
    return out


def diff_builds(old: Build, new: Build, capabilities: Iterable[str] | None = None,
                pdbs: tuple[Pdb | None, Pdb | None] = (None, None), unchanged_prefix: Collection[str] = ()) -> Diff:
    """What changed from `old` (the running code, running names) to `new` (a fresh build).

    `Diff.new` is `new` seen with running names for entities that only moved; it is what the delta writer
    reads and what the next diff compares against. `capabilities` (the runtime's) turns edits the runtime
    cannot take into refusals; None assumes everything the delta writer supports. With both builds' PDBs
    (old, new), methods that only moved lines are listed in `Diff.moved`, and `unchanged_prefix` (source paths the
    caller vouches `new` compiled as `old` was: the files before the first one the save changed, with the same flags
    and references) spares a structural save the comparison of the entities whose code lies there only
    (hotreload.carry).
    """
    old_pdb, new_pdb = pdbs
    # only bodies changed: no matching, no comparison entity by entity (unless generated entities of one group
    # changed: two lambdas that swap lines keep every name, and only matching tells that from two edits)
    changed = changed_bodies(old, new) if same_structure(old, new) else None
    if changed is not None and not may_have_swapped(old, changed):
        canonical = old.carried_to(new.asm, changed)
        for memo in ("_body_spans", "_with_body", "_methods_but_rvas"):  # found for `new`: the next save's running build is `canonical`
            if memo in new.__dict__:
                canonical.__dict__[memo] = new.__dict__[memo]
        differ = _Differ(old, canonical, capabilities)
        for rid in changed:
            differ.body_changed(canonical.names.key(T.MethodDef, rid), rid, rid)
        result = differ.result
        canonical.retired = old.retired
        if old_pdb is not None and new_pdb is not None:
            moved = moved_candidates(old_pdb, new_pdb, new.asm.md.row_counts[T.MethodDef])
            keys = canonical.names
            result.moved = _moved(old_pdb, new_pdb, [(keys.key(T.MethodDef, r), r, r) for r in moved], result)
        return result
    sources = Sources(old_pdb, new_pdb) if old_pdb is not None and new_pdb is not None else None
    carried = carried_rows(old, new, sources, unchanged_prefix) if sources is not None else NOTHING
    matching = match_builds(old, new, sources, carried)
    canonical = new.renamed(matching.renames)
    if carried:
        continued = {table: carried.of(table) for table in (T.TypeDef, T.MethodDef, T.Field)}
        for table, rows in continued.items():
            canonical.names.adopt(old.names, table, rows)
        canonical.adopt_attributes(old, continued)
    canonical.retired = frozenset((old.retired | old.types.keys()) - canonical.types.keys())
    result = _Differ(old, canonical, capabilities, carried).run()
    result.refusals = matching.refusals + result.refusals
    if old_pdb is not None and new_pdb is not None:
        result.moved = _moved(old_pdb, new_pdb, _moved_candidates(old, canonical, old_pdb, new_pdb, carried), result)
    return result
