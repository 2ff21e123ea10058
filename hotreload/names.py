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
        self._raw: dict[int, list[str]] = {}  # table -> this build's simple names, by row - 1
        self._typedefs: dict[int, str] = {}  # TypeDef row -> its full name (with renames)
        # #Blob offset -> canonical signature: a few hundred distinct signatures serve thousands of members
        self._sigs: dict[int, str] = {}
        self._attributes: dict[tuple[int, int], str] = {}  # (constructor, value blob) -> attribute key
        self._tokens: dict[int, str] = {}  # metadata token -> key (user strings too: never carried to another build)

    def carried_to(self, asm: Assembly) -> Names:
        """These names for `asm`, a build with the same rows, names and signatures (user strings may differ)."""
        names = Names(asm, self.renames)
        names._cache = self._cache  # entity keys only: user-string keys are never cached
        names._raw, names._typedefs = self._raw, self._typedefs
        names._sigs, names._attributes = self._sigs, self._attributes
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
        self._sigs = {k: v for k, v in other._sigs.items() if "@" not in v}
        self._attributes = {k: v for k, v in other._attributes.items() if "@" not in v}
        for name in ("enclosing", "method_owner", "field_owner"):
            if name in other.__dict__:
                self.__dict__[name] = other.__dict__[name]

    def adopt(self, other: Names, table: T, rows: dict[int, int]) -> None:
        """Take `other`'s keys for this build's `rows` (row -> `other`'s row) of a TypeDef/MethodDef/Field table:
        entities compiled as they were (hotreload.carry), whose names and signatures are the same, as are those of
        the types their signatures name."""
        t, key, theirs = int(table), other.key, other._cache
        if table == T.TypeDef:
            typedef_name = other.typedef_name
            self._typedefs.update((n, typedef_name(o)) for n, o in rows.items())
        self._cache.update(((t, n), theirs.get((t, o)) or key(t, o)) for n, o in rows.items())

    def own_name(self, table: T, row: int) -> str:
        """The simple name of a TypeDef/MethodDef/Field, as the running module knows it."""
        if self.renames:
            renamed = self.renames.get((int(table), row))
            if renamed is not None:
                return renamed
        return self.raw_name(table, row)

    def raw_name(self, table: T, row: int) -> str:
        """The simple name this build gives a TypeDef/MethodDef/Field (ignoring renames). The whole table's names
        are read at the first question: a structural save's comparison asks for nearly all of them, many times."""
        names = self.raw_names(table)
        if not 1 <= row <= len(names):
            self.md.row(table, row)  # raises BadImageError naming the table and row
        return names[row - 1]

    def raw_names(self, table: T) -> list[str]:
        """Every simple name this build gives the rows of a TypeDef/MethodDef/Field table (index row - 1)."""
        names = self._raw.get(table)
        if names is None:
            column, string = _NAME_COLUMN[table], self.md.string
            names = self._raw[table] = [string(r[column]) for r in self.md.rows(table)]
        return names

    def line_named_candidates(self, table: T) -> list[int]:
        """Rows of a TypeDef/MethodDef/Field table whose running name may be line-based (`f@12`): those whose own
        name has '@' or that are renamed. A superset of the rows `is_line_named` holds for, found at C speed: a
        structural save groups the generated members of both builds, a few percent of all rows."""
        t = int(table)
        rows = {i for i, name in enumerate(self.raw_names(table), 1) if "@" in name}
        rows.update(row for (tab, row) in self.renames if tab == t)
        return sorted(rows)

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
        found = self._sigs.get(blob_offset)
        if found is None:
            found = self._sigs[blob_offset] = self.canonical_sig(self.md.blob(blob_offset))
        return found

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

    def keys_of(self, table: T) -> list[str]:
        """The key of every row of TypeDef, MethodDef or Field, in row order: what `key` gives one by one, in one
        loop (a structural save indexes every member of the new build)."""
        cache, rows = self._cache, self.md.rows(table)
        t = int(table)
        if table == T.TypeDef:
            return [self.key(table, i) for i in range(1, len(rows) + 1)]
        owners, sig_column, prefix = ((self.method_owner, 4, "M:") if table == T.MethodDef else
                                      (self.field_owner, 2, "F:"))
        typedef_name, own_name, sig = self.typedef_name, self.own_name, self.sig
        out: list[str] = []
        for i, row in enumerate(rows, 1):
            found = cache.get((t, i))
            if found is None:
                own = own_name(table, i).replace("|", _BAR)
                found = cache[(t, i)] = f"{prefix}{typedef_name(owners[i])}::{own}|{sig(row[sig_column])}"
            out.append(found)
        return out

    def token_key(self, tok: int) -> str:
        """The key of what a metadata token names (a user string's is its text); memoized per token, since bodies
        name the same members over and over."""
        found = self._tokens.get(tok)
        if found is None:
            table, row = split_token(tok)
            found = self._tokens[tok] = "US:" + self.md.user_string(row) if table == 0x70 else self.key(table, row)
        return found

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
        memo = (ca_row[1], ca_row[2])
        found = self._attributes.get(memo)
        if found is None:
            table, row = CustomAttributeType.decode(ca_row[1])
            assert table is not None
            found = self._attributes[memo] = f"{self.key(table, row)}={self.md.blob(ca_row[2]).hex()}"
        return found

    def extends_key(self, coded: int) -> str:
        table, row = TypeDefOrRef.decode(coded)
        return self.key(table, row) if table is not None and row else ""


def display_name(method_key: str) -> str:
    """'M:Ns.Type::name|sig' -> 'Ns.Type.name' for messages."""
    body = method_key.split(":", 1)[1].split("|", 1)[0]
    return body.replace("::", ".").replace(_BAR, "|")
