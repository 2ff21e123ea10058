"""Module-level values of a build, and which of them a save must compute again.

F# stores a module's `let x = ...` in a static field of the file's startup class (`<StartupCode$Asm>.$File::x@4`)
and computes it once, in that class's static constructor, in source order: each value's code is a contiguous
stretch of the constructor that ends by storing its field. A save that changes that code (or adds a value) is
applied like any other, but the constructor has already run: the values must be computed again. This module finds
each value's stretch of IL (from the sequence points of its line to its store), what it reads (other values,
directly or through the functions it calls), and plans what to compute again, in order: the values the save
changed or added, then the values whose initializers read them. `hotreload.reevaluate` runs the plan.

A value is never computed again when it is `let mutable` (it keeps what the app made of it), or marked with an
attribute named `HotReloadKeepAttribute` (any namespace: the user defines it, no package is needed). A stretch
that shares local variables, branches or exception handlers with code outside it cannot run on its own: it is
said, not run.
"""

from __future__ import annotations

import bisect
import struct
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

from .indexed import Build
from .match import is_line_named
from .metadata.il import TOKEN_KINDS, Clause, Instruction, instructions
from .metadata.schema import HasCustomAttribute, T, split_token
from .names import display_name
from .pdb import Pdb

KEEP_ATTRIBUTE = "HotReloadKeepAttribute"
_STSFLD, _LDSFLD, _LDSFLDA, _DUP = 0x80, 0x7E, 0x7F, 0x25
_CALLS = (0x28, 0x6F, 0x73, 0xFE06, 0xFE07)  # call, callvirt, newobj, ldftn, ldvirtftn
_LOCALS = {0x06: 0, 0x07: 1, 0x08: 2, 0x09: 3, 0x0A: 0, 0x0B: 1, 0x0C: 2, 0x0D: 3}  # ldloc.N / stloc.N
_LOCAL_OPERAND = (0x11, 0x12, 0x13, 0xFE0C, 0xFE0D, 0xFE0E)  # ldloc(a).s, stloc.s, ldloc, ldloca, stloc
_BRANCH_KINDS = ("br1", "br4")
_LOCAL_FORM = {**{op: "ldloc" for op in (0x06, 0x07, 0x08, 0x09, 0x11, 0xFE0C)},
               **{op: "stloc" for op in (0x0A, 0x0B, 0x0C, 0x0D, 0x13, 0xFE0E)}, 0x12: "ldloca", 0xFE0D: "ldloca"}
_BRANCH_FORM = {short: long for short, long in zip(range(0x2B, 0x38), range(0x38, 0x45), strict=True)} | {0xDE: 0xDD}
_READ_LIMIT = 4000  # methods followed from one initializer to find the values it reads


@dataclass(frozen=True)
class Value:
    """One module-level value stored in a field of a startup class."""

    name: str  # as the user wrote it: 'Demo.Config.greeting'
    field: str  # the field's key in the build it was read from
    startup: str  # the startup class: '<StartupCode$App>.$Demo.Config'
    order: tuple[int, int]  # (startup class row, IL offset): the order the app computed it in
    start: int  # IL offset in the startup class's .cctor where its code begins
    end: int  # offset just after its store
    pop: bool  # the code leaves a copy of the value on the stack (dup before the store)
    mutable: bool
    kept: bool  # marked [<HotReloadKeep>]
    reads: frozenset[str]  # names of the values its code reads, directly or through functions it calls
    generated: frozenset[str]  # compiler-generated types (closures) its code creates
    runs: frozenset[str]  # keys of the methods of this build its code calls, directly or not
    shape: tuple[object, ...]  # its code, token-normalized: equal iff it computes the same thing
    problem: str | None = None  # why its code cannot run on its own


@dataclass
class Plan:
    """What a save does to module-level values, in the order the app computes them."""

    run: list[Value] = field(default_factory=list)  # computed again after the update (added, changed, readers)
    kept: list[tuple[Value, str]] = field(default_factory=list)  # changed, but keep their value: why
    unsafe: list[tuple[Value, str]] = field(default_factory=list)  # should be computed again, cannot be: why
    statements: list[str] = field(default_factory=list)  # what of the top-level code (not values) changed

    @property
    def empty(self) -> bool:
        return not (self.run or self.kept or self.unsafe or self.statements)


def _startup_owner(build: Build, field_rid: int) -> str | None:
    owner = build.names.typedef_name(build.names.field_owner[field_rid])
    return owner if owner.startswith("<StartupCode$") else None


def _token(code: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", code, offset)[0])


def _local_index(code: bytes, ins_opcode: int, operand_offset: int) -> int | None:
    if ins_opcode in _LOCALS:
        return _LOCALS[ins_opcode]
    if ins_opcode in (0x11, 0x12, 0x13):
        return code[operand_offset]
    if ins_opcode in (0xFE0C, 0xFE0D, 0xFE0E):
        return int(struct.unpack_from("<H", code, operand_offset)[0])
    return None


def _note_use(build: Build, opcode: int, tok: int, reads: set[str], calls: set[int]) -> None:
    """What one instruction reads or calls: a startup field (a value of this build), another assembly's value
    (through its getter), or a method of this build."""
    table, row = split_token(tok)
    if opcode in (_LDSFLD, _LDSFLDA):
        if table == T.Field and _startup_owner(build, row):
            reads.add(build.names.key(T.Field, row))
    elif opcode in _CALLS:
        if table == T.MethodDef:
            calls.add(row)
        else:
            name = _external(display_name(build.names.token_key(tok)))
            if ".get_" in name:  # another assembly's value, read through its getter
                reads.add("get:" + name.replace(".get_", ".", 1))


class _Reads:
    """Which startup-class fields (or, across assemblies, which value getters) a method reads, following the calls
    it makes inside its assembly."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self._direct: dict[int, tuple[frozenset[str], frozenset[int]]] = {}

    def direct(self, rid: int) -> tuple[frozenset[str], frozenset[int]]:
        """(fields or external getters read, methods of this build called) by method `rid`'s own body."""
        if rid not in self._direct:
            body = self.build.body(rid)
            reads: set[str] = set()
            calls: set[int] = set()
            if body is not None:
                for ins in instructions(body.code):
                    if ins.kind in TOKEN_KINDS:
                        _note_use(self.build, ins.opcode, _token(body.code, ins.operand_offset), reads, calls)
            self._direct[rid] = frozenset(reads), frozenset(calls)
        return self._direct[rid]

    def closure(self, reads: Iterable[str], calls: Iterable[int]) -> tuple[frozenset[str], frozenset[int]]:
        """(what is read, methods run) by code that reads `reads` and calls `calls`."""
        found = set(reads)
        seen: set[int] = set()
        todo = list(calls)
        while todo and len(seen) < _READ_LIMIT:
            rid = todo.pop()
            if rid in seen:
                continue
            seen.add(rid)
            more, called = self.direct(rid)
            found |= more
            todo += [c for c in called if c not in seen]
        return frozenset(found), frozenset(seen)


def _names(build: Build) -> dict[str, tuple[str, bool, bool]]:
    """Startup field key -> (value name, mutable, kept), from the module properties whose getters read the fields
    (the property table is small; the names of every method of a large build are not)."""
    out: dict[str, tuple[str, bool, bool]] = {}
    names = build.names
    md = build.asm.md
    kept_props = _kept_properties(build)
    for prop, accessors in build.semantics.items():
        getter = next((m for sem, m in accessors if sem & 0x2), None)
        body = build.body(getter) if getter is not None else None
        if body is None or len(body.code) != 6 or body.code[0] != _LDSFLD or body.code[5] != 0x2A:
            continue
        table, row = split_token(_token(body.code, 1))
        if table != T.Field or not _startup_owner(build, row):
            continue
        owner = names.typedef_name(build.property_owner[prop])
        module = display_name(f"T:{owner}::x").rpartition(".")[0]
        value = md.string(md.row(T.Property, prop)[1])
        out[names.key(T.Field, row)] = (f"{module}.{value}", any(sem & 0x1 for sem, _m in accessors),
                                        f"{owner}::{value}" in kept_props)
    return out


def _kept_properties(build: Build) -> set[str]:
    """'Module::value' of the properties marked with an attribute named HotReloadKeepAttribute."""
    md = build.asm.md
    if not any(md.string(row[1]) == KEEP_ATTRIBUTE for table in (T.TypeDef, T.TypeRef) for row in md.rows(table)):
        return set()  # no such attribute type in the build: nothing is marked
    names = {rid: key.split("|", 1)[0] for key, rid in build.properties.items()}
    out = set()
    for row in md.rows(T.CustomAttribute):
        table, rid = HasCustomAttribute.decode(row[0])
        if table == T.Property and rid in names and KEEP_ATTRIBUTE in build.names.attribute_key(row):
            out.add(names[rid])
    return out


_CACHE: weakref.WeakKeyDictionary[Build, dict[str, Value]] = weakref.WeakKeyDictionary()
_STATEMENTS: weakref.WeakKeyDictionary[Build, dict[str, tuple[object, ...]]] = weakref.WeakKeyDictionary()


def module_values(build: Build, pdb: Pdb | None) -> dict[str, Value]:
    """Every module-level value the startup classes of `build` compute in their static constructors, by name.
    Kept per build: this save's new build is the next save's running one."""
    if build in _CACHE:
        return _CACHE[build]
    named = _names(build)
    reads = _Reads(build)
    out: dict[str, Value] = {}
    for rid in _startup_initializers(build):
        for value in _values_of(build, pdb, rid, named, reads):
            out[value.name] = value
    _CACHE[build] = out
    return out


def has_module_values(build: Build) -> bool:
    """Whether a startup class of `build` has a static constructor: its module-level values (cheap to tell)."""
    return bool(_startup_initializers(build))


def _startup_initializers(build: Build) -> list[int]:
    """MethodDef rows of the static constructors of the startup classes (`<StartupCode$Asm>.$File`), from the
    build's initializers (kept from save to save while the rows stay: a body-only save reads no table for this)."""
    names = build.names
    return [m for m in build.initializer_methods if names.own_name(T.MethodDef, m) == ".cctor"
            and names.method_owner[m] not in names.enclosing
            and names.typedef_name(names.method_owner[m]).startswith("<StartupCode$")]


def _values_of(build: Build, pdb: Pdb | None, cctor: int, named: dict[str, tuple[str, bool, bool]],
               reads: _Reads) -> list[Value]:
    body = build.body(cctor)
    if body is None:
        return []
    code = body.code
    startup_rid = build.names.method_owner[cctor]
    startup = build.names.typedef_name(startup_rid)
    listing = list(instructions(code))
    points = sorted((p.il_offset, p.start_line) for p in pdb.method_info(cctor).points if not p.hidden) \
        if pdb is not None else []
    # local variable -> offsets that use it, to tell whether a stretch shares one with code outside it
    local_uses: dict[int, list[int]] = {}
    for ins in listing:
        index = _local_index(code, ins.opcode, ins.operand_offset)
        if index is not None:
            local_uses.setdefault(index, []).append(ins.offset)
    offsets = [ins.offset for ins in listing]
    stores = [(i, ins) for i, ins in enumerate(listing) if ins.opcode == _STSFLD
              and split_token(_token(code, ins.operand_offset))[0] == T.Field
              and build.names.field_owner[split_token(_token(code, ins.operand_offset))[1]] == startup_rid]
    out: list[Value] = []
    boundary = 0
    for index, store in stores:
        field_rid = split_token(_token(code, store.operand_offset))[1]
        field_key = build.names.key(T.Field, field_rid)
        end = store.offset + 5
        own = build.names.own_name(T.Field, field_rid)
        if own == "init@":
            boundary = end
            continue
        line = int(own.rpartition("@")[2]) if own.rpartition("@")[2].isdigit() else 0
        start = next((off for off, ln in points if boundary <= off < store.offset and ln >= line), boundary)
        pop = index > 0 and listing[index - 1].opcode == _DUP
        name, mutable, kept = named.get(field_key, (_fallback_name(startup, own), False, False))
        segment = listing[bisect.bisect_left(offsets, start):index + 1]  # through the store
        problem = _problem(code, segment, start, end, local_uses, body.clauses)
        direct_reads: set[str] = set()
        calls: set[int] = set()
        generated: set[int] = set()
        normalized: list[object] = []
        renumber: dict[int, int] = {}
        for ins in segment:
            item: list[object] = [ins.opcode]
            if ins.kind in TOKEN_KINDS:
                tok = _token(code, ins.operand_offset)
                item.append(build.names.token_key(tok))
                _note_use(build, ins.opcode, tok, direct_reads, calls)
                generated |= {t for t in build.token_types(tok) if is_line_named(build.names.own_name(T.TypeDef, t))}
            else:
                local = _local_index(code, ins.opcode, ins.operand_offset)
                if local is not None:  # the form (ldloc.3, ldloc.s 4) follows the index, which other values shift
                    item = [_LOCAL_FORM.get(ins.opcode, ins.opcode), renumber.setdefault(local, len(renumber))]
                elif ins.kind in _BRANCH_KINDS:  # its target as a count of instructions: sizes shift with forms
                    target = _branch_target(code, ins)
                    item = [_BRANCH_FORM.get(ins.opcode, ins.opcode),
                            bisect.bisect_left(offsets, target) - bisect.bisect_left(offsets, ins.offset)]
                elif ins.operand_size:
                    item.append(code[ins.operand_offset:ins.operand_offset + ins.operand_size])
            normalized.append(tuple(item))
        value_reads, ran = reads.closure(direct_reads, calls)
        generated |= {build.names.method_owner[c] for c in calls
                      if is_line_named(build.names.own_name(T.TypeDef, build.names.method_owner[c]))}
        out.append(Value(name, field_key, startup, (startup_rid, store.offset), start, end, pop, mutable, kept,
                         frozenset(_read_names(value_reads, named) - {name}), _generated_closure(build, generated),
                         frozenset(build.names.key(T.MethodDef, r) for r in ran), tuple(normalized), problem))
        boundary = end
        if index + 1 < len(listing) and listing[index + 1].opcode in (0x0A, 0x0B, 0x0C, 0x0D, 0x13, 0xFE0E) \
                and pop:  # the copy F# keeps in a local: part of this value's statement
            boundary = listing[index + 1].operand_offset + listing[index + 1].operand_size
    return out


def _external(name: str) -> str:
    """'R:[Lib]Demo.Names.get_who' -> 'Demo.Names.get_who': a member of another assembly, named as in its own."""
    return name.split("]", 1)[1] if name.startswith("R:[") and "]" in name else name


def _fallback_name(startup: str, own: str) -> str:
    return startup.split(".$", 1)[-1] + "." + own.split("@")[0] + ("@" if "@" in own else "")


def _read_names(reads: Iterable[str], named: dict[str, tuple[str, bool, bool]]) -> set[str]:
    out = set()
    for read in reads:
        if read.startswith("get:"):
            out.add(read[4:])
        elif read in named:
            out.add(named[read][0])
    return out


def _generated_closure(build: Build, types: set[int]) -> frozenset[str]:
    """The compiler-generated types (closures, state machines) `types` are, and those their code creates in turn."""
    found = set(types)
    todo = list(types)
    while todo:
        rid = todo.pop()
        for method in build.methods_of(rid):
            for other in build.referenced_types(method):
                if other not in found and is_line_named(build.names.own_name(T.TypeDef, other)):
                    found.add(other)
                    todo.append(other)
    return frozenset(build.names.typedef_name(t) for t in found)


def _branch_target(code: bytes, ins: Instruction) -> int:
    delta = struct.unpack_from("<b" if ins.kind == "br1" else "<i", code, ins.operand_offset)[0]
    return int(ins.operand_offset + ins.operand_size + delta)


def _problem(code: bytes, segment: list[Instruction], start: int, end: int, local_uses: dict[int, list[int]],
             clauses: Iterable[Clause]) -> str | None:
    """Why the stretch [start, end) cannot run as a method of its own, or None."""
    for ins in segment:
        if ins.kind in _BRANCH_KINDS:
            target = _branch_target(code, ins)
            if not start <= target <= end:
                return "its code branches outside itself"
        elif ins.kind == "switch":
            return "its code has a switch"
        elif ins.opcode in (0x2A, 0xFE1A):  # ret, rethrow at top level
            return "its code returns early"
        index = _local_index(code, ins.opcode, ins.operand_offset)
        if index is not None and any(not start <= off < end for off in local_uses.get(index, [])):
            return "its code shares a local variable with other top-level code"
    for clause in clauses:
        inside = start <= clause.try_offset and clause.handler_offset + clause.handler_length <= end
        outside = clause.handler_offset + clause.handler_length <= start or clause.try_offset >= end
        if not (inside or outside):
            return "its code is inside a try block with other top-level code"
    return None


def statements(build: Build, values: dict[str, Value]) -> dict[str, tuple[object, ...]]:
    """Per startup class, the token-normalized code of its .cctor outside every value's stretch: top-level `do`
    code, which ran once at startup. Kept per build, as its values are."""
    if build in _STATEMENTS:
        return _STATEMENTS[build]
    by_class: dict[str, list[tuple[int, int]]] = {}
    for value in values.values():
        by_class.setdefault(value.startup, []).append((value.start, value.end))
    out: dict[str, tuple[object, ...]] = {}
    for rid in _startup_initializers(build):
        startup = build.names.typedef_name(build.names.method_owner[rid])
        body = build.body(rid)
        if body is None:
            continue
        ranges = by_class.get(startup, [])
        items: list[object] = []
        for ins in instructions(body.code):
            if any(s <= ins.offset < e for s, e in ranges) or ins.opcode in (0x2A, 0x00, 0x26) \
                    or _local_index(body.code, ins.opcode, ins.operand_offset) is not None:
                continue  # values, and the copies of them F# keeps in locals for the debugger
            if ins.kind in TOKEN_KINDS:
                target = build.names.token_key(_token(body.code, ins.operand_offset))
                if ins.opcode == 0x28 and ".get_" in display_name(target):
                    continue  # a constant value's getter, called for the debugger's copy
                items.append((ins.opcode, target))
            else:
                items.append((ins.opcode, body.code[ins.operand_offset:ins.operand_offset + ins.operand_size]))
        out[startup] = tuple(items)
    _STATEMENTS[build] = out
    return out


def plan(old: Build, old_pdb: Pdb | None, new: Build, new_pdb: Pdb | None,
         changed: Iterable[str] = (), initializer_code: Iterable[str] = (), read_elsewhere: Iterable[str] = ()) -> Plan:
    """What to compute again after `new` replaces `old` (running names, as the diff gives them).
    `changed`: keys of the methods whose code the save changed: a value whose initializer runs one (a function it
    calls, a constant's getter, a closure it creates) computes something else now; `initializer_code`: the
    generated types among them that only static initializers run (hotreload.diff); `read_elsewhere`: values
    another assembly of the app computes again in this save (their readers here follow)."""
    before = module_values(old, old_pdb)
    changed = set(changed)
    changed_types = {key[2:].split("::", 1)[0] for key in changed}
    if new.carried_from is old and not initializer_code and not set(read_elsewhere) and not any(
            key.startswith("M:<StartupCode$") for key in changed) and not any(
            value.runs & changed or value.generated & changed_types for value in before.values()):
        # a save of bodies no value's code runs, initializers unchanged (same rows: hotreload.incremental): the
        # same values, read from the same code; the running build's are the new one's, found again for nothing
        _CACHE[new] = before
        if old in _STATEMENTS:
            _STATEMENTS[new] = _STATEMENTS[old]
        return Plan()
    after = module_values(new, new_pdb)
    result = Plan()
    seeds: set[str] = set(read_elsewhere)
    for name, value in after.items():
        previous = before.get(name)
        edited = previous is None or previous.shape != value.shape or bool(value.generated & changed_types) \
            or bool(value.runs & changed)
        if not edited:
            continue
        if previous is not None and value.mutable:
            result.kept.append((value, "it is mutable: it keeps the value the app gave it"))
        elif previous is not None and value.kept:
            result.kept.append((value, f"it is marked [<{KEEP_ATTRIBUTE[:-9]}>]"))
        else:
            seeds.add(name)
    todo = set(seeds)
    chosen: set[str] = {n for n in seeds if n in after}
    while todo:
        name = todo.pop()
        for other in after.values():
            if name in other.reads and other.name not in chosen and not other.mutable:
                if other.kept:
                    result.kept.append((other, f"it is marked [<{KEEP_ATTRIBUTE[:-9]}>] (it reads {name})"))
                    continue
                chosen.add(other.name)
                todo.add(other.name)
    for value in _in_dependency_order([after[n] for n in chosen]):
        if value.problem:
            result.unsafe.append((value, value.problem))
        else:
            result.run.append(value)
    old_statements, new_statements = statements(old, before), statements(new, after)
    result.statements = [f"top-level code of {_file_module(k)}" for k, code in sorted(new_statements.items())
                         if k in old_statements and old_statements[k] != code]
    covered = {t for v in after.values() for t in v.generated}
    result.statements += sorted(t.replace("/", ".") for t in set(initializer_code) - covered)
    return result


def _in_dependency_order(values: list[Value]) -> list[Value]:
    """Each value after the values it reads; otherwise in the order of the build (source order within a file)."""
    names = {v.name for v in values}
    waiting = {v.name: set(v.reads) & names - {v.name} for v in values}
    ready = sorted((v for v in values if not waiting[v.name]), key=lambda v: v.order)
    out: list[Value] = []
    by_name = {v.name: v for v in values}
    while ready:
        value = ready.pop(0)
        out.append(value)
        for other, needs in waiting.items():
            if value.name in needs:
                needs.discard(value.name)
                if not needs and by_name[other] not in out:
                    ready.append(by_name[other])
                    ready.sort(key=lambda v: v.order)
    out += sorted((v for v in values if v not in out), key=lambda v: v.order)  # a cycle: the build's order
    return out


def _file_module(startup: str) -> str:
    """'<StartupCode$App>.$Demo.Config' -> 'Demo.Config' (the startup class is named after the file's module)."""
    return startup.split(".$", 1)[-1]
