"""The delta writer: heaps, the `#-` table stream, and real EnC deltas read back by System.Reflection.Metadata.

SRM reads a lone delta with only the delta's own heaps, so a heap offset written into the delta (which continues
the running module's heap) is read at `offset - <heap size before this generation>`; MetadataAggregator does the
same mapping from the baseline's heap sizes, and is used as the second opinion.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fsharp_testkit import BuildFarm, FsBuild, Srm, line_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotreload.baseline import Baseline
from hotreload.delta import Delta, DeltaBuilder, load_build
from hotreload.diff import Build, diff_builds
from hotreload.metadata.il import STRING, TOKEN_KINDS, instructions, parse_body
from hotreload.metadata.reader import MetadataImage
from hotreload.metadata.schema import SCHEMA, TABLE_COUNT, T, split_token, token
from hotreload.metadata.writer import (
    BlobHeap,
    StringHeap,
    UserStringHeap,
    pdb_stream,
    write_metadata,
    write_tables,
)
from hotreload.pdb import (
    HIDDEN_LINE,
    MethodDebugInfo,
    Pdb,
    SequencePoint,
    decode_sequence_points,
    encode_sequence_points,
)

# ---- heaps --------------------------------------------------------------------------------------------------


def test_string_heap_continues_from_start_and_dedups() -> None:
    heap = StringHeap(1000)
    assert heap.add("") == 0
    a = heap.add("Math")
    b = heap.add("System")
    assert (a, b) == (1001, 1006)
    assert heap.add("Math") == a
    assert bytes(heap.data) == b"\0Math\0System\0"
    assert heap.add("é") == 1013 and heap.data.endswith("é".encode() + b"\0")


def test_blob_heap_continues_from_start_with_compressed_lengths() -> None:
    heap = BlobHeap(64)
    assert heap.add(b"") == 0
    small = heap.add(b"\x06\x08")
    big = heap.add(bytes(200))
    assert (small, big) == (65, 68)
    assert heap.add(b"\x06\x08") == small
    assert bytes(heap.data) == b"\0" + b"\x02\x06\x08" + b"\x80\xc8" + bytes(200)


def test_user_string_heap_entries_and_full_heap() -> None:
    heap = UserStringHeap(8)
    assert heap.add("ab") == 9
    assert heap.add("") == 15
    assert heap.add("ab") == 9
    assert bytes(heap.data) == b"\0" + b"\x05a\0b\0\0" + b"\x01\0"
    full = UserStringHeap(0xFFFFFF - 1)
    assert full.add("x") == 0xFFFFFF
    with pytest.raises(ValueError, match="16 MB"):
        full.add("y")


USER_STRINGS = ["hello", "it's", "a-b", "\u00e9t\u00e9", "\u0001", "\u65e5\u672c", "\x7f", "", "tab\there", "\x1f",
                "\x0e", "plain text 123"]


@pytest.mark.runtime
def test_user_string_heap_bytes_equal_srm_metadata_builder(srm: Srm) -> None:
    """Same strings, same order: our #US bytes (lengths, UTF-16, the trailing 'special' flag) equal SRM's."""
    from System import Guid  # type: ignore[import-not-found]
    from System.Reflection.Metadata.Ecma335 import MetadataBuilder, MetadataRootBuilder  # type: ignore[import-not-found]

    builder = MetadataBuilder()
    builder.AddModule(0, builder.GetOrAddString("m"), builder.GetOrAddGuid(Guid.NewGuid()), srm.MetadataTokens.GuidHandle(0),
                      srm.MetadataTokens.GuidHandle(0))
    ours = UserStringHeap(0)
    for s in USER_STRINGS:
        handle = builder.GetOrAddUserString(s)
        assert ours.add(s) == srm.heap_offset(handle), repr(s)
    out = srm.BlobBuilder()
    MetadataRootBuilder(builder).Serialize(out, 0, 0)
    theirs = MetadataImage(srm.to_py(out.ToArray())).us_heap
    data = bytes(ours.data)
    assert theirs[:len(data)] == data
    assert not theirs[len(data):].strip(b"\0")


# ---- the table stream and the metadata root ----------------------------------------------------------------


def _synthetic_delta() -> tuple[bytes, dict[T, list[tuple[int, ...]]], StringHeap, UserStringHeap, BlobHeap]:
    strings = StringHeap(500)
    blobs = BlobHeap(300)
    user = UserStringHeap(40)
    user.add("hi")
    name = strings.add("Lib.dll")
    tables: dict[T, list[tuple[int, ...]]] = {
        T.Module: [(1, name, 1, 2, 0)],
        T.TypeRef: [((2 << 2) | 2, strings.add("Math"), strings.add("System"))],
        T.MethodDef: [(4, 0, 0x16, 77, 88, 1), (16, 0, 0x16, 79, 90, 2)],
        T.MemberRef: [((31 << 3) | 1, strings.add("Max"), blobs.add(b"\x00\x02\x08\x08\x08"))],
        T.EncLog: [(token(T.TypeRef, 31), 0), (token(T.MemberRef, 50), 0), (token(T.MethodDef, 3), 0),
                   (token(T.MethodDef, 7), 0)],
        T.EncMap: [(token(T.TypeRef, 31),), (token(T.MethodDef, 3),), (token(T.MethodDef, 7),),
                   (token(T.MemberRef, 50),)],
    }
    guids = bytes(16) + bytes(range(16)) + bytes(range(16, 32))
    data = write_metadata(tables, bytes(strings.data), bytes(user.data), guids, bytes(blobs.data))
    return data, tables, strings, user, blobs


def test_write_metadata_reads_back_with_our_reader() -> None:
    data, tables, strings, user, _blobs = _synthetic_delta()
    md = MetadataImage(data)
    assert md.is_minimal_delta
    assert md.version == "v4.0.30319"
    assert list(md.streams) == ["#-", "#Strings", "#US", "#GUID", "#Blob", "#JTD"]
    for name, (offset, size) in md.streams.items():
        assert offset % 4 == 0 and size % 4 == 0, name
    assert md.streams["#JTD"][1] == 0
    for table, rows in tables.items():
        assert md.rows(table) == rows, table.name
    assert md.strings_heap.startswith(bytes(strings.data))
    assert md.us_heap.startswith(bytes(user.data))
    assert md.guid(3) == bytes(range(16, 32))
    # every index is 4 bytes wide in a minimal delta, whatever the row counts
    width = sum(2 if kind == "u2" else 4 for _, kind in SCHEMA[T.TypeRef])
    assert md.table_offsets[T.MethodDef] - md.table_offsets[T.TypeRef] == width


def test_write_tables_header() -> None:
    stream = write_tables({T.Module: [(0, 1, 1, 0, 0)], T.EncMap: []})
    _reserved, major, minor, heaps, _one, valid, _sorted = struct.unpack_from("<IBBBBQQ", stream)
    assert (major, minor) == (2, 0)
    assert heaps & 0x07 == 0x07  # wide #Strings, #GUID, #Blob
    assert heaps & 0x20 and heaps & 0x80  # delta flags, as Roslyn writes them
    assert valid == 1  # empty tables are left out
    assert len(stream) % 4 == 0


@pytest.mark.runtime
def test_srm_reads_synthetic_delta(srm: Srm) -> None:
    data, tables, strings, user, blobs = _synthetic_delta()
    reader = srm.read_metadata(data)
    for table, rows in tables.items():
        assert srm.row_count(reader, table) == len(rows), table.name
    assert srm.enc_log(reader) == [(tok, 0) for tok, _ in tables[T.EncLog]]
    assert srm.enc_map(reader) == [tok for (tok,) in tables[T.EncMap]]
    tr = reader.GetTypeReference(srm.MetadataTokens.TypeReferenceHandle(1))
    assert srm.string_at(reader, srm.heap_offset(tr.Name) - strings.start) == "Math"
    assert srm.string_at(reader, srm.heap_offset(tr.Namespace) - strings.start) == "System"
    assert srm.user_string_at(reader, 41 - user.start) == "hi"
    mr = reader.GetMemberReference(srm.MetadataTokens.MemberReferenceHandle(1))
    assert srm.blob_at(reader, srm.heap_offset(mr.Signature) - blobs.start) == b"\x00\x02\x08\x08\x08"
    assert srm.token(mr.Parent) == token(T.TypeRef, 31)
    rvas = [int(reader.GetMethodDefinition(h).RelativeVirtualAddress) for h in reader.MethodDefinitions]
    assert rvas == [4, 16]
    module = reader.GetModuleDefinition()
    assert (int(module.Generation), srm.guid(reader, module.GenerationId)) == (1, bytes(range(16)))


# ---- real deltas ----------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One generation's delta plus the running module as it was just before the delta."""

    name: str
    generation: int
    old: Build
    new: Build
    new_pdb: Pdb
    new_source: str
    delta: Delta
    before: dict[str, Any]  # heap sizes, row counts, enc id of the baseline before this delta
    readers: list[Any]  # SRM readers: baseline, then every delta up to and including this one
    gen0: Build


def _snapshot(base: Baseline) -> dict[str, Any]:
    return {"strings": base.strings_size, "us": base.us_size, "blob": base.blob_size, "guid": base.guid_size,
            "rows": list(base.row_counts), "enc_id": base.enc_id, "pdb_rows": list(base.pdb_row_counts),
            "refs": dict(base.refs)}


@pytest.fixture(scope="module")
def cases(build_farm: BuildFarm, srm: Srm) -> dict[str, Case]:
    """gen0 -> all (generation 1); and gen0 -> bcl -> all (generations 1 and 2) on a second baseline."""
    builds: dict[str, FsBuild] = build_farm.get(["gen0", "bcl", "all"])
    loaded = {name: load_build(str(b.dll)) for name, b in builds.items()}
    _pe, base_reader = srm.read_pe(builds["gen0"].dll)
    out: dict[str, Case] = {}
    for label, chain in (("all", ["gen0", "all"]), ("bcl", ["gen0", "bcl"]), ("bcl+all", ["gen0", "bcl", "all"])):
        gen0_build, gen0_pdb = load_build(str(builds["gen0"].dll))
        base = Baseline(gen0_build, gen0_pdb)
        readers = [base_reader]
        old = gen0_build
        case = None
        for generation, name in enumerate(chain[1:], 1):
            new, new_pdb = loaded[name]
            assert new_pdb is not None
            diff = diff_builds(old, new)
            assert diff.changed and not diff.refusals, diff.refusals
            before = _snapshot(base)
            delta = DeltaBuilder(base, new, new_pdb).build(diff.changed)
            readers = [*readers, srm.read_metadata(delta.metadata)]
            case = Case(label, generation, old, new, new_pdb, builds[name].source, delta, before, readers, gen0_build)
            base = base.advanced(delta)
            old = new
        assert case is not None
        out[label] = case
    return out


CASES = ["all", "bcl", "bcl+all"]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    return cases[request.param]


def _delta_reader(case: Case) -> Any:
    return case.readers[-1]


def _enc_map_rows(srm: Srm, reader: Any, table: T) -> list[int]:
    """Row ids (in the running module) of the delta's rows of `table`, in the delta's row order."""
    return [tok & 0xFFFFFF for tok in srm.enc_map(reader) if tok >> 24 == table]


@pytest.mark.runtime
def test_delta_is_a_minimal_delta(srm: Srm, case: Case) -> None:
    ours = MetadataImage(case.delta.metadata)
    reader = _delta_reader(case)
    assert ours.is_minimal_delta
    assert "#-" in ours.streams and "#~" not in ours.streams
    for t in T:
        if t < 0x30:
            assert srm.row_count(reader, t) == ours.row_counts[t], t.name
    assert srm.row_count(reader, T.Assembly) == 0


@pytest.mark.runtime
def test_module_row(srm: Srm, case: Case) -> None:
    reader = _delta_reader(case)
    module = reader.GetModuleDefinition()
    assert int(module.Generation) == case.generation
    base_md = case.readers[0]
    name = str(base_md.GetString(base_md.GetModuleDefinition().Name))
    assert name.startswith("HotLib.")
    assert srm.string_at(reader, srm.heap_offset(module.Name) - case.before["strings"]) == name
    assert srm.guid(reader, module.Mvid) == srm.guid(base_md, base_md.GetModuleDefinition().Mvid)
    assert srm.guid(reader, module.GenerationId) == case.delta.enc_id
    assert case.delta.enc_id != b"\0" * 16
    if case.generation == 1:
        assert module.BaseGenerationId.IsNil
    else:
        assert srm.guid(reader, module.BaseGenerationId) == case.before["enc_id"] != b"\0" * 16
    # the #GUID heap is written whole: the previous generations' size as zeros, then this generation's GUIDs
    guid_heap = MetadataImage(case.delta.metadata).guid_heap
    assert guid_heap[:case.before["guid"]] == bytes(case.before["guid"])
    assert srm.heap_offset(module.Mvid) == case.before["guid"] // 16 + 1


@pytest.mark.runtime
def test_enc_log_and_enc_map(srm: Srm, case: Case) -> None:
    reader = _delta_reader(case)
    log = srm.enc_log(reader)
    enc_map = srm.enc_map(reader)
    assert all(op == 0 for _, op in log), "body updates and new references are all Default operations"
    assert all(a < b for a, b in itertools.pairwise(enc_map)), "EncMap must be strictly increasing"
    assert sorted(tok for tok, _ in log) == enc_map
    assert not any(tok >> 24 == T.Module for tok in enc_map)
    tables = [tok >> 24 for tok, _ in log]
    method_at = tables.index(T.MethodDef)
    assert all(t != T.MethodDef for t in tables[:method_at]) and all(t == T.MethodDef for t in tables[method_at:])
    updated = sorted(tok for tok, _ in log if tok >> 24 == T.MethodDef)
    assert updated == sorted(case.delta.method_tokens.values())
    # every other row is a new reference row: ids continue the running module's tables with no gap
    for t in {t for t in tables if t != T.MethodDef}:
        rids = _enc_map_rows(srm, reader, T(t))
        first = case.before["rows"][t] + 1
        assert rids == list(range(first, first + len(rids))), T(t).name
        assert case.delta.added_rows[t] == len(rids)


@pytest.mark.runtime
def test_method_rows_point_into_the_il_delta(srm: Srm, case: Case) -> None:
    reader = _delta_reader(case)
    il = case.delta.il
    assert il[:4] == b"\0\0\0\0"
    by_token = {tok: key for key, tok in case.delta.method_tokens.items()}
    rids = _enc_map_rows(srm, reader, T.MethodDef)
    assert len(rids) == len(by_token)
    base_md = case.old.asm.md if case.generation == 1 else None
    for h, rid in zip(reader.MethodDefinitions, rids, strict=True):
        m = reader.GetMethodDefinition(h)
        rva = int(m.RelativeVirtualAddress)
        assert 4 <= rva < len(il) and rva % 4 == 0, rid
        body = parse_body(il[rva:])
        assert body.code == case.delta.method_il[by_token[token(T.MethodDef, rid)]]
        if base_md is not None:
            _rva, impl, flags, name, sig, _params = base_md.row(T.MethodDef, rid)
            assert (int(m.ImplAttributes), int(m.Attributes)) == (impl, flags)
            assert (srm.heap_offset(m.Name), srm.heap_offset(m.Signature)) == (name, sig)


@pytest.mark.runtime
def test_heap_sizes(srm: Srm, case: Case) -> None:
    reader = _delta_reader(case)
    d = case.delta
    assert srm.heap_size(reader, "#Strings") == d.strings_added
    assert srm.heap_size(reader, "#Blob") == d.blobs_added
    assert srm.heap_size(reader, "#US") == d.user_strings_added
    assert srm.heap_size(reader, "#GUID") == d.guid_size


def _aggregate_lookup(srm: Srm, case: Case, handle: Any) -> tuple[int, Any]:
    """(generation, handle relative to that generation's heap), as SRM's MetadataAggregator maps it."""
    from System.Collections.Generic import List  # type: ignore[import-not-found]
    from System.Reflection.Metadata import MetadataReader  # type: ignore[import-not-found]

    deltas = List[MetadataReader]()
    for r in case.readers[1:]:
        deltas.Add(r)
    relative, generation = srm.MetadataAggregator(case.readers[0], deltas).GetGenerationHandle(srm.handle(handle))
    return int(generation), relative


def _new_rows_by_key(build: Build, table: T) -> dict[str, int]:
    return {build.names.key(table, rid): rid for rid in range(1, build.asm.md.row_counts[table] + 1)}


@pytest.mark.runtime
def test_new_reference_rows_name_what_the_new_build_references(srm: Srm, case: Case) -> None:
    """TypeRef/MemberRef names in the delta, read where SRM's aggregator says they live, match the new build."""
    reader = _delta_reader(case)
    new_md = case.new.asm.md
    from System.Reflection.Metadata import StringHandle  # type: ignore[import-not-found]

    def aggregated_string(handle: Any) -> str:
        generation, relative = _aggregate_lookup(srm, case, handle)
        assert generation == case.generation
        return str(case.readers[generation].GetString(StringHandle.op_Explicit(relative)))

    checked = 0
    by_token = {tok: key for key, tok in case.delta.new_refs.items()}
    typeref_rows = _new_rows_by_key(case.new, T.TypeRef)
    for h, rid in zip(reader.TypeReferences, _enc_map_rows(srm, reader, T.TypeRef), strict=True):
        tr = reader.GetTypeReference(h)
        _scope, name, ns = new_md.row(T.TypeRef, typeref_rows[by_token[token(T.TypeRef, rid)]])
        assert srm.heap_offset(tr.Name) >= case.before["strings"]
        assert (aggregated_string(tr.Name), aggregated_string(tr.Namespace)) == (new_md.string(name), new_md.string(ns))
        checked += 1
    memberref_rows = _new_rows_by_key(case.new, T.MemberRef)
    for h, rid in zip(reader.MemberReferences, _enc_map_rows(srm, reader, T.MemberRef), strict=True):
        mr = reader.GetMemberReference(h)
        expected = new_md.row(T.MemberRef, memberref_rows[by_token[token(T.MemberRef, rid)]])
        assert aggregated_string(mr.Name) == new_md.string(expected[1])
        generation, _relative = _aggregate_lookup(srm, case, mr.Signature)
        assert generation == case.generation
        checked += 1
    if case.name != "bcl+all":
        assert checked >= 3, "Math.Max, DateTime, String.Join are new to the app"


def _ldstr_pairs(case: Case) -> Iterator[tuple[int, str]]:
    """(offset the delta's IL uses, the string the new build's IL loads there) for every ldstr."""
    for change in case.delta.methods:
        body = case.new.body(change.new_rid)
        assert body is not None
        sent = case.delta.method_il[change.key]
        for ins in instructions(body.code):
            if ins.kind == STRING:
                original = int.from_bytes(body.code[ins.operand_offset:ins.operand_offset + 4], "little")
                used = int.from_bytes(sent[ins.operand_offset:ins.operand_offset + 4], "little")
                assert used >> 24 == 0x70
                yield used & 0xFFFFFF, case.new.asm.md.user_string(original & 0xFFFFFF)


@pytest.mark.runtime
def test_user_strings_are_readable_at_the_offsets_used(srm: Srm, case: Case) -> None:
    reader = _delta_reader(case)
    pairs = list(_ldstr_pairs(case))
    assert pairs
    new_in_delta = 0
    for offset, expected in pairs:
        generation, relative = _aggregate_lookup(srm, case, srm.MetadataTokens.UserStringHandle(offset))
        from System.Reflection.Metadata import UserStringHandle  # type: ignore[import-not-found]

        assert str(case.readers[generation].GetUserString(UserStringHandle.op_Explicit(relative))) == expected
        if offset >= case.before["us"]:
            assert generation == case.generation
            assert srm.user_string_at(reader, offset - case.before["us"]) == expected
            new_in_delta += 1
    if case.name in ("all", "bcl"):
        assert new_in_delta >= 2


@pytest.mark.runtime
def test_il_tokens_name_rows_of_the_running_module(case: Case) -> None:
    rows_after = [case.before["rows"][i] + case.delta.added_rows[i] for i in range(TABLE_COUNT)]
    base_rows = case.before["rows"]
    for key, code in case.delta.method_il.items():
        for ins in instructions(code):
            if ins.kind not in TOKEN_KINDS or ins.kind == STRING:
                continue
            table, rid = split_token(int.from_bytes(code[ins.operand_offset:ins.operand_offset + 4], "little"))
            limit = base_rows[table] if table in (T.TypeDef, T.MethodDef, T.Field) else rows_after[table]
            assert 1 <= rid <= limit, f"{key}: {T(table).name} {rid} at {ins.offset:#x}"


@pytest.mark.runtime
def test_tokens_name_the_same_entities_as_in_the_new_build(case: Case) -> None:
    """Each token of the bodies we sent (operands, locals signature, catch types) names, in the running module,
    what the new build's token names in the new build."""
    gen0_rows = case.gen0.asm.md.row_counts
    refs = {tok: key for key, tok in {**case.before["refs"], **case.delta.new_refs}.items()}

    def running_key(tok: int) -> str:
        table, rid = split_token(tok)
        if table in (T.TypeDef, T.MethodDef, T.Field) or rid <= gen0_rows[table]:
            return case.gen0.names.key(table, rid)
        return refs[tok]

    ours = MetadataImage(case.delta.metadata)
    rvas = dict(zip(_our_enc_map_rows(ours, T.MethodDef), (row[0] for row in ours.rows(T.MethodDef)), strict=True))
    checked = 0
    for change in case.delta.methods:
        new_body = case.new.body(change.new_rid)
        assert new_body is not None
        sent = parse_body(case.delta.il[rvas[case.delta.method_tokens[change.key] & 0xFFFFFF]:])
        assert len(sent.code) == len(new_body.code)
        for ins in instructions(new_body.code):
            if ins.kind in TOKEN_KINDS and ins.kind != STRING:
                new_tok, sent_tok = (int.from_bytes(b[ins.operand_offset:ins.operand_offset + 4], "little")
                                     for b in (new_body.code, sent.code))
                assert running_key(sent_tok) == case.new.names.token_key(new_tok), f"{change.name} @{ins.offset:#x}"
                checked += 1
        assert bool(sent.local_sig) == bool(new_body.local_sig)
        if new_body.local_sig:
            assert running_key(sent.local_sig) == case.new.names.token_key(new_body.local_sig), change.name
        assert len(sent.clauses) == len(new_body.clauses)
        for mine, theirs in zip(sent.clauses, new_body.clauses, strict=True):
            if theirs.flags == 0 and theirs.class_token_or_filter:
                assert running_key(mine.class_token_or_filter) == case.new.names.token_key(theirs.class_token_or_filter)
    assert checked >= 4


def _our_enc_map_rows(md: MetadataImage, table: T) -> list[int]:
    return [tok & 0xFFFFFF for (tok,) in md.rows(T.EncMap) if tok >> 24 == table]


def _srm_points(srm: Srm, pdb_reader: Any, handle: Any) -> list[tuple[int, int, int, int, int, bool]]:
    return [(int(p.Offset), int(p.StartLine), int(p.StartColumn), int(p.EndLine), int(p.EndColumn), bool(p.IsHidden))
            for p in pdb_reader.GetMethodDebugInformation(handle).GetSequencePoints()]


@pytest.mark.runtime
def test_pdb_delta_sequence_points(srm: Srm, case: Case) -> None:
    reader = srm.read_pdb(case.delta.pdb)
    full = srm.read_pdb(case.new_pdb.md.raw)
    enc_map = srm.enc_map(reader)
    assert all(a < b for a, b in itertools.pairwise(enc_map))
    mdi = [tok & 0xFFFFFF for tok in enc_map if tok >> 24 == T.MethodDebugInformation]
    assert mdi == sorted(tok & 0xFFFFFF for tok in case.delta.method_tokens.values())
    new_rid = {case.delta.method_tokens[c.key] & 0xFFFFFF: c.new_rid for c in case.delta.methods}
    lines: dict[int, set[int]] = {}
    for h, rid in zip(reader.MethodDebugInformation, mdi, strict=True):
        ours = _srm_points(srm, reader, h)
        expected = _srm_points(srm, full, srm.MetadataTokens.MethodDebugInformationHandle(new_rid[rid]))
        assert ours == expected, rid
        lines[rid] = {p[1] for p in ours if p[1] != HIDDEN_LINE}
    by_name = {c.name: lines[case.delta.method_tokens[c.key] & 0xFFFFFF] for c in case.delta.methods}
    if case.name in ("all", "bcl"):
        assert by_name["Hot.Lib.combine"] == {line_of(case.new_source, "let combine")}
    if case.name == "all":
        assert by_name["Hot.Lib.constant"] == {line_of(case.new_source, "let constant")}
        doubled = line_of(case.new_source, "let doubled")
        closure = [n for n in by_name if n.startswith("Hot.Lib/") and n.endswith(f"@{doubled}.Invoke")]
        assert len(closure) == 1, sorted(by_name)
        assert by_name[closure[0]] == {doubled}


@pytest.mark.runtime
def test_pdb_delta_type_system_row_counts(case: Case) -> None:
    pdb = MetadataImage(case.delta.pdb)
    assert pdb.is_minimal_delta
    offset, _size = pdb.streams["#Pdb"]
    _entry, mask = struct.unpack_from("<IQ", pdb.raw, offset + 20)
    counts = {}
    pos = offset + 32
    for i in range(64):
        if mask >> i & 1:
            counts[i], = struct.unpack_from("<I", pdb.raw, pos)
            pos += 4
    expected = {i: case.before["rows"][i] + case.delta.added_rows[i] for i in range(0x30)
                if case.before["rows"][i] + case.delta.added_rows[i]}
    assert counts == expected


# ---- sequence points: our encoder, SRM's decoder ------------------------------------------------------------


@st.composite
def method_debug_infos(draw: st.DrawFn) -> MethodDebugInfo:
    points: list[SequencePoint] = []
    il_offset = -1
    for _ in range(draw(st.integers(0, 12))):
        il_offset += draw(st.integers(1, 300)) if points else draw(st.integers(1, 40))
        document = draw(st.integers(1, 3))
        if draw(st.integers(0, 5)) == 0:
            points.append(SequencePoint(il_offset, document, HIDDEN_LINE, 0, HIDDEN_LINE, 0))
            continue
        start_line = draw(st.integers(1, 0x1FFFFF))
        start_col = draw(st.integers(0, 0xFFFD))  # SRM accepts columns up to 0xFFFE
        if draw(st.booleans()):
            end_line, end_col = start_line, draw(st.integers(start_col + 1, 0xFFFE))
        else:
            end_line, end_col = start_line + draw(st.integers(1, 5000)), draw(st.integers(0, 0xFFFE))
        points.append(SequencePoint(il_offset, document, start_line, start_col, end_line, end_col))
    return MethodDebugInfo(draw(st.integers(0, 300)), points)


@pytest.mark.runtime
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(info=method_debug_infos())
def test_sequence_points_we_encode_are_what_srm_decodes(srm: Srm, info: MethodDebugInfo) -> None:
    document, blob = encode_sequence_points(info)
    assert decode_sequence_points(blob, document) == info
    if not info.points:
        return  # a method without sequence points gets a nil blob (see the next test)
    blobs = BlobHeap(0)
    tables: dict[T, list[tuple[int, ...]]] = {
        T.Document: [(0, 0, 0, 0)] * 3,
        T.MethodDebugInformation: [(document, blobs.add(blob))],
    }
    data = write_metadata(tables, b"\0", b"\0", b"", bytes(blobs.data), pdb=pdb_stream(bytes(20), 0, [0] * 64))
    reader = srm.read_pdb(data)
    mdi = reader.GetMethodDebugInformation(srm.MetadataTokens.MethodDebugInformationHandle(1))
    assert srm.token(mdi.LocalSignature) & 0xFFFFFF == info.local_signature if info.local_signature else \
        mdi.LocalSignature.IsNil
    decoded = [(int(p.Offset), srm.token(p.Document) & 0xFFFFFF, int(p.StartLine), int(p.StartColumn),
                int(p.EndLine), int(p.EndColumn)) for p in mdi.GetSequencePoints()]
    assert decoded == [(p.il_offset, p.document, p.start_line, p.start_column, p.end_line, p.end_column)
                       for p in info.points]


@pytest.mark.runtime
def test_pdb_delta_for_a_method_without_sequence_points(srm: Srm, build_farm: BuildFarm) -> None:
    """A method with locals but no sequence points: SRM must still read the delta's debug row (as empty)."""
    build, pdb = load_build(str(build_farm["gen0"].dll))
    assert pdb is not None
    builder = DeltaBuilder(Baseline(build, pdb), build, pdb)
    data, _docs, _added = builder._pdb_delta([(3, MethodDebugInfo(5, []))], [0] * TABLE_COUNT, 1)
    reader = srm.read_pdb(data)
    assert srm.enc_map(reader) == [token(T.MethodDebugInformation, 3)]
    mdi = reader.GetMethodDebugInformation(srm.MetadataTokens.MethodDebugInformationHandle(1))
    assert list(mdi.GetSequencePoints()) == []
