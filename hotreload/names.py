"""Symbolic identities for an assembly's entities, so two builds can be compared by name, not row number.

A key is a plain string: it hashes fast, compares across builds, and reads well in error messages.
"""

from __future__ import annotations

from functools import cached_property

from .metadata.reader import Assembly
from .metadata.schema import (
    CustomAttributeType,
    MemberRefParent,
    MethodDefOrRef,
    ResolutionScope,
    T,
    TypeDefOrRef,
    split_token,
)
from .metadata.sigs import map_signature, map_type_signature

_NAME_COLUMN = {T.TypeDef: 1, T.MethodDef: 3, T.Field: 1}
# '|' separates a key's name from its signature; names that contain it (F# active patterns: `|Even|Odd|`)
# carry this stand-in inside keys, and display_name shows '|' again
_BAR = "\u2502"


class Names:
    """Keys for every TypeDef/TypeRef/TypeSpec/member/reference of one assembly (memoized)."""

    def __init__(self, asm: Assembly, renames: dict[tuple[int, int], str] | None = None) -> None:
        self.asm = asm
        self.md = asm.md
        # (table, row) -> the simple name the running module knows this TypeDef/MethodDef/Field by (compiler-
        # generated names carry source lines, so an entity that only moved has a new name in a new build)
        self.renames = renames or {}
        self._cache: dict[tuple[int, int], str] = {}
        self._raw: dict[tuple[int, int], str] = {}  # (table, row) -> this build's simple name
        self._typedefs: dict[int, str] = {}  # TypeDef row -> its full name (with renames)

    def carried_to(self, asm: Assembly) -> Names:
        """These names for `asm`, a build with the same rows, names and signatures (user strings may differ)."""
        names = Names(asm, self.renames)
        names._cache = self._cache  # entity keys only: user-string keys are never cached
        names._raw, names._typedefs = self._raw, self._typedefs
        for name in ("enclosing", "method_owner", "field_owner"):
            if name in self.__dict__:
                names.__dict__[name] = self.__dict__[name]
        return names

    def carry_from(self, other: Names) -> None:
        """Take `other`'s keys that name no line-named entity (no '@'), and its row owners: `other` reads the same
        assembly with fewer renames, all of line-named entities (see Build.renamed)."""
        self._cache = {k: v for k, v in other._cache.items() if "@" not in v}
        self._raw = other._raw  # names as the build gives them: renames aside
        self._typedefs = {k: v for k, v in other._typedefs.items() if "@" not in v}
        for name in ("enclosing", "method_owner", "field_owner"):
            if name in other.__dict__:
                self.__dict__[name] = other.__dict__[name]

    def own_name(self, table: T, row: int) -> str:
        """The simple name of a TypeDef/MethodDef/Field, as the running module knows it."""
        renamed = self.renames.get((int(table), row))
        return renamed if renamed is not None else self.raw_name(table, row)

    def raw_name(self, table: T, row: int) -> str:
        """The simple name this build gives a TypeDef/MethodDef/Field (ignoring renames; memoized: a structural
        save's comparison asks for each many times)."""
        key = (table, row)
        name = self._raw.get(key)
        if name is None:
            name = self._raw[key] = self.md.string(self.md.row(table, row)[_NAME_COLUMN[table]])
        return name

    def depth(self, rid: int) -> int:
        """How many types TypeDef `rid` is nested in."""
        d = 0
        while rid in self.enclosing:
            rid = self.enclosing[rid]
            d += 1
        return d

    # ---- ownership ------------------------------------------------------------------------------
    @cached_property
    def enclosing(self) -> dict[int, int]:
        return {nested: enc for nested, enc in self.md.rows(T.NestedClass)}

    def _owners(self, list_col: int, member_count: int) -> list[int]:
        types = self.md.rows(T.TypeDef)
        owners = [0] * (member_count + 1)
        for i, row in enumerate(types):
            start = row[list_col]
            end = types[i + 1][list_col] if i + 1 < len(types) else member_count + 1
            for m in range(start, min(end, member_count + 1)):
                owners[m] = i + 1
        return owners

    @cached_property
    def method_owner(self) -> list[int]:
        return self._owners(5, len(self.md.rows(T.MethodDef)))

    @cached_property
    def field_owner(self) -> list[int]:
        return self._owners(4, len(self.md.rows(T.Field)))

    # ---- keys -------------------------------------------------------------------------------------
    def typedef_name(self, rid: int) -> str:
        name = self._typedefs.get(rid)
        if name is None:
            name = self._typedefs[rid] = self._typedef_name(rid)
        return name

    def _typedef_name(self, rid: int) -> str:
        _flags, _name, ns, *_ = self.md.row(T.TypeDef, rid)
        own = self.own_name(T.TypeDef, rid).replace("|", _BAR)
        if rid in self.enclosing:
            return self.typedef_name(self.enclosing[rid]) + "/" + own
        nspace = self.md.string(ns)
        return f"{nspace}.{own}" if nspace else own

    def typeref_name(self, rid: int) -> str:
        scope, name, ns = self.md.row(T.TypeRef, rid)
        table, row = ResolutionScope.decode(scope)
        own = self.md.string(name)
        nspace = self.md.string(ns)
        full = f"{nspace}.{own}" if nspace else own
        if table == T.TypeRef and row:
            return self.typeref_name(row) + "/" + full
        if table == T.AssemblyRef and row:
            return f"[{self.md.string(self.md.row(T.AssemblyRef, row)[6])}]{full}"
        if table == T.ModuleRef and row:
            return f"[module:{self.md.string(self.md.row(T.ModuleRef, row)[0])}]{full}"
        return f"[.]{full}"

    def sig(self, blob_offset: int) -> str:
        return self.canonical_sig(self.md.blob(blob_offset))

    def canonical_sig(self, blob: bytes) -> str:
        return map_signature(blob, self._type_placeholder).decode("latin-1")

    def _type_placeholder(self, table: T, row: int) -> bytes:
        return b"{" + self.key(table, row).encode("utf-8") + b"}"

    def key(self, table: T | int, row: int) -> str:
        """Identity of the entity at (table, row); stable across builds while the entity is unchanged."""
        ck = (int(table), row)
        cached = self._cache.get(ck)
        if cached is None:
            cached = self._cache[ck] = self._compute(T(table), row)
        return cached

    def token_key(self, tok: int) -> str:
        table, row = split_token(tok)
        if table == 0x70:
            return "US:" + self.md.user_string(row)
        return self.key(table, row)

    def _compute(self, t: T, row: int) -> str:
        md = self.md
        if t == T.TypeDef:
            return "T:" + self.typedef_name(row)
        if t == T.TypeRef:
            return "R:" + self.typeref_name(row)
        if t == T.TypeSpec:
            return "S:" + map_type_signature(md.blob(md.row(T.TypeSpec, row)[0]),
                                             self._type_placeholder).decode("latin-1")
        if t == T.MethodDef:
            r = md.row(T.MethodDef, row)
            owner = self.typedef_name(self.method_owner[row])
            return f"M:{owner}::{self.own_name(T.MethodDef, row).replace('|', _BAR)}|{self.sig(r[4])}"
        if t == T.Field:
            r = md.row(T.Field, row)
            own = self.own_name(T.Field, row).replace("|", _BAR)
            return f"F:{self.typedef_name(self.field_owner[row])}::{own}|{self.sig(r[2])}"
        if t == T.MemberRef:
            parent, name, sig = md.row(T.MemberRef, row)
            ptable, prow = MemberRefParent.decode(parent)
            assert ptable is not None
            return f"MR:{self.key(ptable, prow)}::{md.string(name)}|{self.sig(sig)}"
        if t == T.MethodSpec:
            method, inst = md.row(T.MethodSpec, row)
            mtable, mrow = MethodDefOrRef.decode(method)
            assert mtable is not None
            return f"MS:{self.key(mtable, mrow)}<{self.sig(inst)}>"
        if t == T.StandAloneSig:
            return "SIG:" + self.sig(md.row(T.StandAloneSig, row)[0])
        if t == T.AssemblyRef:
            r = md.row(T.AssemblyRef, row)
            return f"A:{md.string(r[6])},{r[0]}.{r[1]}.{r[2]}.{r[3]},{md.string(r[7])},{md.blob(r[5]).hex()}"
        if t == T.ModuleRef:
            return "MOD:" + md.string(md.row(T.ModuleRef, row)[0])
        if t == T.Module:
            return "MODULE"
        if t == T.Param:
            return f"P:{row}"
        raise KeyError(f"no identity for table {t.name}")

    # ---- convenience ------------------------------------------------------------------------------
    def attribute_key(self, ca_row: tuple[int, ...]) -> str:
        """Identity of a custom attribute: its constructor plus its value blob."""
        table, row = CustomAttributeType.decode(ca_row[1])
        assert table is not None
        return f"{self.key(table, row)}={self.md.blob(ca_row[2]).hex()}"

    def extends_key(self, coded: int) -> str:
        table, row = TypeDefOrRef.decode(coded)
        return self.key(table, row) if table is not None and row else ""


def display_name(method_key: str) -> str:
    """'M:Ns.Type::name|sig' -> 'Ns.Type.name' for messages."""
    body = method_key.split(":", 1)[1].split("|", 1)[0]
    return body.replace("::", ".").replace(_BAR, "|")
