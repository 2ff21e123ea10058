"""CIL method bodies: header and exception clauses (ECMA-335 II.25.4) and instruction operands (III)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import BadImageError

# Operand kinds. Token operands are 4 bytes and named by what they refer to.
NONE, I1, I4, I8, R4, R8, BR1, BR4, VAR1, VAR2, SWITCH = "none", "i1", "i4", "i8", "r4", "r8", "br1", "br4", "var1", "var2", "switch"
METHOD, FIELD, TYPE, STRING, SIG, TOK = "method", "field", "type", "string", "sig", "tok"
TOKEN_KINDS = frozenset({METHOD, FIELD, TYPE, STRING, SIG, TOK})
_SIZES = {NONE: 0, I1: 1, I4: 4, I8: 8, R4: 4, R8: 8, BR1: 1, BR4: 4, VAR1: 1, VAR2: 2}


def _one_byte() -> dict[int, str]:
    ops: dict[int, str] = {}
    for op in range(0x0E):
        ops[op] = NONE
    for op in (0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13):
        ops[op] = VAR1
    for op in range(0x14, 0x1F):
        ops[op] = NONE
    ops.update({0x1F: I1, 0x20: I4, 0x21: I8, 0x22: R4, 0x23: R8, 0x25: NONE, 0x26: NONE,
                0x27: METHOD, 0x28: METHOD, 0x29: SIG, 0x2A: NONE})
    for op in range(0x2B, 0x38):
        ops[op] = BR1
    for op in range(0x38, 0x45):
        ops[op] = BR4
    ops[0x45] = SWITCH
    for op in range(0x46, 0x6F):
        ops[op] = NONE
    ops.update({0x6F: METHOD, 0x70: TYPE, 0x71: TYPE, 0x72: STRING, 0x73: METHOD, 0x74: TYPE, 0x75: TYPE,
                0x76: NONE, 0x79: TYPE, 0x7A: NONE})
    for op in range(0x7B, 0x81):
        ops[op] = FIELD
    ops[0x81] = TYPE
    for op in range(0x82, 0x8C):
        ops[op] = NONE
    ops.update({0x8C: TYPE, 0x8D: TYPE, 0x8E: NONE, 0x8F: TYPE})
    for op in range(0x90, 0xA3):
        ops[op] = NONE
    ops.update({0xA3: TYPE, 0xA4: TYPE, 0xA5: TYPE})
    for op in range(0xB3, 0xBB):
        ops[op] = NONE
    ops.update({0xC2: TYPE, 0xC3: NONE, 0xC6: TYPE, 0xD0: TOK})
    for op in range(0xD1, 0xDD):
        ops[op] = NONE
    ops.update({0xDD: BR4, 0xDE: BR1, 0xDF: NONE, 0xE0: NONE})
    return ops


ONE_BYTE: dict[int, str] = _one_byte()
TWO_BYTE: dict[int, str] = {
    0x00: NONE, 0x01: NONE, 0x02: NONE, 0x03: NONE, 0x04: NONE, 0x05: NONE, 0x06: METHOD, 0x07: METHOD,
    0x09: VAR2, 0x0A: VAR2, 0x0B: VAR2, 0x0C: VAR2, 0x0D: VAR2, 0x0E: VAR2, 0x0F: NONE, 0x11: NONE,
    0x12: I1, 0x13: NONE, 0x14: NONE, 0x15: TYPE, 0x16: TYPE, 0x17: NONE, 0x18: NONE, 0x19: I1, 0x1A: NONE,
    0x1C: TYPE, 0x1D: NONE, 0x1E: NONE,
}


@dataclass(frozen=True)
class Instruction:
    offset: int
    opcode: int  # 0xFEnn for two-byte opcodes
    kind: str
    operand_offset: int
    operand_size: int


def instructions(code: bytes) -> Iterator[Instruction]:
    """Decode the instruction stream; raises BadImageError on an unknown opcode or truncation."""
    pos, n = 0, len(code)
    while pos < n:
        start = pos
        op = code[pos]
        pos += 1
        if op == 0xFE:
            if pos >= n:
                raise BadImageError("truncated two-byte opcode")
            op2 = code[pos]
            pos += 1
            kind = TWO_BYTE.get(op2)
            opcode = 0xFE00 | op2
        else:
            kind = ONE_BYTE.get(op)
            opcode = op
        if kind is None:
            raise BadImageError(f"unknown opcode {opcode:#x} at IL offset {start:#x}")
        if kind == SWITCH:
            if pos + 4 > n:
                raise BadImageError("truncated switch")
            count, = struct.unpack_from("<I", code, pos)
            size = 4 + 4 * count
        else:
            size = 4 if kind in TOKEN_KINDS else _SIZES[kind]
        if pos + size > n:
            raise BadImageError(f"truncated operand at IL offset {start:#x}")
        yield Instruction(start, opcode, kind, pos, size)
        pos += size


def _operand_table(ops: dict[int, str]) -> tuple[list[int], list[bool]]:
    """Per opcode byte: operand size (-1 unknown opcode, -2 switch) and whether the operand is a token."""
    sizes, tokens = [-1] * 256, [False] * 256
    for op, kind in ops.items():
        sizes[op] = 4 if kind in TOKEN_KINDS else -2 if kind == SWITCH else _SIZES[kind]
        tokens[op] = kind in TOKEN_KINDS
    return sizes, tokens


_ONE_SIZES, _ONE_TOKENS = _operand_table(ONE_BYTE)
_TWO_SIZES, _TWO_TOKENS = _operand_table(TWO_BYTE)


def token_offsets(code: bytes) -> list[int]:
    """Offsets of the token operands in `code`: what `instructions` finds of TOKEN_KINDS, without an object per
    instruction (a structural save normalizes every body of the new build through this loop). Raises
    BadImageError as `instructions` does."""
    out: list[int] = []
    pos, n = 0, len(code)
    one_sizes, one_tokens = _ONE_SIZES, _ONE_TOKENS
    while pos < n:
        op = code[pos]
        pos += 1
        if op == 0xFE:
            if pos >= n:
                raise BadImageError("truncated two-byte opcode")
            op = code[pos]
            pos += 1
            size, token = _TWO_SIZES[op], _TWO_TOKENS[op]
            if size == -1:
                raise BadImageError(f"unknown opcode {0xFE00 | op:#x} at IL offset {pos - 2:#x}")
        else:
            size, token = one_sizes[op], one_tokens[op]
            if size == -1:
                raise BadImageError(f"unknown opcode {op:#x} at IL offset {pos - 1:#x}")
        if size == -2:
            if pos + 4 > n:
                raise BadImageError("truncated switch")
            size = 4 + 4 * int.from_bytes(code[pos:pos + 4], "little")
        if token:
            out.append(pos)
        pos += size
    if pos > n:
        raise BadImageError("truncated operand at the end of the IL")
    return out


@lru_cache(maxsize=1 << 16)
def split_tokens(code: bytes) -> tuple[bytes, tuple[int, ...]]:
    """`code` with its token operands zeroed, and those tokens in order: a body's identity apart from what its
    tokens name. Memoized on the bytes (a pure function): most bodies of a new build are byte-identical to a
    running one's, and a structural save splits every body. Raises BadImageError as `instructions` does."""
    offsets = token_offsets(code)
    if not offsets:
        return code, ()
    zeroed = bytearray(code)
    tokens = []
    for at in offsets:
        tokens.append(int.from_bytes(code[at:at + 4], "little"))
        zeroed[at:at + 4] = b"\0\0\0\0"
    return bytes(zeroed), tuple(tokens)


@lru_cache(maxsize=1 << 16)
def body_tokens(body: bytes) -> frozenset[int]:
    """Every metadata token a whole method body (header, code, sections) holds: the code's operands, the locals
    signature, the classes its catch clauses name. Two builds' bodies with the same bytes are the same code iff
    these tokens name the same things in both. Memoized on the bytes (a pure function). Raises BadImageError as
    `parse_body` does."""
    parsed = parse_body(body)
    tokens = set(split_tokens(bytes(parsed.code))[1])
    if parsed.local_sig:
        tokens.add(parsed.local_sig)
    tokens.update(c.class_token_or_filter for c in parsed.clauses if c.flags == 0 and c.class_token_or_filter)
    return frozenset(tokens)


def map_tokens(code: bytes, fn: Callable[[str, int], int]) -> bytes:
    """Copy `code` with every token operand replaced by fn(kind, token)."""
    out = bytearray(code)
    for ins in instructions(code):
        if ins.kind in TOKEN_KINDS:
            tok, = struct.unpack_from("<I", code, ins.operand_offset)
            struct.pack_into("<I", out, ins.operand_offset, fn(ins.kind, tok))
    return bytes(out)


@dataclass
class Clause:
    flags: int  # 0 catch, 1 filter, 2 finally, 4 fault
    try_offset: int
    try_length: int
    handler_offset: int
    handler_length: int
    class_token_or_filter: int


@dataclass
class MethodBody:
    max_stack: int
    init_locals: bool
    local_sig: int  # StandAloneSig token, 0 when none
    code: bytes
    clauses: list[Clause] = field(default_factory=list)
    size: int = 0  # bytes the body occupied where it was read (header, code, sections)


def body_size(data: bytes, off: int) -> int | None:
    """Bytes the body at data[off] occupies (header, code, data sections), or None when the header is unreadable.

    Lets a reader slice just the body instead of the rest of its section (which made reading every body
    quadratic in the size of the assembly)."""
    if off >= len(data):
        return None
    first = data[off]
    if first & 3 == 2:
        return 1 + (first >> 2)
    if first & 3 != 3 or off + 12 > len(data):
        return None
    flags_size, _max_stack, code_size = struct.unpack_from("<HHI", data, off)
    pos = (flags_size >> 12) * 4 + code_size
    more = bool(flags_size & 0x8)
    while more:
        pos = (pos + 3) & ~3
        if off + pos + 4 > len(data):
            return None
        kind = data[off + pos]
        more = bool(kind & 0x80)
        size = int.from_bytes(data[off + pos + 1:off + pos + 4], "little") if kind & 0x40 else data[off + pos + 1]
        if size < 4:
            return None
        pos += size
    return pos


def parse_body(data: bytes) -> MethodBody:
    """Parse a method body that starts at data[0] (the header)."""
    if not data:
        raise BadImageError("empty method body")
    first = data[0]
    if first & 3 == 2:  # tiny
        size = first >> 2
        if 1 + size > len(data):
            raise BadImageError("truncated tiny method body")
        return MethodBody(8, False, 0, data[1:1 + size], [], 1 + size)
    if first & 3 != 3:
        raise BadImageError(f"bad method header byte {first:#x}")
    if len(data) < 12:
        raise BadImageError("truncated fat method header")
    flags_size, max_stack, code_size, local_sig = struct.unpack_from("<HHII", data, 0)
    header = (flags_size >> 12) * 4
    if header < 12 or header + code_size > len(data):
        raise BadImageError("fat method header sizes out of range")
    code = data[header:header + code_size]
    pos = header + code_size
    clauses: list[Clause] = []
    more = bool(flags_size & 0x8)
    while more:
        pos = (pos + 3) & ~3
        if pos + 4 > len(data):
            raise BadImageError("truncated method data section")
        kind = data[pos]
        if not kind & 0x1:
            raise BadImageError(f"unsupported method data section kind {kind:#x}")
        fat = bool(kind & 0x40)
        more = bool(kind & 0x80)
        sect_size = int.from_bytes(data[pos + 1:pos + 4], "little") if fat else data[pos + 1]
        if sect_size < 4:  # a section's size counts its own 4-byte header; less would never advance (a hang)
            raise BadImageError(f"method data section at body offset {pos:#x} has size {sect_size} (under 4)")
        if fat:
            n = (sect_size - 4) // 24
            if pos + 4 + 24 * n > len(data):
                raise BadImageError("truncated exception clauses")
            for i in range(n):
                clauses.append(Clause(*struct.unpack_from("<IIIIII", data, pos + 4 + 24 * i)))
        else:
            n = (sect_size - 4) // 12
            if pos + 4 + 12 * n > len(data):
                raise BadImageError("truncated exception clauses")
            for i in range(n):
                clauses.append(Clause(*struct.unpack_from("<HHBHBI", data, pos + 4 + 12 * i)))
        pos += sect_size
    return MethodBody(max_stack, bool(flags_size & 0x10), local_sig, code, clauses, pos)


def encode_body(body: MethodBody) -> bytes:
    """Serialize a body: tiny header when allowed, else fat; exception clauses in fat form.

    A tiny header has no flags: a body that zero-initializes (InitLocals, which also zeroes `localloc` memory)
    keeps a fat header even without locals."""
    code = body.code
    if len(code) < 64 and body.max_stack <= 8 and not body.local_sig and not body.clauses and not body.init_locals:
        return bytes([(len(code) << 2) | 2]) + code
    flags = 0x3 | (0x10 if body.init_locals else 0) | (0x8 if body.clauses else 0) | (3 << 12)
    out = bytearray(struct.pack("<HHII", flags, body.max_stack, len(code), body.local_sig))
    out += code
    if body.clauses:
        while len(out) % 4:
            out.append(0)
        size = 4 + 24 * len(body.clauses)
        out += bytes([0x41]) + size.to_bytes(3, "little")
        for c in body.clauses:
            out += struct.pack("<IIIIII", c.flags, c.try_offset, c.try_length, c.handler_offset,
                               c.handler_length, c.class_token_or_filter)
    return bytes(out)
