"""Signature blobs, compressed integers and CIL method bodies.

Oracles: ECMA-335 II.23.2's worked examples, System.Reflection.Metadata's BlobBuilder, System.Reflection.Emit's
OpCodes table, SRM's method body reader (on every body of FSharp.Core), and an independent signature encoder
written here for generated signatures.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fsharp_testkit import BuildFarm, FsBuild, Srm
from hypothesis import given, settings
from hypothesis import strategies as st

from hotreload.metadata import il
from hotreload.metadata.errors import BadImageError
from hotreload.metadata.il import Clause, MethodBody, encode_body, instructions, map_tokens, parse_body
from hotreload.metadata.reader import Assembly
from hotreload.metadata.schema import T, TypeDefOrRef, split_token
from hotreload.metadata.sigs import (
    _Walker,
    compressed,
    compressed_signed,
    encode_type_token,
    map_signature,
    map_type_signature,
    read_compressed,
    read_compressed_signed,
)
from hotreload.runtime import RuntimeInfo

# ---- compressed integers ------------------------------------------------------------------------------

# ECMA-335 II.23.2, the examples printed in the standard.
UNSIGNED_EXAMPLES = [(0x03, "03"), (0x7F, "7f"), (0x80, "8080"), (0x2E57, "ae57"), (0x3FFF, "bfff"),
                     (0x4000, "c0004000"), (0x1FFFFFFF, "dfffffff")]
SIGNED_EXAMPLES = [(3, "06"), (-3, "7b"), (64, "8080"), (-64, "01"), (8192, "c0004000"), (-8192, "8001"),
                   (268435455, "dffffffe"), (-268435456, "c0000001")]


@pytest.mark.parametrize(("value", "encoded"), UNSIGNED_EXAMPLES)
def test_compressed_matches_ecma_examples(value: int, encoded: str) -> None:
    assert compressed(value).hex() == encoded
    assert read_compressed(bytes.fromhex(encoded) + b"\xff", 0) == (value, len(encoded) // 2)


@pytest.mark.parametrize(("value", "encoded"), SIGNED_EXAMPLES)
def test_compressed_signed_matches_ecma_examples(value: int, encoded: str) -> None:
    assert compressed_signed(value).hex() == encoded
    assert read_compressed_signed(bytes.fromhex(encoded), 0) == (value, len(encoded) // 2)


@given(st.integers(0, 0x1FFFFFFF), st.binary(max_size=3))
def test_compressed_round_trip(value: int, tail: bytes) -> None:
    data = b"\x99" + compressed(value) + tail
    decoded, nxt = read_compressed(data, 1)
    assert decoded == value
    assert nxt == len(data) - len(tail)
    assert len(compressed(value)) == (1 if value < 0x80 else 2 if value < 0x4000 else 4)


@given(st.integers(-0x10000000, 0x0FFFFFFF))
def test_compressed_signed_round_trip(value: int) -> None:
    data = compressed_signed(value)
    assert read_compressed_signed(data, 0) == (value, len(data))


@pytest.mark.parametrize("value", [-1, 0x20000000, 1 << 40])
def test_compressed_rejects_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="compressed"):
        compressed(value)


@pytest.mark.parametrize("value", [0x10000000, -0x10000001])
def test_compressed_signed_rejects_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="range"):
        compressed_signed(value)


@pytest.mark.parametrize("prefix", [0xE0, 0xF0, 0xFF])
def test_read_compressed_rejects_bad_prefix(prefix: int) -> None:
    with pytest.raises(BadImageError):
        read_compressed(bytes([prefix, 0, 0, 0]), 0)


@pytest.mark.runtime
def test_compressed_codecs_agree_with_srm_blob_builder(srm: Srm) -> None:
    unsigned = [0, 1, 0x3F, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0x2E57, 0x3FFF, 0x4000, 0x4001, 0xFFFF, 0x10000,
                0x123456, 0x1FFFFFFF]
    signed = [0, 1, -1, 63, -64, 64, -65, 0x1FFF, -0x2000, 0x2000, -0x2001, 0x0FFFFFFF, -0x10000000, 12345,
              -12345, 1 << 20, -(1 << 20)]
    for value in unsigned:
        builder = srm.BlobBuilder()
        builder.WriteCompressedInteger(value)
        assert compressed(value) == srm.to_py(builder.ToArray()), hex(value)
    for value in signed:
        builder = srm.BlobBuilder()
        builder.WriteCompressedSignedInteger(value)
        assert compressed_signed(value) == srm.to_py(builder.ToArray()), value


# ---- signatures: generated, against an encoder written independently here ---------------------------------

LEAF_TYPES = [0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x16, 0x18, 0x19, 0x1C]
TYPE_TABLES = (T.TypeDef, T.TypeRef, T.TypeSpec)


@dataclass(frozen=True)
class Tok:
    table: T
    row: int


Sig = tuple[Any, ...]  # ("leaf", et) | ("class", Tok) | ("ptr", Sig) | ... (see `enc_type`)


def enc_tok(tok: Tok) -> bytes:
    coded = (tok.row << 2) | TYPE_TABLES.index(tok.table)
    return compressed(coded)


def enc_type(t: Sig) -> bytes:
    kind = t[0]
    if kind == "leaf":
        return bytes([t[1]])
    if kind in ("ptr", "byref", "szarray", "pinned", "sentinel"):
        code = {"ptr": 0x0F, "byref": 0x10, "szarray": 0x1D, "pinned": 0x45, "sentinel": 0x41}[kind]
        return bytes([code]) + enc_type(t[1])
    if kind in ("class", "valuetype"):
        return bytes([0x12 if kind == "class" else 0x11]) + enc_tok(t[1])
    if kind in ("var", "mvar"):
        return bytes([0x13 if kind == "var" else 0x1E]) + compressed(t[1])
    if kind == "cmod":
        _, required, tok, inner = t
        return bytes([0x1F if required else 0x20]) + enc_tok(tok) + enc_type(inner)
    if kind == "array":
        _, inner, rank, sizes, lows = t
        return (b"\x14" + enc_type(inner) + compressed(rank) + compressed(len(sizes))
                + b"".join(map(compressed, sizes)) + compressed(len(lows)) + b"".join(map(compressed_signed, lows)))
    if kind == "generic":
        _, valuetype, tok, args = t
        return (b"\x15" + bytes([0x11 if valuetype else 0x12]) + enc_tok(tok) + compressed(len(args))
                + b"".join(enc_type(a) for a in args))
    if kind == "fnptr":
        return b"\x1b" + enc_method(t[1])
    raise AssertionError(kind)


def enc_method(m: Sig) -> bytes:
    _, conv, generic_count, ret, params = m
    out = bytes([conv]) + (compressed(generic_count) if conv & 0x10 else b"")
    return out + compressed(len(params)) + enc_type(ret) + b"".join(enc_type(p) for p in params)


def enc_signature(s: Sig) -> bytes:
    kind = s[0]
    if kind == "field":
        return b"\x06" + enc_type(s[1])
    if kind == "locals":
        return b"\x07" + compressed(len(s[1])) + b"".join(enc_type(t) for t in s[1])
    if kind == "property":
        _, has_this, ret, params = s
        return (bytes([0x28 if has_this else 0x08]) + compressed(len(params)) + enc_type(ret)
                + b"".join(enc_type(p) for p in params))
    if kind == "methodspec":
        return b"\x0a" + compressed(len(s[1])) + b"".join(enc_type(t) for t in s[1])
    return enc_method(s)


def remap(t: Any, fn: Callable[[Tok], Tok]) -> Any:
    """The same signature tree with every token replaced by fn(token)."""
    if isinstance(t, Tok):
        return fn(t)
    if isinstance(t, tuple):
        return tuple(remap(x, fn) for x in t)
    if isinstance(t, list):
        return [remap(x, fn) for x in t]
    return t


rows = st.one_of(st.integers(1, 0x1F), st.integers(0x20, 0xFFF), st.integers(0x1000, 0x7FFFFF))
toks = st.builds(Tok, st.sampled_from(TYPE_TABLES), rows)


def _extend(inner: st.SearchStrategy[Sig]) -> st.SearchStrategy[Sig]:
    method = st.tuples(st.just("method"), st.sampled_from([0x00, 0x20, 0x05, 0x30]), st.integers(1, 3), inner,
                       st.lists(inner, max_size=3))
    return st.one_of(
        st.tuples(st.sampled_from(["ptr", "byref", "szarray", "pinned"]), inner),
        st.tuples(st.just("cmod"), st.booleans(), toks, inner),
        st.tuples(st.just("array"), inner, st.integers(1, 4), st.lists(st.integers(0, 0x10000), max_size=3),
                  st.lists(st.integers(-0x1000, 0x1000), max_size=3)),
        st.tuples(st.just("generic"), st.booleans(), toks, st.lists(inner, min_size=1, max_size=3)),
        st.tuples(st.just("fnptr"), method),
    )


types = st.recursive(
    st.one_of(st.tuples(st.just("leaf"), st.sampled_from(LEAF_TYPES)),
              st.tuples(st.sampled_from(["class", "valuetype"]), toks),
              st.tuples(st.sampled_from(["var", "mvar"]), st.integers(0, 200))),
    _extend, max_leaves=8)

signatures = st.one_of(
    st.tuples(st.just("field"), types),
    st.tuples(st.just("locals"), st.lists(types, max_size=4)),
    st.tuples(st.just("property"), st.booleans(), types, st.lists(types, max_size=3)),
    st.tuples(st.just("methodspec"), st.lists(types, min_size=1, max_size=3)),
    st.tuples(st.just("method"), st.sampled_from([0x00, 0x20, 0x60, 0x05, 0x10, 0x30]), st.integers(1, 5), types,
              st.lists(types, max_size=4)),
    st.tuples(st.just("method"), st.just(0x05), st.just(0), types,
              st.tuples(types, st.tuples(st.just("sentinel"), types)).map(list)),
)


def _shift(tok: Tok) -> Tok:
    """A remapping that changes tables and the encoded width of most tokens."""
    table = {T.TypeDef: T.TypeRef, T.TypeRef: T.TypeSpec, T.TypeSpec: T.TypeDef}[tok.table]
    return Tok(table, tok.row * 37 % 0x3FFFFF + 1)


def _shift_bytes(table: T, row: int) -> bytes:
    return enc_tok(_shift(Tok(table, row)))


@settings(max_examples=300)
@given(signatures)
def test_map_signature_rewrites_every_embedded_token(sig: Sig) -> None:
    blob = enc_signature(sig)
    assert map_signature(blob, _shift_bytes) == enc_signature(remap(sig, _shift))
    assert map_signature(blob, encode_type_token) == blob


@settings(max_examples=200)
@given(types)
def test_map_type_signature_rewrites_every_embedded_token(t: Sig) -> None:
    blob = enc_type(t)
    assert map_type_signature(blob, _shift_bytes) == enc_type(remap(t, _shift))


@given(signatures, st.data())
def test_truncated_signature_raises_bad_image(sig: Sig, data: st.DataObject) -> None:
    blob = enc_signature(sig)
    cut = data.draw(st.integers(0, len(blob) - 1))
    walker = _Walker(blob[:cut], encode_type_token)
    try:
        walker.signature()
    except (BadImageError, IndexError):
        pass  # map_signature turns IndexError into BadImageError (checked below)
    else:
        pytest.fail(f"a signature cut to {cut} of {len(blob)} bytes parsed")
    with pytest.raises(BadImageError):
        map_signature(blob[:cut], encode_type_token)


@pytest.mark.parametrize("blob", [b"\x06\x99", b"\x06\x15\x13\x00", b"\x00\x01\x01\x47"])
def test_unknown_element_type_raises(blob: bytes) -> None:
    with pytest.raises(BadImageError):
        map_signature(blob, encode_type_token)


def test_encode_type_token_uses_type_def_or_ref_coding() -> None:
    assert encode_type_token(T.TypeRef, 5) == compressed((5 << 2) | 1)
    assert TypeDefOrRef.decode((5 << 2) | 2) == (T.TypeSpec, 5)
    with pytest.raises(ValueError, match="not in"):
        encode_type_token(T.MethodDef, 1)


# ---- real assemblies: HotLib (our F# build) and FSharp.Core ---------------------------------------------

@pytest.fixture(scope="module")
def gen0(build_farm: BuildFarm) -> FsBuild:
    return build_farm["gen0"]


@pytest.fixture(scope="module", params=["HotLib.dll", "FSharp.Core.dll"])
def assembly_path(request: pytest.FixtureRequest, gen0: FsBuild) -> Path:
    return gen0.dll.parent / request.param


@pytest.fixture(scope="module")
def assembly(assembly_path: Path) -> Assembly:
    return Assembly.from_file(str(assembly_path))


def _signature_blobs(asm: Assembly) -> Iterator[tuple[str, bytes]]:
    md = asm.md
    for table, col in ((T.MethodDef, 4), (T.Field, 2), (T.MemberRef, 2), (T.StandAloneSig, 0), (T.Property, 2),
                       (T.MethodSpec, 1)):
        for rid, row in enumerate(md.rows(table), 1):
            yield f"{table.name}#{rid}", md.blob(row[col])


@pytest.mark.runtime
def test_every_real_signature_is_walked_to_its_end(assembly: Assembly) -> None:
    md = assembly.md
    counts = md.row_counts
    seen = 0
    for where, blob in _signature_blobs(assembly):
        found: list[tuple[T, int]] = []

        def record(table: T, row: int, found: list[tuple[T, int]] = found) -> bytes:
            found.append((table, row))
            return encode_type_token(table, row)

        walker = _Walker(blob, record)
        walker.signature()
        assert walker.pos == len(blob), f"{where}: {len(blob) - walker.pos} bytes left unread"
        assert bytes(walker.out) == blob, where
        for table, row in found:
            assert 1 <= row <= counts[table], f"{where}: {table.name} row {row} does not exist"
        seen += 1
    for rid, (sig,) in enumerate(md.rows(T.TypeSpec), 1):
        blob = md.blob(sig)
        walker = _Walker(blob, encode_type_token)
        walker.type()
        assert walker.pos == len(blob), f"TypeSpec#{rid}"
    assert seen > 30


# ---- CIL: the opcode table against System.Reflection.Emit ------------------------------------------------

OPERAND_KINDS = {
    "InlineNone": il.NONE, "ShortInlineI": il.I1, "InlineI": il.I4, "InlineI8": il.I8, "ShortInlineR": il.R4,
    "InlineR": il.R8, "ShortInlineBrTarget": il.BR1, "InlineBrTarget": il.BR4, "ShortInlineVar": il.VAR1,
    "InlineVar": il.VAR2, "InlineSwitch": il.SWITCH, "InlineMethod": il.METHOD, "InlineField": il.FIELD,
    "InlineType": il.TYPE, "InlineString": il.STRING, "InlineSig": il.SIG, "InlineTok": il.TOK,
}
OPERAND_SIZES = {il.NONE: 0, il.I1: 1, il.I4: 4, il.I8: 8, il.R4: 4, il.R8: 8, il.BR1: 1, il.BR4: 4, il.VAR1: 1,
                 il.VAR2: 2, il.METHOD: 4, il.FIELD: 4, il.TYPE: 4, il.STRING: 4, il.SIG: 4, il.TOK: 4}


def _emit_opcodes() -> dict[int, tuple[str, str]]:
    import clr
    from System.Reflection.Emit import OpCodes, OpCodeType  # type: ignore[import-not-found]

    out: dict[int, tuple[str, str]] = {}
    for f in clr.GetClrType(OpCodes).GetFields():
        op = f.GetValue(None)
        if op.OpCodeType == OpCodeType.Nternal:  # prefix1..7/prefixref: not instructions
            continue
        value = int(op.Value) & 0xFFFF
        out[value] = (str(op.Name), str(op.OperandType))
    return out


@pytest.mark.runtime
def test_opcode_table_matches_reflection_emit(dotnet_runtime: RuntimeInfo) -> None:
    emit = _emit_opcodes()
    ours = {**il.ONE_BYTE, **{0xFE00 | k: v for k, v in il.TWO_BYTE.items()}}
    assert len(emit) > 200
    for value, (name, operand) in emit.items():
        assert value in ours, f"{name} ({value:#x}) is missing from our opcode table"
        assert ours[value] == OPERAND_KINDS[operand], f"{name} ({value:#x}): {ours[value]} vs {operand}"
    # ours may know one opcode .NET's table lacks: `no.` (0xFE19, ECMA-335 III.2.2); nothing else
    assert set(ours) - set(emit) <= {0xFE19}


@pytest.mark.runtime
def test_instruction_sizes_match_reflection_emit(dotnet_runtime: RuntimeInfo) -> None:
    for value, (name, operand) in _emit_opcodes().items():
        kind = OPERAND_KINDS[operand]
        code = value.to_bytes(2, "big") if value > 0xFF else bytes([value])
        if kind == il.SWITCH:
            operand_bytes = struct.pack("<Iii", 2, 5, -3)
        else:
            operand_bytes = bytes(range(1, OPERAND_SIZES[kind] + 1))
        decoded = list(instructions(code + operand_bytes + b"\x2a"))  # followed by ret
        assert [d.opcode for d in decoded] == [value, 0x2A], name
        assert decoded[0].operand_offset == len(code), name
        assert decoded[0].operand_size == len(operand_bytes), name
        assert decoded[1].offset == len(code) + len(operand_bytes), name


@pytest.mark.parametrize("code", [b"\xfe", b"\x20\x01\x02", b"\x45\x02\x00\x00\x00\x00", b"\x24", b"\xfe\x08",
                                  b"\x28\x01\x00\x00"])
def test_instructions_reject_unknown_or_truncated_code(code: bytes) -> None:
    with pytest.raises(BadImageError):
        list(instructions(code))


@pytest.mark.parametrize("code", [b"\xfe", b"\x20\x01\x02", b"\x45\x02\x00\x00\x00\x00", b"\x24", b"\xfe\x08",
                                  b"\x28\x01\x00\x00"])
def test_token_offsets_reject_what_instructions_rejects(code: bytes) -> None:
    with pytest.raises(BadImageError):
        il.token_offsets(code)


@given(st.lists(st.sampled_from([
    "00", "2001000000", "2801000006", "7205000070", "d002000001", "1f0a", "26", "fe0601000006", "fe0c0100",
    "45020000000100000002000000", "3805000000", "2b02", "2302000000000000f0", "7b01000004", "2a"]), max_size=40))
def test_token_offsets_are_the_token_operands_instructions_decodes(parts: list[str]) -> None:
    code = bytes.fromhex("".join(parts))
    assert il.token_offsets(code) == [i.operand_offset for i in instructions(code) if i.kind in il.TOKEN_KINDS]


def test_map_tokens_replaces_only_token_operands() -> None:
    code = bytes.fromhex("2001000000" "2801000006" "7205000070" "d002000001" "1f0a" "26" "fe0601000006" "2a")
    calls: list[tuple[str, int]] = []

    def fn(kind: str, tok: int) -> int:
        calls.append((kind, tok))
        return tok + 0x10

    out = map_tokens(code, fn)
    assert calls == [(il.METHOD, 0x06000001), (il.STRING, 0x70000005), (il.TOK, 0x01000002), (il.METHOD, 0x06000001)]
    assert out == bytes.fromhex("2001000000" "2811000006" "7215000070" "d012000001" "1f0a" "26" "fe0611000006" "2a")


# ---- method bodies ----------------------------------------------------------------------------------------

def test_tiny_and_fat_header_choice() -> None:
    tiny = encode_body(MethodBody(8, False, 0, b"\x00" * 63))
    assert tiny[0] == (63 << 2) | 2 and len(tiny) == 64
    for body in (MethodBody(8, False, 0, b"\x00" * 64), MethodBody(9, False, 0, b"\x2a"),
                 MethodBody(8, True, 0x11000001, b"\x2a"), MethodBody(1, False, 0, b"\x2a", [Clause(0, 0, 1, 1, 0, 0)])):
        encoded = encode_body(body)
        assert encoded[0] & 3 == 3, body
        flags, max_stack, size, local_sig = struct.unpack_from("<HHII", encoded)
        assert (flags >> 12, max_stack, size, local_sig) == (3, body.max_stack, len(body.code), body.local_sig)


@given(st.integers(0, 0xFFFF), st.booleans(), st.sampled_from([0, 0x11000001, 0x11FFFFFF]), st.binary(max_size=300),
       st.lists(st.builds(Clause, st.sampled_from([0, 1, 2, 4]), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
                          st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
                max_size=4))
def test_body_round_trip(max_stack: int, init_locals: bool, local_sig: int, code: bytes, clauses: list[Clause]) -> None:
    body = MethodBody(max_stack, init_locals, local_sig, code, clauses)
    encoded = encode_body(body)
    back = parse_body(encoded + b"\xcc" * 5)
    assert back.code == code
    assert back.clauses == clauses
    assert back.local_sig == local_sig
    assert back.size == len(encoded)
    if encoded[0] & 3 == 2:  # tiny: max stack 8, no locals, no clauses
        assert max_stack <= 8 and not local_sig and not clauses and len(code) < 64
    else:
        assert (back.max_stack, back.init_locals) == (max_stack, init_locals)
        if clauses:
            section = (12 + len(code) + 3) & ~3
            assert len(encoded) == section + 4 + 24 * len(clauses)


def test_parse_small_exception_section() -> None:
    code = b"\x00" * 10
    header = struct.pack("<HHII", 0x3 | 0x8 | (3 << 12), 2, len(code), 0)
    small = struct.pack("<HHBHBI", 0, 1, 4, 5, 3, 0x01000007)
    section = bytes([0x01, 4 + len(small), 0, 0]) + small
    body = parse_body(header + code + b"\0\0" + section)
    assert body.clauses == [Clause(0, 1, 4, 5, 3, 0x01000007)]
    assert body.size == len(header) + len(code) + 2 + len(section)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x0e\x00", b"\x13\x30\x02\x00", b"\x1a\x00"])
def test_parse_body_rejects_bad_bodies(data: bytes) -> None:
    with pytest.raises(BadImageError):
        parse_body(data)


def _srm_body(srm: Srm, pe: Any, rva: int) -> tuple[bytes, int, int, bool, int, list[Clause]]:
    body = srm.PEReaderExtensions.GetMethodBody(pe, rva)
    local = body.LocalSignature
    local_tok = 0 if local.IsNil else srm.token(local)
    clauses = []
    for r in body.ExceptionRegions:
        kind = int(r.Kind)
        extra = int(r.FilterOffset) if kind == 1 else (srm.token(r.CatchType) if kind == 0 else 0)
        clauses.append(Clause(kind, int(r.TryOffset), int(r.TryLength), int(r.HandlerOffset), int(r.HandlerLength),
                              extra))
    return (srm.to_py(body.GetILBytes()), int(body.MaxStack), local_tok, bool(body.LocalVariablesInitialized),
            int(body.Size), clauses)


@pytest.mark.runtime
def test_bodies_match_srm_and_survive_reencoding(srm: Srm, assembly: Assembly, assembly_path: Path) -> None:
    pe, _reader = srm.read_pe(assembly_path)
    md = assembly.md
    counts = md.row_counts
    with_clauses = 0
    for rid, row in enumerate(md.rows(T.MethodDef), 1):
        rva = row[0]
        if not rva:
            continue
        body = parse_body(assembly.body_at(rva))
        code, max_stack, local_sig, init_locals, size, clauses = _srm_body(srm, pe, rva)
        where = f"MethodDef#{rid}"
        assert body.code == code, where
        assert (body.max_stack, body.local_sig, body.init_locals, body.size) == (max_stack, local_sig, init_locals,
                                                                                 size), where
        assert body.clauses == clauses, where
        with_clauses += bool(clauses)
        # every instruction decodes, every token names an existing row, every branch lands on an instruction
        decoded = list(instructions(body.code))
        starts = {ins.offset for ins in decoded} | {len(body.code)}
        for ins in decoded:
            operand = body.code[ins.operand_offset:ins.operand_offset + ins.operand_size]
            if ins.kind in il.TOKEN_KINDS:
                table, trow = split_token(int.from_bytes(operand, "little"))
                if table == 0x70:
                    md.user_string(trow)  # raises when the offset is not an entry
                else:
                    assert 1 <= trow <= counts[table], f"{where}: token {table:#x}/{trow} at {ins.offset:#x}"
            elif ins.kind in (il.BR1, il.BR4):
                delta = int.from_bytes(operand, "little", signed=True)
                assert ins.operand_offset + ins.operand_size + delta in starts, f"{where}: branch at {ins.offset:#x}"
        # our encoder's output reads back the same (tiny may replace a small fat header)
        again = parse_body(encode_body(body))
        assert (again.code, again.clauses, again.local_sig) == (body.code, body.clauses, body.local_sig), where
    assert with_clauses > 0 or assembly_path.name == "HotLib.dll"
