"""Pairs the compiler-generated entities of a new build with the running ones they continue.

F# names closures, state machines, lifted methods and module-value fields after their source line
(`f@12-1`, `counter@3`), so inserting a line above renames them although nothing about them changed.
Such entities are paired by shape within their group (same owner, same name apart from line numbers),
never by name. Pairing that cannot be proven is refused rather than guessed: a wrong pairing would run
one lambda's code in place of another in closures that are already alive.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from .carry import NOTHING, Carried
from .indexed import Build
from .metadata.schema import T
from .refusal import Refusal, RefusalKind
from .sources import Sources

# `-hrN`: the name an added entity got because a running one held its line-based name (see `_resolve`)
_LINE_SUFFIX = re.compile(r"@\d+(?:-\d+)?(?:-hr\d+)?$")
# `Pipe #N ... at line L`: N counts the pipes of the function, so a pipe added above renumbers those below, as a
# line added above renumbers lines: both are positions, blanked alike
_LINE_NUMBERS = re.compile(r"@\d+(?:-\d+)?(?:-hr\d+)?|at line \d+|Pipe #\d+")
_BLANKED = {"@": "@#", "a": "at line #", "P": "Pipe #"}


def line_free(text: str) -> str:
    """`text` with every source position (line numbers, pipe ordinals) in compiler-generated names blanked out."""
    return _LINE_NUMBERS.sub(lambda m: _BLANKED[m.group(0)[0]], text)


def is_line_named(name: str) -> bool:
    return "@" in name and _LINE_SUFFIX.search(name) is not None  # the test of '@' first: most names have none


def source_order(name: str) -> tuple[int, int]:
    """(line, counter) from `name@line-counter`: the order F# emitted them in."""
    m = re.search(r"@(\d+)(?:-(\d+))?$", name)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


@dataclass
class Matching:
    """(table, row of the new build) -> name in the running module; refusals for unprovable pairings."""

    renames: dict[tuple[int, int], str] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)


def _pair(olds: list[int], news: list[int], full: Callable[[Build, int], Hashable],
          shape: Callable[[Build, int], Hashable], old: Build, new: Build) -> tuple[list[tuple[int, int]], bool]:
    """Pairs identical entities first (in source order), then same-shape ones when that is one-to-one.

    Returns the pairs and whether some same-shape entities were left that could pair more than one way (then only
    the identical ones are returned).
    """
    pairs: list[tuple[int, int]] = []
    identical: list[tuple[int, int]] = []
    if len(olds) == 1 and len(news) == 1:  # one each: identical or not, they pair iff same shape (never ambiguous)
        return ([(olds[0], news[0])] if shape(old, olds[0]) == shape(new, news[0]) else []), False
    for key_of in (full, shape):
        old_buckets: dict[Hashable, list[int]] = defaultdict(list)
        new_buckets: dict[Hashable, list[int]] = defaultdict(list)
        for o in olds:
            old_buckets[key_of(old, o)].append(o)
        for n in news:
            new_buckets[key_of(new, n)].append(n)
        for k, os_ in old_buckets.items():
            ns = new_buckets.get(k, [])
            if key_of is shape and ns and len(ns) != len(os_):
                return identical, True
            pairs += list(zip(os_, ns, strict=False))
        if key_of is full:
            identical = list(pairs)
        taken_old = {o for o, _ in pairs}
        taken_new = {n for _, n in pairs}
        olds = [o for o in olds if o not in taken_old]
        news = [n for n in news if n not in taken_new]
    return pairs, False


class _Matcher:
    def __init__(self, old: Build, new: Build, sources: Sources | None = None, carried: Carried = NOTHING) -> None:
        self.old = old
        self.new = new
        self.sources = sources
        self.carried = carried
        self.result = Matching()

    # ---- canonical names of the new build as renames accumulate --------------------------------------
    def new_type_name(self, rid: int) -> str:
        own = self.result.renames.get((T.TypeDef, rid)) or self.new.names.own_name(T.TypeDef, rid)
        enclosing = self.new.names.enclosing.get(rid)
        if enclosing:
            return self.new_type_name(enclosing) + "/" + own
        ns = self.new.asm.md.string(self.new.asm.md.row(T.TypeDef, rid)[2])
        return f"{ns}.{own}" if ns else own

    # ---- fingerprints (line numbers blanked, so moved code looks the same) ---------------------------
    @staticmethod
    def type_shape(build: Build, rid: int) -> Hashable:
        """Memoized on the build: the running build's were mostly computed when it was the new one."""
        memo: dict[int, Hashable] = build.__dict__.setdefault("_type_shapes", {})
        shape = memo.get(rid)
        if shape is None:
            shape = memo[rid] = _Matcher._type_shape(build, rid)
        return shape

    @staticmethod
    def _type_shape(build: Build, rid: int) -> Hashable:
        md, names = build.asm.md, build.names
        fields = sorted(line_free(names.key(T.Field, f).split("::", 1)[1]) + f"/{md.row(T.Field, f)[0]}"
                        for f in build.fields_of(rid))
        methods = sorted(line_free(names.key(T.MethodDef, m).split("::", 1)[1]) + f"/{md.row(T.MethodDef, m)[2]}"
                         for m in build.methods_of(rid))
        return line_free(repr(build.type_shape(rid))), tuple(fields), tuple(methods)

    @staticmethod
    def type_full(build: Build, rid: int) -> Hashable:
        bodies = tuple(_Matcher._body_print(build, m) for m in build.methods_of(rid))
        return _Matcher.type_shape(build, rid), bodies

    @staticmethod
    def _body_print(build: Build, rid: int) -> str:
        """A method's normalized body with line numbers blanked (memoized on the build: the running build's were
        mostly found when it was the new one, in the save before)."""
        memo: dict[int, str] = build.__dict__.setdefault("_body_prints", {})
        found = memo.get(rid)
        if found is None:
            found = memo[rid] = line_free(repr(build.normalized(rid)))
        return found

    @staticmethod
    def method_shape(build: Build, rid: int) -> Hashable:
        return build.method_flags(rid), line_free(build.names.key(T.MethodDef, rid).split("|", 1)[1])

    @staticmethod
    def method_full(build: Build, rid: int) -> Hashable:
        return _Matcher.method_shape(build, rid), _Matcher._body_print(build, rid)

    @staticmethod
    def field_shape(build: Build, rid: int) -> Hashable:
        return build.field_flags(rid), line_free(build.names.key(T.Field, rid).split("|", 1)[1])

    # ---- matching ------------------------------------------------------------------------------------
    def run(self) -> Matching:
        self.keep_carried()
        self.match_types()
        self.match_members(T.MethodDef, self.method_full, self.method_shape)
        self.match_members(T.Field, self.field_shape, self.field_shape)
        self.match_data_fields()
        return self.result

    def keep_carried(self) -> None:
        """Entities compiled as they were (hotreload.carry) keep the names the running module knows them by."""
        old, new, renames = self.old, self.new, self.result.renames
        for table in (T.TypeDef, T.MethodDef, T.Field):
            t = int(table)
            renamed = [row for tab, row in old.names.renames if tab == t]
            if not renamed:
                continue
            continued = {o: n for n, o in self.carried.of(table).items()}
            for o in renamed:
                n = continued.get(o)
                if n is not None and old.names.own_name(table, o) != new.names.raw_name(table, n):
                    renames[(t, n)] = old.names.own_name(table, o)

    def match_data_fields(self) -> None:
        """Fields holding initial data (array literals) are named by their data in the running module.

        The runtime cannot change a field's data, so new data means a new field (AddFieldRva): the new build's
        field gets a name that includes a hash of its data, and every method loading it becomes a change. A field
        whose data a running one of the same type already holds continues that one, whatever the line-based name
        it has now: moving an array literal adds nothing (the runtime takes only so many data fields).
        """
        old, new = self.old, self.new
        running: dict[tuple[str, str], tuple[str, bytes | None]] = {}
        by_data: dict[tuple[str, str, bytes | None], list[str]] = defaultdict(list)
        for rid in old.field_rvas:
            own = old.names.own_name(T.Field, rid)
            owner = old.names.typedef_name(old.names.field_owner[rid])
            data = old.field_data(rid)
            running[(owner, own.split("#", 1)[0])] = (own, data)
            by_data[(owner, old.names.key(T.Field, rid).split("|", 1)[1], data)].append(own)
        fields = [(rid, self.result.renames.get((T.Field, rid)) or new.names.own_name(T.Field, rid),
                   self.new_type_name(new.names.field_owner[rid]), new.field_data(rid)) for rid in new.field_rvas]
        taken = {(owner, own) for _rid, own, owner, data in fields if running.get((owner, own)) == (own, data)}
        for rid, own, owner, data in fields:
            if (owner, own) in taken:
                continue  # the running field of that name, with the same data
            same = [name for name in by_data.get((owner, new.names.key(T.Field, rid).split("|", 1)[1], data), [])
                    if (owner, name) not in taken]
            known = running.get((owner, own))
            if same:
                name = same[0]
                taken.add((owner, name))
            elif known is None:
                continue  # an added data field: added as it is
            else:
                name = known[0] if known[1] == data else f"{own}#{hashlib.sha1(data or b'').hexdigest()[:10]}"
            if name != own:
                self.result.renames[(int(T.Field), rid)] = name

    def match_types(self) -> None:
        old, new = self.old, self.new
        old_groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        taken: dict[str, set[str]] = defaultdict(set)  # enclosing type -> names of its nested types
        carried_old, carried_new = self.carried.olds(T.TypeDef), self.carried.types
        for rid, enclosing in old.names.enclosing.items():
            own = old.names.own_name(T.TypeDef, rid)
            enclosing_name = old.names.typedef_name(enclosing)
            taken[enclosing_name].add(own)
            if is_line_named(own) and rid not in carried_old:
                old_groups[(enclosing_name, line_free(own))].append(rid)
        for key in old.retired:  # removed types stay loaded: an added type must not take one's name
            enclosing_name, _, own = key[2:].rpartition("/")
            taken[enclosing_name].add(own)
        if not old_groups and not any(is_line_named(new.names.own_name(T.TypeDef, r))
                                      for r in new.names.enclosing):
            return
        by_depth: dict[int, list[int]] = defaultdict(list)
        for rid in new.names.enclosing:
            if rid not in carried_new and is_line_named(new.names.own_name(T.TypeDef, rid)):
                by_depth[new.names.depth(rid)].append(rid)
        for depth in sorted(by_depth):
            new_groups: dict[tuple[str, str], list[int]] = defaultdict(list)
            for rid in by_depth[depth]:
                enclosing_name = self.new_type_name(new.names.enclosing[rid])
                new_groups[(enclosing_name, line_free(new.names.own_name(T.TypeDef, rid)))].append(rid)
            for group, news in new_groups.items():
                self._resolve(T.TypeDef, group, old_groups.get(group, []), news, self.type_full, self.type_shape,
                              taken[group[0]])

    def match_members(self, table: T, full: Callable[[Build, int], Hashable],
                      shape: Callable[[Build, int], Hashable]) -> None:
        old, new = self.old, self.new
        old_owner = old.names.method_owner if table == T.MethodDef else old.names.field_owner
        new_owner = new.names.method_owner if table == T.MethodDef else new.names.field_owner
        carried_old, carried_new = self.carried.olds(table), self.carried.of(table)
        new_groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for rid in new.names.line_named_candidates(table):
            if rid in carried_new:
                continue
            own = new.names.own_name(table, rid)
            if is_line_named(own):
                new_groups[(self.new_type_name(new_owner[rid]), line_free(own))].append(rid)
        if not new_groups:
            return
        old_groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for rid in old.names.line_named_candidates(table):
            if rid in carried_old:
                continue
            own = old.names.own_name(table, rid)
            if is_line_named(own):
                old_groups[(old.names.typedef_name(old_owner[rid]), line_free(own))].append(rid)
        taken = _Taken(old, table)
        for group, news in new_groups.items():
            self._resolve(table, group, old_groups.get(group, []), news, full, shape, taken[group[0]])

    def _resolve(self, table: T, group: tuple[str, str], olds: list[int], news: list[int],
                 full: Callable[[Build, int], Hashable], shape: Callable[[Build, int], Hashable],
                 taken: set[str]) -> None:
        old, new = self.old, self.new
        if self._kept_as_they_were(table, olds, news):
            return
        # source order in each build comes from that build's own (line-bearing) names, not the running ones
        if len(olds) > 1:
            olds = sorted(olds, key=lambda r: source_order(old.names.raw_name(table, r)))
        if len(news) > 1:
            news = sorted(news, key=lambda r: source_order(new.names.raw_name(table, r)))
        pairs = self._untouched_pairs(table, olds, news, shape)
        ambiguous = False
        if not pairs:
            pairs, ambiguous = _pair(olds, news, full, shape, old, new)
        paired_new = set()
        for o, n in pairs:  # when ambiguous, the identical ones: code that uses them is then not seen as changed
            paired_new.add(n)
            running = old.names.own_name(table, o)
            if running != new.names.own_name(table, n):
                self.result.renames[(int(table), n)] = running
        if ambiguous:
            what = {T.TypeDef: "closures or state machines", T.MethodDef: "generated methods",
                    T.Field: "generated fields"}[table]
            self.result.refusals.append(Refusal(
                RefusalKind.AMBIGUOUS, f"{group[0]}.{group[1].replace('@#', '')}",
                f"the {what} named {group[1]} were added or removed and edited at once, so which running one each "
                "continues cannot be proven",
                "save the added or removed lambda separately from other edits to the same function, or restart"))
        for n in news:  # (when ambiguous too: a name a running entity holds would make it look changed)
            if n in paired_new:
                continue
            own = new.names.own_name(table, n)
            if own in taken:  # an added entity whose line-based name a moved running one still holds
                k = 1
                while f"{own}-hr{k}" in taken:
                    k += 1
                self.result.renames[(int(table), n)] = f"{own}-hr{k}"
                taken.add(f"{own}-hr{k}")


    def _kept_as_they_were(self, table: T, olds: list[int], news: list[int]) -> bool:
        """A group of files the save did not touch whose entities have, in both builds, the names the running
        module knows them by: each new one continues the running one its build named alike (see
        `_untouched_pairs`), which already has that name, so there is nothing to rename and nothing added. Most
        groups of a structural save are such: found without ordering or pairing them. (A running entity renamed
        by an earlier save, after lambdas swapped lines, is paired as usual: its build name is another's now.)"""
        old, new = self.old, self.new
        if self.sources is None or len(olds) != len(news) or new.names.renames:
            return False
        names = {old.names.raw_name(table, o) for o in olds}
        if len(names) != len(olds) or names != {new.names.raw_name(table, n) for n in news}:
            return False
        if old.names.renames and any(old.names.own_name(table, o) != old.names.raw_name(table, o) for o in olds):
            return False
        return self._all_untouched(table, olds, news)

    def _all_untouched(self, table: T, olds: list[int], news: list[int]) -> bool:
        """Whether every entity of a group lies in files the save did not touch, in both builds."""
        sources = self.sources
        assert sources is not None
        return all(sources.untouched(0, self.old, table, o) for o in olds) \
            and all(sources.untouched(1, self.new, table, n) for n in news)

    def _untouched_pairs(self, table: T, olds: list[int], news: list[int],
                         shape: Callable[[Build, int], Hashable]) -> list[tuple[int, int]]:
        """A group whose entities keep their names, all in files the save did not touch: the same source lambdas
        (a generated name is its source line and a per-file, per-name count, and the file is as it was), paired by
        name without comparing their code or shape (which is the cost of a structural save in a large assembly).
        Their shapes may still differ, when an edit elsewhere changed a type they capture: that is then a change
        of the paired entity, which the comparison of members finds. A group whose counts shifted (an entity of the
        same name added earlier) has other names and is compared as usual; so is any other group."""
        sources, old, new = self.sources, self.old, self.new
        if sources is None or len(olds) != len(news):
            return []
        if [old.names.own_name(table, o) for o in olds] != [new.names.raw_name(table, n) for n in news]:
            return []
        pairs = list(zip(olds, news, strict=True))
        if self._all_untouched(table, olds, news):
            return pairs
        return []


class _Taken(dict[str, set[str]]):
    """Owner's full name -> the names its members (of one table) have in the running module: what an added
    generated member must not be called. Read per owner on first use, since only owners of generated members
    that were added ask."""

    def __init__(self, old: Build, table: T) -> None:
        super().__init__()
        self.old, self.table = old, table

    def __missing__(self, owner: str) -> set[str]:
        old, table = self.old, self.table
        rid = old.types.get("T:" + owner)
        members = () if rid is None else old.methods_of(rid) if table == T.MethodDef else old.fields_of(rid)
        found = self[owner] = {old.names.own_name(table, m) for m in members}
        return found


def may_have_swapped(build: Build, methods: Iterable[int]) -> bool:
    """Whether `methods` (changed MethodDef rows of a save that kept every name) may include generated entities
    that traded places: two or more entities of one group (same owner, same name but for positions) changed, a
    line-named method or a line-named type whose methods (or whose nested types' methods) changed. Two lambdas of
    a function that swap lines keep both names and change both bodies; only pairing them by code, as
    `match_builds` does, tells a swap from two edits. One changed entity per group cannot be a swap."""
    names = build.names
    seen: dict[tuple[int, int, str], set[int]] = defaultdict(set)
    for rid in methods:
        own = names.own_name(T.MethodDef, rid)
        owner = names.method_owner[rid]
        if is_line_named(own):
            seen[(int(T.MethodDef), owner, line_free(own))].add(rid)
        while owner in names.enclosing:
            own = names.own_name(T.TypeDef, owner)
            if is_line_named(own):
                seen[(int(T.TypeDef), names.enclosing[owner], line_free(own))].add(owner)
            owner = names.enclosing[owner]
    return any(len(entities) > 1 for entities in seen.values())


def match_builds(old: Build, new: Build, sources: Sources | None = None, carried: Carried = NOTHING) -> Matching:
    """Names in `new` for entities the running module (described by `old`) knows by other line-based names.
    With both builds' source files (`sources`, from their PDBs), groups in files the save did not touch are paired
    by name (see `_untouched_pairs`); `carried` entities (hotreload.carry) continue the running rows they were
    paired with."""
    return _Matcher(old, new, sources, carried).run()
