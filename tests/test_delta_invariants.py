"""Writer invariants, pinned: every delta read back by System.Reflection.Metadata, its EncLog and EncMap exact.

One baseline (`Hot.Inv`) and one edit per kind of row a delta can add: a method with parameters, a parameter
with an attribute (new reference rows), static and instance fields, properties (on a type with and without a
PropertyMap), a nested type, and custom attributes changed, added and removed. For each, the full EncLog is
spelled out in the order the runtime applies it (docs: "Delta format"), with row ids taken from the baseline
as SRM reads it: (rows the table had) + 1 for every added row, the baseline's own row for an updated one.
SRM then reads what those rows say (names, parents, flags), and the runtime takes the delta and runs it.

The writer-level checks (`check_enc_tables`, the sorted-table bits, fat headers that keep InitLocals) have
unit tests at the end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fsharp_testkit import ASSEMBLY, BuildFarm, FsBuild, Srm, Variant

from hotreload.app import HostedApp
from hotreload.baseline import Baseline
from hotreload.delta import Delta, build_delta, load_build
from hotreload.diff import Diff, diff_builds
from hotreload.metadata.il import MethodBody, encode_body, parse_body
from hotreload.metadata.reader import MetadataImage
from hotreload.metadata.schema import SCHEMA, CustomAttributeType, HasCustomAttribute, HasSemantics, T, token
from hotreload.metadata.writer import (
    DeltaInvariantError,
    check_added_rows,
    check_enc_tables,
    write_metadata,
    write_tables,
)
from hotreload.runtime import RuntimeInfo, UpdateApplier

ADD_METHOD, ADD_FIELD, ADD_PARAMETER, ADD_PROPERTY = 1, 2, 3, 4
GETTER, SETTER = 0x2, 0x1  # MethodSemantics flags

# One definition per key; a variant replaces some of them. `Seed` makes the baseline reference what the added
# fields and properties need ([<DefaultValue>], the accessors' attributes), so those deltas add no references.
BASE: dict[str, str] = {
    "counter": "type Counter() =\n    let mutable n = 0\n    member this.Next() = n <- n + 1; n\n    member this.Count = n",
    "plain": "type Plain() =\n    member this.Get() = 1",
    "seed": "type Seed() =\n    [<DefaultValue>] static val mutable private seed: int\n"
            "    [<DefaultValue>] val mutable seedExtra: int",
    "g": '[<System.Obsolete("first")>]\nlet g () = 1',
    "h": "let h () = 7",
    "k": '[<System.Obsolete("gone")>]\nlet k () = 9',
    "extra": "",
    "main": "[<EntryPoint>]\nlet main _ = 0",
}

EDITS: dict[str, dict[str, str]] = {
    "method": {"extra": "let addedSum (a: int, b: int) = a * 10 + b"},
    "param_attr": {"plain": BASE["plain"] + "\n    static member Count([<System.ParamArray>] xs: int[]) = xs.Length"},
    "fields": {"plain": "type Plain() =\n    [<DefaultValue>] static val mutable private total: int\n"
                        "    [<DefaultValue>] val mutable extra: int\n    member this.Get() = 1"},
    "property": {"counter": BASE["counter"] + "\n    member this.Twice = n * 2",
                 "plain": BASE["plain"] + "\n    member this.Value = 5"},
    "nested": {"extra": "type Added() =\n    member this.Get() = 3\nlet useAdded () = Added().Get()"},
    "attributes": {"g": '[<System.Obsolete("second")>]\nlet g () = 1', "h": '[<System.Obsolete("new")>]\nlet h () = 7',
                   "k": "let k () = 9"},
}


# generations 2 and 3 on top of "attributes": k gets an attribute again (a new row after the one h got), then
# h's attribute changes (its row rewritten in place)
LATER = {"attributes2": {**EDITS["attributes"], "k": '[<System.Obsolete("back")>]\nlet k () = 9'}}
LATER["attributes3"] = {**LATER["attributes2"], "h": '[<System.Obsolete("newer")>]\nlet h () = 7'}


def inv_source(edits: dict[str, str] | None = None) -> str:
    return "module Hot.Inv\n\n" + "\n".join(dict(BASE, **(edits or {})).values()) + "\n"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FsBuild]]:
    kept = os.environ.get("HOTRELOAD_TEST_BUILDS")
    root = Path(kept) / "invariants" if kept else tmp_path_factory.mktemp("invariants")
    variants = [Variant("base", inv_source(), "base")] + [Variant(n, inv_source(e), n) for n, e in EDITS.items()]
    variants += [Variant(n, inv_source(e), n) for n, e in LATER.items()]
    farm = BuildFarm(root, variants)
    try:
        yield farm.get(v.name for v in variants)
    finally:
        farm.close()


# ---- reading with SRM ---------------------------------------------------------------------------------------


class Base:
    """The baseline as SRM reads it from the assembly file: row counts and the rows of named entities."""

    def __init__(self, srm: Srm, build: FsBuild) -> None:
        self.srm = srm
        self.data = build.dll.read_bytes()
        self.pe, self.reader = srm.read_pe(build.dll)

    def rows(self, table: T) -> int:
        return self.srm.row_count(self.reader, table)

    def _type(self, name: str) -> Any:
        for h in self.reader.TypeDefinitions:
            if str(self.reader.GetString(self.reader.GetTypeDefinition(h).Name)) == name:
                return h
        raise LookupError(name)

    def typedef(self, name: str) -> int:
        return self.srm.token(self._type(name)) & 0xFFFFFF

    def _method(self, type_name: str, name: str) -> Any:
        for h in self.reader.GetTypeDefinition(self._type(type_name)).GetMethods():
            if str(self.reader.GetString(self.reader.GetMethodDefinition(h).Name)) == name:
                return h
        raise LookupError(f"{type_name}.{name}")

    def method(self, type_name: str, name: str) -> int:
        return self.srm.token(self._method(type_name, name)) & 0xFFFFFF

    def attribute_rows(self, type_name: str, method: str) -> list[int]:
        attrs = self.reader.GetMethodDefinition(self._method(type_name, method)).GetCustomAttributes()
        return [self.srm.token(h) & 0xFFFFFF for h in attrs]

    def property_map(self, type_name: str) -> int | None:
        """PropertyMap row of a type (SRM has no API for the table: its rows read at SRM's offsets)."""
        offset = int(self.pe.PEHeaders.MetadataStartOffset) + int(
            self.srm.X.GetTableMetadataOffset(self.reader, self.srm.TableIndex.PropertyMap))
        size = int(self.srm.X.GetTableRowSize(self.reader, self.srm.TableIndex.PropertyMap))
        fmt = {4: "<HH", 8: "<II"}[size]
        owner = self.typedef(type_name)
        for rid in range(1, self.rows(T.PropertyMap) + 1):
            if struct.unpack_from(fmt, self.data, offset + (rid - 1) * size)[0] == owner:
                return rid
        return None


@dataclass
class Edit:
    name: str
    diff: Diff
    delta: Delta
    base: Base
    reader: Any  # SRM's MetadataReader over the delta alone
    srm: Srm

    @property
    def enc_log(self) -> list[tuple[int, int]]:
        return self.srm.enc_log(self.reader)

    @property
    def enc_map(self) -> list[int]:
        return self.srm.enc_map(self.reader)

    def running_rows(self, table: T) -> list[int]:
        """Running-module row ids of the delta's rows of `table`, in the delta's row order (its EncMap's)."""
        return [tok & 0xFFFFFF for tok in self.enc_map if tok >> 24 == table]

    def raw_rows(self, table: T) -> list[tuple[int, ...]]:
        """The delta's rows of a table SRM has no row API for, read at SRM's offsets (every index 4 bytes)."""
        fmt = "<" + "".join("H" if kind == "u2" else "I" for _, kind in SCHEMA[table])
        size = int(self.srm.X.GetTableRowSize(self.reader, self.srm.TableIndex(int(table))))
        assert struct.calcsize(fmt) == size, table.name
        offset = int(self.srm.X.GetTableMetadataOffset(self.reader, self.srm.TableIndex(int(table))))
        count = self.srm.row_count(self.reader, table)
        return [struct.unpack_from(fmt, self.delta.metadata, offset + i * size) for i in range(count)]

    def _heap_reader(self, handle: Any) -> tuple[Any, Any]:
        """(reader, handle) for a heap handle the delta holds: the baseline's heap or this delta's, as SRM's
        MetadataAggregator maps it from the baseline's heap sizes."""
        from System.Collections.Generic import List  # type: ignore[import-not-found]
        from System.Reflection.Metadata import MetadataReader  # type: ignore[import-not-found]

        deltas = List[MetadataReader]()
        deltas.Add(self.reader)
        aggregator = self.srm.MetadataAggregator(self.base.reader, deltas)
        relative, generation = aggregator.GetGenerationHandle(self.srm.handle(handle))
        return (self.reader if int(generation) == 1 else self.base.reader), relative

    def string(self, handle: Any) -> str:
        reader, relative = self._heap_reader(handle)
        return str(reader.GetString(self.srm.MetadataTokens.StringHandle(self.srm.heap_offset(relative))))

    def blob(self, offset: int) -> bytes:
        reader, relative = self._heap_reader(self.srm.MetadataTokens.BlobHandle(offset))
        return self.srm.to_py(reader.GetBlobBytes(self.srm.MetadataTokens.BlobHandle(self.srm.heap_offset(relative))))

    def method_names(self) -> list[str]:
        return [self.string(self.reader.GetMethodDefinition(self.srm.MetadataTokens.MethodDefinitionHandle(i)).Name)
                for i in range(1, self.srm.row_count(self.reader, T.MethodDef) + 1)]

    def params(self) -> list[tuple[str, int]]:
        out = []
        for i in range(1, self.srm.row_count(self.reader, T.Param) + 1):
            p = self.reader.GetParameter(self.srm.MetadataTokens.ParameterHandle(i))
            out.append((self.string(p.Name), int(p.SequenceNumber)))
        return out

    def attributes(self) -> list[tuple[int, int, bytes]]:
        """(parent token, constructor token, value blob) of the delta's CustomAttribute rows, in row order."""
        out = []
        for i in range(1, self.srm.row_count(self.reader, T.CustomAttribute) + 1):
            ca = self.reader.GetCustomAttribute(self.srm.MetadataTokens.CustomAttributeHandle(i))
            parent = 0 if ca.Parent.IsNil else self.srm.token(ca.Parent)
            out.append((parent, self.srm.token(ca.Constructor), self.blob(self.srm.heap_offset(ca.Value))))
        return out


@pytest.fixture(scope="module")
def edits(builds: dict[str, FsBuild], srm: Srm) -> dict[str, Edit]:
    """Each variant's delta against a fresh baseline of `base` (generation 1 every time)."""
    out = {}
    for name in EDITS:
        old, old_pdb = load_build(str(builds["base"].dll))
        new, new_pdb = load_build(str(builds[name].dll))
        diff = diff_builds(old, new, None, (old_pdb, new_pdb))
        assert not diff.refusals, [str(r) for r in diff.refusals]
        assert diff.new is not None
        delta = build_delta(Baseline(old, old_pdb), diff.new, new_pdb, diff)
        out[name] = Edit(name, diff, delta, Base(srm, builds["base"]), srm.read_metadata(delta.metadata), srm)
    return out


@pytest.fixture(params=list(EDITS))
def edit(request: pytest.FixtureRequest, edits: dict[str, Edit]) -> Edit:
    return edits[request.param]


def log(table: T, rid: int, op: int = 0) -> tuple[int, int]:
    return token(table, rid), op


# ---- invariants of every delta --------------------------------------------------------------------------------


@pytest.mark.runtime
def test_enc_map_is_distinct_sorted_and_lists_every_row(edit: Edit) -> None:
    enc_map = edit.enc_map
    assert enc_map, edit.name
    assert all(a < b for a, b in itertools.pairwise(enc_map)), f"{edit.name}: EncMap not strictly increasing"
    assert len(set(enc_map)) == len(enc_map)
    assert not any(tok >> 24 == T.Module for tok in enc_map)
    for t in T:
        if t < 0x30 and t not in (T.Module, T.EncLog, T.EncMap):
            assert len(edit.running_rows(t)) == edit.srm.row_count(edit.reader, t), t.name
    # every row of the delta is logged exactly once as a Default entry; Add* entries name parents
    assert sorted(tok for tok, op in edit.enc_log if op == 0) == enc_map


@pytest.mark.runtime
def test_add_entries_are_followed_by_the_row_they_add(edit: Edit) -> None:
    pairs = {ADD_METHOD: (T.TypeDef, T.MethodDef), ADD_FIELD: (T.TypeDef, T.Field),
             ADD_PARAMETER: (T.MethodDef, T.Param), ADD_PROPERTY: (T.PropertyMap, T.Property)}
    entries = edit.enc_log
    added = 0
    for (tok, op), (nxt, nxt_op) in itertools.pairwise([*entries, (0, 0)]):
        if op:
            parent, child = pairs[op]
            assert (tok >> 24, nxt >> 24, nxt_op) == (parent, child, 0), (edit.name, hex(tok), op)
            # the added row is new: the next row id of its table (no gaps, all generations counted)
            assert nxt & 0xFFFFFF > edit.base.rows(child)
            added += 1
    for t in (T.TypeDef, T.MethodDef, T.Field, T.Param, T.Property, T.CustomAttribute, T.TypeRef, T.MemberRef):
        new = [r for r in edit.running_rows(t) if r > edit.base.rows(t)]
        assert new == list(range(edit.base.rows(t) + 1, edit.base.rows(t) + 1 + len(new))), (edit.name, t.name)
        assert edit.delta.added_rows[t] == len(new)
    # every added member row (method, field, parameter, property) has its Add* entry, and no other row has one
    members = (T.MethodDef, T.Field, T.Param, T.Property)
    assert added == sum(edit.delta.added_rows[t] for t in members), edit.name


@pytest.mark.runtime
def test_custom_attributes_are_found_by_parent(edit: Edit) -> None:
    """SRM looks attributes up by parent with a binary search when the header says the table is sorted: a
    delta whose CustomAttribute rows are in row-id order (not parent order) must not claim it is."""
    srm, reader = edit.srm, edit.reader
    md = MetadataImage(edit.delta.metadata)
    offset = md.streams["#-"][0]
    sorted_mask = struct.unpack_from("<Q", edit.delta.metadata, offset + 16)[0]
    assert not sorted_mask & (1 << T.CustomAttribute)
    rows = edit.attributes()
    for i, (parent, _ctor, _value) in enumerate(rows, 1):
        if parent:
            handle = srm.MetadataTokens.EntityHandle(parent)
            found = [srm.token(h) & 0xFFFFFF for h in reader.GetCustomAttributes(handle)]
            assert i in found, (edit.name, hex(parent), found)


# ---- each kind of edit, its EncLog exactly ---------------------------------------------------------------------


@pytest.mark.runtime
def test_added_method_with_parameters(edit_of: Any) -> None:
    e: Edit = edit_of("method")
    b = e.base
    m, p = b.rows(T.MethodDef) + 1, b.rows(T.Param)
    assert e.enc_log == [
        log(T.TypeDef, b.typedef("Inv"), ADD_METHOD), log(T.MethodDef, m),
        log(T.MethodDef, m, ADD_PARAMETER), log(T.Param, p + 1),
        log(T.MethodDef, m, ADD_PARAMETER), log(T.Param, p + 2),
    ]
    assert e.enc_map == [token(T.MethodDef, m), token(T.Param, p + 1), token(T.Param, p + 2)]
    assert e.method_names() == ["addedSum"]
    assert e.params() == [("a", 1), ("b", 2)]


@pytest.mark.runtime
def test_added_parameter_with_an_attribute_and_new_references(edit_of: Any) -> None:
    e: Edit = edit_of("param_attr")
    b = e.base
    tr, mr, m, p, ca = (b.rows(t) + 1 for t in (T.TypeRef, T.MemberRef, T.MethodDef, T.Param, T.CustomAttribute))
    assert e.enc_log == [
        log(T.TypeRef, tr), log(T.MemberRef, mr),
        log(T.TypeDef, b.typedef("Plain"), ADD_METHOD), log(T.MethodDef, m),
        log(T.MethodDef, m, ADD_PARAMETER), log(T.Param, p),
        log(T.CustomAttribute, ca),
    ]
    type_ref = e.reader.GetTypeReference(e.srm.MetadataTokens.TypeReferenceHandle(1))
    assert (e.string(type_ref.Namespace), e.string(type_ref.Name)) == ("System", "ParamArrayAttribute")
    member_ref = e.reader.GetMemberReference(e.srm.MetadataTokens.MemberReferenceHandle(1))
    assert (e.string(member_ref.Name), e.srm.token(member_ref.Parent)) == (".ctor", token(T.TypeRef, tr))
    assert e.method_names() == ["Count"]
    assert e.params() == [("xs", 1)]
    # the attribute's parent is the added Param row, its constructor the added MemberRef
    assert e.attributes() == [(token(T.Param, p), token(T.MemberRef, mr), b"\x01\x00\x00\x00")]


@pytest.mark.runtime
def test_added_static_and_instance_fields(edit_of: Any) -> None:
    """`static val mutable` is a static field plus a property with accessors in F#; `val mutable` a plain
    instance field. Plain had no properties, so a PropertyMap row comes first."""
    e: Edit = edit_of("fields")
    b = e.base
    plain = b.typedef("Plain")
    assert b.property_map("Plain") is None
    pm, f, m, p, prop, ca, ms = (b.rows(t) + 1 for t in (T.PropertyMap, T.Field, T.MethodDef, T.Param, T.Property,
                                                         T.CustomAttribute, T.MethodSemantics))
    assert e.enc_log == [
        log(T.PropertyMap, pm),
        log(T.TypeDef, plain, ADD_FIELD), log(T.Field, f),
        log(T.TypeDef, plain, ADD_FIELD), log(T.Field, f + 1),
        log(T.TypeDef, plain, ADD_METHOD), log(T.MethodDef, m),
        log(T.TypeDef, plain, ADD_METHOD), log(T.MethodDef, m + 1),
        log(T.PropertyMap, pm, ADD_PROPERTY), log(T.Property, prop),
        log(T.MethodDef, m + 1, ADD_PARAMETER), log(T.Param, p),
        *(log(T.CustomAttribute, ca + i) for i in range(5)),
        log(T.MethodSemantics, ms), log(T.MethodSemantics, ms + 1),
    ]
    fields = [e.reader.GetFieldDefinition(e.srm.MetadataTokens.FieldDefinitionHandle(i)) for i in (1, 2)]
    static = 0x10
    assert [(e.string(fd.Name), int(fd.Attributes) & static) for fd in fields] == [("extra", 0), ("total@", static)]
    assert e.method_names() == ["get_total", "set_total"]
    assert e.params() == [("value", 1)]
    assert e.raw_rows(T.PropertyMap) == [(plain, prop)]
    association = HasSemantics.encode(T.Property, prop)
    assert sorted(e.raw_rows(T.MethodSemantics)) == [(SETTER, m + 1, association), (GETTER, m, association)]
    parents = sorted(parent for parent, _ctor, _value in e.attributes())
    assert parents == sorted([token(T.Field, f), token(T.Field, f + 1), token(T.MethodDef, m), token(T.MethodDef, m),
                              token(T.Property, prop)])


@pytest.mark.runtime
def test_added_properties_with_and_without_a_property_map(edit_of: Any) -> None:
    e: Edit = edit_of("property")
    b = e.base
    counter_map = b.property_map("Counter")
    assert counter_map is not None and b.property_map("Plain") is None
    pm, m, prop, ms = (b.rows(t) + 1 for t in (T.PropertyMap, T.MethodDef, T.Property, T.MethodSemantics))
    assert e.enc_log == [
        log(T.PropertyMap, pm),  # Plain's, new
        log(T.TypeDef, b.typedef("Counter"), ADD_METHOD), log(T.MethodDef, m),
        log(T.TypeDef, b.typedef("Plain"), ADD_METHOD), log(T.MethodDef, m + 1),
        log(T.PropertyMap, counter_map, ADD_PROPERTY), log(T.Property, prop),
        log(T.PropertyMap, pm, ADD_PROPERTY), log(T.Property, prop + 1),
        log(T.MethodSemantics, ms), log(T.MethodSemantics, ms + 1),
    ]
    assert e.method_names() == ["get_Twice", "get_Value"]
    names = [e.string(e.reader.GetPropertyDefinition(e.srm.MetadataTokens.PropertyDefinitionHandle(i)).Name)
             for i in (1, 2)]
    assert names == ["Twice", "Value"]
    assert e.raw_rows(T.PropertyMap) == [(b.typedef("Plain"), prop + 1)]
    assert e.raw_rows(T.MethodSemantics) == [(GETTER, m, HasSemantics.encode(T.Property, prop)),
                                              (GETTER, m + 1, HasSemantics.encode(T.Property, prop + 1))]


@pytest.mark.runtime
def test_added_nested_type(edit_of: Any) -> None:
    """An F# type in a module is nested in the module's class: TypeDef, its members, NestedClass."""
    e: Edit = edit_of("nested")
    b = e.base
    td, m, ca, nc = (b.rows(t) + 1 for t in (T.TypeDef, T.MethodDef, T.CustomAttribute, T.NestedClass))
    assert e.enc_log == [
        log(T.TypeDef, td),
        log(T.TypeDef, td, ADD_METHOD), log(T.MethodDef, m),
        log(T.TypeDef, td, ADD_METHOD), log(T.MethodDef, m + 1),
        log(T.TypeDef, b.typedef("Inv"), ADD_METHOD), log(T.MethodDef, m + 2),
        log(T.CustomAttribute, ca),  # [CompilationMapping(SourceConstructFlags.ObjectType)]
        log(T.NestedClass, nc),
    ]
    added = e.reader.GetTypeDefinition(e.srm.MetadataTokens.TypeDefinitionHandle(1))
    assert (e.string(added.Name), e.string(added.Namespace)) == ("Added", "")
    assert e.method_names() == [".ctor", "Get", "useAdded"]
    assert e.raw_rows(T.NestedClass) == [(td, b.typedef("Inv"))]
    [(parent, _ctor, value)] = e.attributes()
    assert parent == token(T.TypeDef, td) and value == b"\x01\x00" + struct.pack("<I", 3) + b"\x00\x00"


@pytest.mark.runtime
def test_custom_attributes_changed_added_removed(edit_of: Any) -> None:
    """g's attribute is rewritten in its row, h gains a row, k's row is detached (nil parent)."""
    e: Edit = edit_of("attributes")
    b = e.base
    [g_row], [k_row], h_rows = (b.attribute_rows("Inv", n) for n in ("g", "k", "h"))
    assert h_rows == [] and g_row < k_row
    ca = b.rows(T.CustomAttribute) + 1
    assert e.enc_log == [log(T.CustomAttribute, g_row), log(T.CustomAttribute, k_row), log(T.CustomAttribute, ca)]
    assert e.enc_map == [token(T.CustomAttribute, r) for r in (g_row, k_row, ca)]
    obsolete = b.srm.token(b.reader.GetCustomAttribute(b.srm.MetadataTokens.CustomAttributeHandle(g_row)).Constructor)

    def message(text: str) -> bytes:
        return b"\x01\x00" + bytes([len(text)]) + text.encode() + b"\x00\x00"

    assert e.attributes() == [(token(T.MethodDef, b.method("Inv", "g")), obsolete, message("second")),
                              (0, token(T.MethodDef, 0), b""),  # detached: nil parent, nil MethodDef
                              (token(T.MethodDef, b.method("Inv", "h")), obsolete, message("new"))]
    rows = e.raw_rows(T.CustomAttribute)
    assert [row[0] for row in rows] == [HasCustomAttribute.encode(T.MethodDef, b.method("Inv", "g")), 0,
                                        HasCustomAttribute.encode(T.MethodDef, b.method("Inv", "h"))]
    assert [CustomAttributeType.decode(row[1]) for row in rows] == [
        (T.MemberRef, obsolete & 0xFFFFFF), (T.MethodDef, 0), (T.MemberRef, obsolete & 0xFFFFFF)]
    assert rows[1] == (0, CustomAttributeType.encode(T.MethodDef, 0), 0) != (0, 0, 0)


@pytest.fixture
def edit_of(edits: dict[str, Edit]) -> Any:
    return edits.__getitem__


# ---- the runtime takes every one of these deltas -------------------------------------------------------------


@pytest.fixture(scope="module")
def applier(dotnet_runtime: RuntimeInfo) -> UpdateApplier:
    return UpdateApplier()


def _type(app: HostedApp, name: str) -> Any:
    found = app.assembly.GetType(name)
    assert found is not None, name
    return found


def _flags() -> Any:
    from System.Reflection import BindingFlags  # type: ignore[import-not-found]

    return BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance


def _check_running(name: str, app: HostedApp) -> None:
    import System  # type: ignore[import-not-found]

    if name == "method":
        assert app.call("Hot.Inv.addedSum", 4, 2) == 42
    elif name == "param_attr":
        assert app.call("Hot.Inv.Plain.Count", System.Array[System.Int32]([1, 2, 3])) == 3
        param = app.find_method("Hot.Inv.Plain.Count").GetParameters()[0]
        assert [str(a.GetType().Name) for a in param.GetCustomAttributes(False)] == ["ParamArrayAttribute"]
    elif name == "fields":
        plain = _type(app, "Hot.Inv+Plain")
        assert not plain.GetField("extra", _flags()).IsStatic and plain.GetField("total@", _flags()).IsStatic
        app.call("Hot.Inv.Plain.set_total", 41)
        assert app.call("Hot.Inv.Plain.get_total") == 41
        obj = System.Activator.CreateInstance(plain)
        plain.GetField("extra", _flags()).SetValue(obj, System.Int32(5))
        assert plain.GetField("extra", _flags()).GetValue(obj) == 5
    elif name == "property":
        counter = System.Activator.CreateInstance(_type(app, "Hot.Inv+Counter"))
        counter.GetType().GetMethod("Next").Invoke(counter, None)
        assert counter.GetType().GetProperty("Twice").GetValue(counter) == 2
        plain = System.Activator.CreateInstance(_type(app, "Hot.Inv+Plain"))
        assert plain.GetType().GetProperty("Value").GetValue(plain) == 5
    elif name == "nested":
        assert app.call("Hot.Inv.useAdded") == 3
        assert str(_type(app, "Hot.Inv+Added").DeclaringType.FullName) == "Hot.Inv"
    elif name == "attributes":
        assert tuple(_obsolete_messages(app, fn) for fn in ("g", "h", "k")) == (["second"], ["new"], [])
    else:
        raise AssertionError(name)


@pytest.mark.runtime
def test_runtime_applies_each_delta(edit: Edit, builds: dict[str, FsBuild], applier: UpdateApplier,
                                    tmp_path: Path) -> None:
    folder = tmp_path / edit.name
    shutil.copytree(builds["base"].dll.parent, folder)
    app = HostedApp(str(folder / f"{ASSEMBLY}.dll"), name=f"invariants-{edit.name}")
    applier.apply(app.assembly, edit.delta.metadata, edit.delta.il, edit.delta.pdb)
    _check_running(edit.name, app)


def _obsolete_messages(app: HostedApp, fn: str) -> list[str]:
    return [str(a.Message) for a in app.find_method(f"Hot.Inv.{fn}").GetCustomAttributes(False)
            if str(a.GetType().Name) == "ObsoleteAttribute"]


@pytest.mark.runtime
def test_attribute_rows_continue_the_running_table_across_generations(
        builds: dict[str, FsBuild], srm: Srm, applier: UpdateApplier, tmp_path: Path) -> None:
    """Regression: the row h's new attribute got in generation 1 counted the row rewritten in place before it
    (g's), leaving a gap. The runtime appends an added row wherever the delta says it goes, so h's attribute
    went to the row after the last one while the baseline recorded another id; generation 3, rewriting what it
    took for h's row, rewrote k's."""
    shutil.copytree(builds["base"].dll.parent, tmp_path / "app")
    app = HostedApp(str(tmp_path / "app" / f"{ASSEMBLY}.dll"), name="invariants-attribute-rows")
    current, pdb = load_build(str(builds["base"].dll))
    baseline = Baseline(current, pdb)
    base = Base(srm, builds["base"])
    [g_row], [k_row] = base.attribute_rows("Inv", "g"), base.attribute_rows("Inv", "k")
    first_new = base.rows(T.CustomAttribute) + 1
    expected_logs = {"attributes": [log(T.CustomAttribute, g_row), log(T.CustomAttribute, k_row),
                                    log(T.CustomAttribute, first_new)],
                     "attributes2": [log(T.CustomAttribute, first_new + 1)],  # k's old row stays detached
                     "attributes3": [log(T.CustomAttribute, first_new)]}
    for name, want in (("attributes", (["second"], ["new"], [])), ("attributes2", (["second"], ["new"], ["back"])),
                       ("attributes3", (["second"], ["newer"], ["back"]))):
        new, new_pdb = load_build(str(builds[name].dll))
        diff = diff_builds(current, new, None, (pdb, new_pdb))
        assert not diff.refusals and diff.new is not None
        delta = build_delta(baseline, diff.new, new_pdb, diff)
        assert srm.enc_log(srm.read_metadata(delta.metadata)) == expected_logs[name], name
        applier.apply(app.assembly, delta.metadata, delta.il, delta.pdb)
        baseline = baseline.advanced(delta)
        current, pdb = diff.new, new_pdb
        assert tuple(_obsolete_messages(app, fn) for fn in ("g", "h", "k")) == want, name
    assert baseline.row_counts[T.CustomAttribute] == first_new + 1


# ---- the writer's own checks ---------------------------------------------------------------------------------


def _tables(log_rows: list[tuple[int, int]], map_rows: list[int]) -> dict[T, list[tuple[int, ...]]]:
    tables: dict[T, list[tuple[int, ...]]] = {T.Module: [(1, 0, 1, 2, 0)]}
    for tok in map_rows:
        width = len(SCHEMA[T(tok >> 24)])
        tables.setdefault(T(tok >> 24), []).append((0,) * width)
    tables[T.EncLog] = list(log_rows)
    tables[T.EncMap] = [(tok,) for tok in map_rows]
    return tables


GOOD_LOG = [log(T.TypeRef, 9), log(T.TypeDef, 2, ADD_METHOD), log(T.MethodDef, 8), log(T.MethodDef, 8, ADD_PARAMETER),
            log(T.Param, 4), log(T.CustomAttribute, 3)]
GOOD_MAP = [token(T.TypeRef, 9), token(T.MethodDef, 8), token(T.Param, 4), token(T.CustomAttribute, 3)]


def test_check_enc_tables_accepts_a_well_formed_delta() -> None:
    check_enc_tables(_tables(GOOD_LOG, GOOD_MAP))
    data = write_metadata(_tables(GOOD_LOG, GOOD_MAP), b"\0", b"\0", bytes(16), b"\0")
    assert MetadataImage(data).rows(T.EncMap) == [(tok,) for tok in GOOD_MAP]


@pytest.mark.parametrize(("log_rows", "map_rows", "message"), [
    # a row twice in the EncMap (and so twice in its table)
    (GOOD_LOG + [log(T.Param, 4)], GOOD_MAP[:3] + [token(T.Param, 4)] + GOOD_MAP[3:], "strictly increasing"),
    # EncMap out of order: rows by table, then row id
    (GOOD_LOG, [GOOD_MAP[1], GOOD_MAP[0], *GOOD_MAP[2:]], "strictly increasing"),
    (GOOD_LOG + [log(T.Param, 3)], GOOD_MAP[:2] + [token(T.Param, 4), token(T.Param, 3)] + GOOD_MAP[3:],
     "strictly increasing"),
    # a row of the delta not logged, or logged twice
    (GOOD_LOG[:-1], GOOD_MAP, "Default entries"),
    (GOOD_LOG + [log(T.CustomAttribute, 3)], GOOD_MAP, "Default entries"),
    # an Add* entry naming the wrong kind of parent, or not followed by the row it adds
    ([log(T.TypeRef, 9), log(T.MethodDef, 2, ADD_METHOD), *GOOD_LOG[2:]], GOOD_MAP, "must name a TypeDef"),
    ([GOOD_LOG[0], GOOD_LOG[1], GOOD_LOG[3], GOOD_LOG[2], *GOOD_LOG[4:]], GOOD_MAP, "followed by the MethodDef"),
    (GOOD_LOG + [log(T.TypeDef, 2, ADD_FIELD)], GOOD_MAP, "followed by the Field"),
    (GOOD_LOG + [(token(T.CustomAttribute, 3), 9)], GOOD_MAP, "unknown operation"),
])
def test_check_enc_tables_rejects(log_rows: list[tuple[int, int]], map_rows: list[int], message: str) -> None:
    with pytest.raises(DeltaInvariantError, match=message):
        check_enc_tables(_tables(log_rows, map_rows))
    with pytest.raises(DeltaInvariantError):  # raised when the delta is written, not left to an `assert`
        write_metadata(_tables(log_rows, map_rows), b"\0", b"\0", bytes(16), b"\0")


def test_check_enc_tables_counts_rows_per_table() -> None:
    tables = _tables(GOOD_LOG, GOOD_MAP)
    tables[T.Param].append((0, 0, 0))  # a Param row no EncMap entry names
    with pytest.raises(DeltaInvariantError, match="1 Param token"):
        check_enc_tables(tables)
    tables = _tables(GOOD_LOG, GOOD_MAP)
    tables[T.EncMap].insert(0, (token(T.Module, 1),))
    with pytest.raises(DeltaInvariantError):
        check_enc_tables(tables)


@pytest.mark.runtime
def test_sorted_table_bits_match_srm_metadata_builder(srm: Srm) -> None:
    """Our `#-` header's sorted-table mask equals the one SRM's MetadataBuilder writes for an EnC delta
    (CustomAttribute never marked sorted, whatever the order of its rows)."""
    from System import Guid  # type: ignore[import-not-found]
    from System.Reflection.Metadata.Ecma335 import (  # type: ignore[import-not-found]
        EditAndContinueOperation,
        MetadataBuilder,
        MetadataRootBuilder,
    )

    tokens = srm.MetadataTokens
    for parents in ([1, 2, 3], [3, 1, 2]):
        builder = MetadataBuilder()
        builder.AddModule(1, builder.GetOrAddString("m"), builder.GetOrAddGuid(Guid.NewGuid()),
                          builder.GetOrAddGuid(Guid.NewGuid()), tokens.GuidHandle(0))
        for p in parents:
            builder.AddCustomAttribute(tokens.EntityHandle(token(T.MethodDef, p)), tokens.EntityHandle(token(T.MemberRef, 1)),
                                       tokens.BlobHandle(0))
        for i in range(1, len(parents) + 1):
            builder.AddEncLogEntry(tokens.EntityHandle(token(T.CustomAttribute, i)), EditAndContinueOperation.Default)
            builder.AddEncMapEntry(tokens.EntityHandle(token(T.CustomAttribute, i)))
        out = srm.BlobBuilder()
        MetadataRootBuilder(builder, "v4.0.30319", True).Serialize(out, 0, 0)
        theirs_data = srm.to_py(out.ToArray())
        theirs = MetadataImage(theirs_data)
        their_mask = struct.unpack_from("<Q", theirs_data, theirs.streams["#-"][0] + 16)[0]
        ca_rows = [(HasCustomAttribute.encode(T.MethodDef, p), CustomAttributeType.encode(T.MemberRef, 1), 0)
                   for p in parents]
        assert theirs.rows(T.CustomAttribute) == ca_rows  # SRM keeps a delta's rows in the order they were added
        ours = write_tables({T.Module: [(1, 1, 1, 2, 0)], T.CustomAttribute: ca_rows,
                             T.EncLog: [(token(T.CustomAttribute, i), 0) for i in range(1, 4)],
                             T.EncMap: [(token(T.CustomAttribute, i),) for i in range(1, 4)]})
        assert struct.unpack_from("<Q", ours, 16)[0] == their_mask, parents


def test_sorted_bit_is_cleared_for_a_table_out_of_key_order() -> None:
    in_order = [(0x2, 5, HasSemantics.encode(T.Property, 1)), (0x1, 6, HasSemantics.encode(T.Property, 2))]
    for rows, expect_sorted in ((in_order, True), (in_order[::-1], False)):
        stream = write_tables({T.MethodSemantics: rows})
        mask = struct.unpack_from("<Q", stream, 16)[0]
        assert bool(mask & (1 << T.MethodSemantics)) == expect_sorted


def test_fat_header_keeps_init_locals_without_locals() -> None:
    """InitLocals also zeroes `localloc` memory: a short body with the flag and no locals stays fat."""
    body = MethodBody(max_stack=2, init_locals=True, local_sig=0, code=b"\x1a\xfe\x0f\x4a\x2a")  # ldc.i4.4 localloc
    encoded = encode_body(body)
    assert encoded[0] & 3 == 3
    assert struct.unpack_from("<H", encoded)[0] & 0x10
    assert parse_body(encoded).init_locals
    assert encode_body(MethodBody(2, False, 0, body.code))[0] & 3 == 2  # without the flag, tiny as before


def test_check_added_rows() -> None:
    counts = [0] * 64
    counts[T.CustomAttribute] = 21
    check_added_rows({T.CustomAttribute: [3, 22, 23, 9]}, counts)  # updated rows 3 and 9, added 22 and 23
    with pytest.raises(DeltaInvariantError, match=r"CustomAttribute rows added as \[23\] after 21"):
        check_added_rows({T.CustomAttribute: [3, 9, 23]}, counts)
    with pytest.raises(DeltaInvariantError):
        check_added_rows({T.CustomAttribute: [22, 22]}, counts)
