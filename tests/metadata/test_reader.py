"""Our metadata reader against System.Reflection.Metadata, on a real F# build and on FSharp.Core.dll."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from fsharp_testkit import BuildFarm, FsBuild, Srm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotreload.baseline import Baseline
from hotreload.delta import load_build
from hotreload.metadata.errors import BadImageError
from hotreload.metadata.reader import Assembly, MetadataImage
from hotreload.metadata.schema import (
    SCHEMA,
    Coded,
    CustomAttributeType,
    HasCustomAttribute,
    MemberRefParent,
    ResolutionScope,
    T,
    TypeDefOrRef,
    token,
)
from hotreload.pdb import Pdb, encode_sequence_points

pytestmark = pytest.mark.runtime

TYPE_SYSTEM_TABLES = [t for t in T if t < 0x30 and t not in (T.FieldPtr, T.MethodPtr, T.ParamPtr, T.EventPtr,
                                                             T.PropertyPtr)]
HEAPS = ["#Strings", "#US", "#Blob", "#GUID"]


@pytest.fixture(scope="module")
def gen0(build_farm: BuildFarm) -> FsBuild:
    return build_farm["gen0"]


@pytest.fixture(scope="module", params=["HotLib.dll", "FSharp.Core.dll"])
def pair(request: pytest.FixtureRequest, gen0: FsBuild, srm: Srm) -> tuple[Assembly, Any, Any]:
    """(our Assembly, SRM PEReader, SRM MetadataReader) of one assembly."""
    path = gen0.dll.parent / request.param
    pe, reader = srm.read_pe(path)
    return Assembly.from_file(str(path)), pe, reader


def _coded_token(coded: Coded, value: int) -> int:
    table, row = coded.decode(value)
    return token(table, row) if table is not None and row else 0


def _srm_token(srm: Srm, handle: Any) -> int:
    return 0 if handle.IsNil else srm.token(handle)


def test_row_counts_match_srm(srm: Srm, pair: tuple[Assembly, Any, Any]) -> None:
    asm, _pe, reader = pair
    for table in TYPE_SYSTEM_TABLES:
        assert asm.md.row_counts[table] == srm.row_count(reader, table), table.name
        assert len(asm.md.rows(table)) == asm.md.row_counts[table], table.name
    assert asm.md.row_counts[T.MethodDef] > 5


def test_heap_sizes_match_srm(srm: Srm, pair: tuple[Assembly, Any, Any]) -> None:
    """#Strings without its alignment padding (as SRM and the runtime's string pool see it); others as stored."""
    asm, _pe, reader = pair
    for heap in HEAPS:
        assert asm.md.heap_size(heap) == srm.heap_size(reader, heap), heap


def test_baseline_heap_sizes_are_what_the_runtime_appends_after(srm: Srm, gen0: FsBuild) -> None:
    """FSharp.Core's #Strings stream carries alignment padding: a delta's strings must start before it."""
    path = gen0.dll.parent / "FSharp.Core.dll"
    build, _pdb = load_build(str(path))
    base = Baseline(build, None)
    _pe, reader = srm.read_pe(path)
    assert build.asm.md.streams["#Strings"][1] > srm.heap_size(reader, "#Strings"), "precondition: padded heap"
    assert (base.strings_size, base.us_size, base.blob_size, base.guid_size) == tuple(
        srm.heap_size(reader, h) for h in HEAPS)


def test_strings_match_srm(srm: Srm, pair: tuple[Assembly, Any, Any]) -> None:
    asm, _pe, reader = pair
    md = asm.md
    checked = 0
    for h in reader.TypeDefinitions:
        td = reader.GetTypeDefinition(h)
        _flags, name, ns, *_ = md.row(T.TypeDef, srm.token(h) & 0xFFFFFF)
        assert (name, ns) == (srm.heap_offset(td.Name), srm.heap_offset(td.Namespace))
        assert (md.string(name), md.string(ns)) == (str(reader.GetString(td.Name)), str(reader.GetString(td.Namespace)))
        checked += 1
    for h in reader.MethodDefinitions:
        m = reader.GetMethodDefinition(h)
        assert md.string(md.row(T.MethodDef, srm.token(h) & 0xFFFFFF)[3]) == str(reader.GetString(m.Name))
        checked += 1
    for h in reader.FieldDefinitions:
        f = reader.GetFieldDefinition(h)
        assert md.string(md.row(T.Field, srm.token(h) & 0xFFFFFF)[1]) == str(reader.GetString(f.Name))
    for h in reader.TypeReferences:
        tr = reader.GetTypeReference(h)
        _scope, name, ns = md.row(T.TypeRef, srm.token(h) & 0xFFFFFF)
        assert (md.string(name), md.string(ns)) == (str(reader.GetString(tr.Name)), str(reader.GetString(tr.Namespace)))
    for h in reader.MemberReferences:
        mr = reader.GetMemberReference(h)
        assert md.string(md.row(T.MemberRef, srm.token(h) & 0xFFFFFF)[1]) == str(reader.GetString(mr.Name))
    assert md.string(0) == ""
    assert checked > 10


def test_user_strings_match_srm(srm: Srm, pair: tuple[Assembly, Any, Any]) -> None:
    asm, _pe, reader = pair
    entries: list[tuple[int, str]] = []
    h = srm.X.GetNextHandle(reader, srm.MetadataTokens.UserStringHandle(0))
    while not h.IsNil:
        entries.append((srm.heap_offset(h), str(reader.GetUserString(h))))
        h = srm.X.GetNextHandle(reader, h)
    assert entries, "no user strings at all"
    for offset, value in entries:
        assert asm.md.user_string(offset) == value, offset
    first_offsets: dict[str, int] = {}
    for offset, value in entries:
        if asm.md.us_heap[offset]:  # SRM also walks the zero padding at the end, as empty entries
            first_offsets.setdefault(value, offset)
    assert asm.md.user_strings() == first_offsets


def test_module_and_guids_match_srm(srm: Srm, pair: tuple[Assembly, Any, Any]) -> None:
    asm, _pe, reader = pair
    module = reader.GetModuleDefinition()
    generation, name, mvid, enc_id, enc_base = asm.md.row(T.Module, 1)
    assert generation == int(module.Generation) == 0
    assert asm.md.string(name) == str(reader.GetString(module.Name))
    assert asm.md.guid(mvid) == srm.guid(reader, module.Mvid)
    assert asm.md.guid(mvid) != b"\0" * 16
    assert enc_id == enc_base == 0
    assert asm.md.is_minimal_delta is False


def test_method_rvas_and_signature_blobs_match_srm(srm: Srm, pair: tuple[Assembly, Any, Any]) -> None:
    asm, _pe, reader = pair
    md = asm.md
    for h in reader.MethodDefinitions:
        m = reader.GetMethodDefinition(h)
        rva, impl, flags, _name, sig, params = md.row(T.MethodDef, srm.token(h) & 0xFFFFFF)
        assert rva == int(m.RelativeVirtualAddress)
        assert (impl, flags) == (int(m.ImplAttributes), int(m.Attributes))
        assert md.blob(sig) == srm.to_py(reader.GetBlobBytes(m.Signature))
        first_param = m.GetParameters()
        if first_param.Count:
            assert params == srm.token(next(iter(first_param))) & 0xFFFFFF
    for h in reader.MemberReferences:
        mr = reader.GetMemberReference(h)
        assert md.blob(md.row(T.MemberRef, srm.token(h) & 0xFFFFFF)[2]) == srm.to_py(reader.GetBlobBytes(mr.Signature))
    for rid in range(1, md.row_counts[T.TypeSpec] + 1):
        ts = reader.GetTypeSpecification(srm.MetadataTokens.TypeSpecificationHandle(rid))
        assert md.blob(md.row(T.TypeSpec, rid)[0]) == srm.to_py(reader.GetBlobBytes(ts.Signature))


def test_a_column_read_alone_is_that_column_of_the_decoded_rows(pair: tuple[Assembly, Any, Any]) -> None:
    """`column` slices the table's bytes without decoding rows: every column of every table, 1-, 2- and 4-byte
    wide (FSharp.Core's wide heaps give 4-byte string and blob columns), against the decoded rows."""
    asm = pair[0]
    fresh = MetadataImage(asm.pe.metadata)  # nothing decoded yet: the strided path
    widths = set()
    for table in T:
        if not fresh.row_counts[table] or table not in fresh.tables.layout:
            continue
        fmt = fresh.tables.layout[table][0]
        for index in range(len(SCHEMA[table])):
            widths.add(fmt[1 + index])
            assert fresh.column(table, index) == [row[index] for row in asm.md.rows(table)], (table.name, index)
    assert {"H", "I"} <= widths
    assert fresh.column(T.MethodDef, 0) == [row[0] for row in fresh.rows(T.MethodDef)]  # decoded: the same


def test_coded_indexes_match_srm(srm: Srm, pair: tuple[Assembly, Any, Any]) -> None:
    """Coded index widths depend on table sizes (2 or 4 bytes): FSharp.Core has the wide ones."""
    asm, _pe, reader = pair
    md = asm.md
    for h in reader.CustomAttributes:
        ca = reader.GetCustomAttribute(h)
        parent, ctor, value = md.row(T.CustomAttribute, srm.token(h) & 0xFFFFFF)
        assert _coded_token(HasCustomAttribute, parent) == srm.token(ca.Parent)
        assert _coded_token(CustomAttributeType, ctor) == srm.token(ca.Constructor)
        assert md.blob(value) == srm.to_py(reader.GetBlobBytes(ca.Value))
    for h in reader.TypeReferences:
        tr = reader.GetTypeReference(h)
        scope = md.row(T.TypeRef, srm.token(h) & 0xFFFFFF)[0]
        assert _coded_token(ResolutionScope, scope) == _srm_token(srm, tr.ResolutionScope)
    for h in reader.MemberReferences:
        parent = md.row(T.MemberRef, srm.token(h) & 0xFFFFFF)[0]
        assert _coded_token(MemberRefParent, parent) == srm.token(reader.GetMemberReference(h).Parent)
    for h in reader.TypeDefinitions:
        extends = md.row(T.TypeDef, srm.token(h) & 0xFFFFFF)[3]
        assert _coded_token(TypeDefOrRef, extends) == _srm_token(srm, reader.GetTypeDefinition(h).BaseType)
    nested = {srm.token(h) & 0xFFFFFF: srm.token(reader.GetTypeDefinition(h).GetDeclaringType()) & 0xFFFFFF
              for h in reader.TypeDefinitions if reader.GetTypeDefinition(h).IsNested}
    assert {nested_rid: enclosing for nested_rid, enclosing in md.rows(T.NestedClass)} == nested


def test_pdb_matches_srm(srm: Srm, gen0: FsBuild) -> None:
    data = gen0.pdb.read_bytes()
    pdb = Pdb(data)
    reader = srm.read_pdb(data)
    for table in (T.Document, T.MethodDebugInformation, T.LocalScope, T.LocalVariable, T.ImportScope,
                  T.CustomDebugInformation):
        assert pdb.md.row_counts[table] == srm.row_count(reader, table), table.name
    names = {str(reader.GetString(reader.GetDocument(h).Name)): srm.token(h) & 0xFFFFFF for h in reader.Documents}
    assert pdb.documents() == names
    assert "/hotlib/Lib.fs" in names  # PathMap applied
    # the #Pdb stream: type-system row counts of the assembly it describes
    asm = Assembly.from_file(str(gen0.dll))
    assert pdb.md.pdb_id and len(pdb.md.pdb_id) == 20
    with_points = 0
    for h in reader.MethodDebugInformation:
        rid = srm.token(h) & 0xFFFFFF
        expected = [(int(p.Offset), int(p.StartLine), int(p.StartColumn), int(p.EndLine), int(p.EndColumn),
                     bool(p.IsHidden), srm.token(p.Document) & 0xFFFFFF)
                    for p in reader.GetMethodDebugInformation(h).GetSequencePoints()]
        info = pdb.method_info(rid)
        ours = [(p.il_offset, p.start_line, p.start_column, p.end_line, p.end_column, p.hidden, p.document)
                for p in info.points]
        assert ours == expected, rid
        with_points += bool(ours)
        # re-encoding what we decoded gives back the PDB's own bytes
        document, blob_offset = pdb.md.row(T.MethodDebugInformation, rid)
        if blob_offset:
            assert encode_sequence_points(info) == (document, pdb.md.blob(blob_offset)), rid
    assert with_points >= 10
    assert asm.md.row_counts[T.MethodDef] == pdb.md.row_counts[T.MethodDebugInformation]


# ---- bad input: only BadImageError ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def raw_metadata(gen0: FsBuild) -> bytes:
    return Assembly.from_file(str(gen0.dll)).md.raw


@pytest.mark.parametrize("data", [b"", b"BSJB", b"\0" * 64, b"MZ" + b"\0" * 100])
def test_garbage_metadata_raises_bad_image(data: bytes) -> None:
    with pytest.raises(BadImageError):
        MetadataImage(data)


def test_not_a_pe_raises_bad_image(tmp_path: Path, gen0: FsBuild) -> None:
    for content in (b"", b"hello world" * 20, gen0.dll.read_bytes()[:0x200]):
        path = tmp_path / "bad.dll"
        path.write_bytes(content)
        with pytest.raises(BadImageError):
            Assembly.from_file(str(path))


def _parse_or_bad_image(data: bytes) -> None:
    try:
        md = MetadataImage(data)
    except BadImageError:
        return
    for table in md.tables:
        for rid in (1, len(md.rows(table))):
            md.row(table, rid)


def test_truncated_metadata_raises_only_bad_image(raw_metadata: bytes) -> None:
    for length in range(len(raw_metadata)):
        _parse_or_bad_image(raw_metadata[:length])


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupt_metadata_raises_only_bad_image(raw_metadata: bytes, data: st.DataObject) -> None:
    """Byte flips in the root, the stream headers and the table header: parse, or BadImageError."""
    raw = bytearray(raw_metadata)
    tables_at = MetadataImage(raw_metadata).streams["#~"][0]
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        pos = data.draw(st.integers(0, tables_at + 64), label="position")
        raw[pos] = data.draw(st.integers(0, 255), label="byte")
    _parse_or_bad_image(bytes(raw))


def test_row_out_of_range_raises_bad_image(raw_metadata: bytes) -> None:
    md = MetadataImage(raw_metadata)
    with pytest.raises(BadImageError):
        md.row(T.MethodDef, 0)
    with pytest.raises(BadImageError):
        md.row(T.MethodDef, md.row_counts[T.MethodDef] + 1)
    with pytest.raises(BadImageError):
        md.user_string(md.heap_size("#US") + 10)
    with pytest.raises(BadImageError):
        md.guid(md.heap_size("#GUID") // 16 + 1)
    assert md.guid(0) == b"\0" * 16


def test_table_stream_header_fields(raw_metadata: bytes) -> None:
    """Sanity of the layout the writer imitates: schema 2.0, row counts right after the valid mask."""
    md = MetadataImage(raw_metadata)
    off, _size = md.streams["#~"]
    major, minor, _heaps, _one, valid = struct.unpack_from("<BBBBQ", raw_metadata, off + 4)
    assert (major, minor) == (2, 0)
    assert valid == sum(1 << t for t in md.tables)
