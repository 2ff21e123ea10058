"""Compressed integers and signature blobs (ECMA-335 II.23.2).

Signatures embed TypeDef/TypeRef/TypeSpec tokens. `map_signature` walks a blob and lets a callback
replace each embedded token: with a symbolic name (to compare two builds) or with a remapped token
(to write a delta). One walker serves both, so they cannot disagree about the grammar.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import BadImageError
from .schema import T, TypeDefOrRef


def read_compressed(data: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned compressed integer at `pos`; return (value, next position).

    Raises BadImageError (not IndexError) when the integer runs past the end of `data`: blobs come from the file.
    """
    try:
        b = data[pos]
        if b & 0x80 == 0:
            return b, pos + 1
        if b & 0xC0 == 0x80:
            return ((b & 0x3F) << 8) | data[pos + 1], pos + 2
        if b & 0xE0 == 0xC0:
            return ((b & 0x1F) << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3], pos + 4
    except IndexError:
        raise BadImageError(f"compressed integer at offset {pos:#x} runs past the end of its blob "
                            f"({len(data)} bytes)") from None
    raise BadImageError(f"bad compressed integer prefix {b:#x}")


def compressed(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"{value} is negative: not a compressed integer")
    if value < 0x80:
        return bytes([value])
    if value < 0x4000:
        return bytes([0x80 | (value >> 8), value & 0xFF])
    if value < 0x20000000:
        return bytes([0xC0 | (value >> 24), (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF])
    raise ValueError(f"{value} is too large for a compressed integer")


def compressed_signed(value: int) -> bytes:
    """Signed compressed integer (ECMA-335 II.23.2, as used by portable PDB sequence points)."""
    if -0x40 <= value < 0x40:
        return bytes([((value & 0x3F) << 1) | (1 if value < 0 else 0)])
    if -0x2000 <= value < 0x2000:
        v = ((value & 0x1FFF) << 1) | (1 if value < 0 else 0)
        return bytes([0x80 | (v >> 8), v & 0xFF])
    if -0x10000000 <= value < 0x10000000:
        v = ((value & 0xFFFFFFF) << 1) | (1 if value < 0 else 0)
        return bytes([0xC0 | (v >> 24), (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF])
    raise ValueError(f"{value} is out of range for a signed compressed integer")


def read_compressed_signed(data: bytes, pos: int) -> tuple[int, int]:
    raw, nxt = read_compressed(data, pos)
    width = nxt - pos
    bits = {1: 6, 2: 13, 4: 28}[width]
    value = raw >> 1
    if raw & 1:
        value -= 1 << bits
    return value, nxt


TypeMapper = Callable[[T, int], bytes]
"""Given the table and row of a type token in a signature, return the bytes to put in its place."""

_LEAF = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x16, 0x18, 0x19, 0x1C}


MAX_TYPE_DEPTH = 200
"""Types nested deeper than this in one signature are refused as corrupt: real ones nest a few levels, and the
walker recurses once per level (a blob of 0x0F PTR bytes would otherwise end in RecursionError)."""


class _Walker:
    def __init__(self, blob: bytes, fn: TypeMapper) -> None:
        self.b = blob
        self.pos = 0
        self.out = bytearray()
        self.fn = fn
        self.depth = 0

    def byte(self) -> int:
        v = self.b[self.pos]
        self.pos += 1
        self.out.append(v)
        return v

    def number(self) -> int:
        v, nxt = read_compressed(self.b, self.pos)
        self.out += self.b[self.pos:nxt]
        self.pos = nxt
        return v

    def type_token(self) -> None:
        coded, self.pos = read_compressed(self.b, self.pos)
        table, row = TypeDefOrRef.decode(coded)
        if table is None:
            raise BadImageError("bad type token in signature")
        self.out += self.fn(table, row)

    def type(self) -> None:
        et = self.byte()
        if et in _LEAF:
            return
        self.depth += 1
        if self.depth > MAX_TYPE_DEPTH:
            raise BadImageError(f"signature types nested more than {MAX_TYPE_DEPTH} deep at byte {self.pos - 1:#x}")
        if et in (0x0F, 0x10, 0x1D, 0x45, 0x41):  # PTR BYREF SZARRAY PINNED SENTINEL
            self.type()
        elif et in (0x11, 0x12):  # VALUETYPE CLASS
            self.type_token()
        elif et in (0x13, 0x1E):  # VAR MVAR
            self.number()
        elif et in (0x1F, 0x20):  # CMOD_REQD CMOD_OPT, then the modified type
            self.type_token()
            self.type()
        elif et == 0x14:  # ARRAY
            self.type()
            self.number()
            for _ in range(self.number()):
                self.number()
            for _ in range(self.number()):
                self.number()  # signed, but its length is read the same way
        elif et == 0x15:  # GENERICINST
            self.byte()
            self.type_token()
            for _ in range(self.number()):
                self.type()
        elif et == 0x1B:  # FNPTR
            self.method(self.byte())
        else:
            raise BadImageError(f"unknown element type {et:#x} in signature")
        self.depth -= 1

    def method(self, conv: int) -> None:
        if conv & 0x10:
            self.number()
        count = self.number()
        self.type()
        for _ in range(count):
            self.type()

    def signature(self) -> None:
        conv = self.byte()
        kind = conv & 0x0F
        if kind == 0x06:  # FIELD
            self.type()
        elif kind == 0x07:  # LOCAL_SIG
            for _ in range(self.number()):
                self.type()
        elif kind == 0x08:  # PROPERTY
            count = self.number()
            self.type()
            for _ in range(count):
                self.type()
        elif kind == 0x0A:  # GENERICINST (MethodSpec)
            for _ in range(self.number()):
                self.type()
        else:
            self.method(conv)


def map_signature(blob: bytes, fn: TypeMapper) -> bytes:
    """Copy a field/method/property/locals/MethodSpec signature, replacing each type token via `fn`."""
    w = _Walker(blob, fn)
    try:
        w.signature()
    except IndexError:
        raise BadImageError("truncated signature") from None
    return bytes(w.out) + blob[w.pos:]


def map_type_signature(blob: bytes, fn: TypeMapper) -> bytes:
    """Copy a TypeSpec blob (a bare type), replacing each type token via `fn`."""
    w = _Walker(blob, fn)
    try:
        w.type()
    except IndexError:
        raise BadImageError("truncated type signature") from None
    return bytes(w.out) + blob[w.pos:]


def encode_type_token(table: T, row: int) -> bytes:
    return compressed(TypeDefOrRef.encode(table, row))
