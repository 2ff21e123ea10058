"""Random multi-file F# projects and random edit sequences on them, for the differential soak.

`Program(seed)` is a model of a small F# app (modules `Gen.A`, `Gen.B`, `Gen.C`, one file each, then
`Program.fs`): module-level values and `[<Literal>]`s, functions of `int`/`string` (bodies with closures, loops,
`seq`/`async`, `match`, `try`, `let rec`, records and unions with members, `sprintf`, interpolated strings,
`inline`), records and unions with members. Its entry point prints the result of every public function, called
with fixed arguments, one `id<TAB>json` line each (`probes()` gives the same calls, for callers in another process).

`Program.random_edit()` changes the model as a user edits: body rewrites, constant and string changes, added and
removed functions (a removed name sometimes comes back), comment lines inserted above code (moving closures, which
F# names after their line), new records and unions with a function using them, edited and added members, changed
`[<Literal>]`s, module-level values edited and added (computed again in the running app), a few edits at once, and
now and then a rude edit (an added union case) that hot reload must refuse or apply correctly.
Everything is drawn from one `random.Random(seed)`: the same seed gives the same sources and the same edits.
Generated code always compiles, and the cost of every function (calls weighted by the loops they sit in) is
bounded so no probe runs long.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

INT, STR, GENERIC = "int", "string", "'T"
MODULES = ("A", "B", "C")
COST_CAP = 4000
"""Most work (weighted calls) one probe may do."""
CALL_BUDGET = 600
"""Most weighted calls a new body may make."""

WORDS = ("alpha", "beta", "gamma", "délta", "ünï", "λx", "日本", "zed", "a b", "q", "x-y", "")  # "" last
PROBE_ARGS: dict[tuple[str, ...], list[tuple[object, ...]]] = {
    (): [()],
    (INT,): [(3,), (-4,)],
    (STR,): [("ab",),  ("Zé",)],
    (INT, STR): [(5, "ab"), (-2, "Zé")],
}
PARAM_NAMES = {INT: "x", STR: "s"}


def fs_string(text: str) -> str:
    """An F# string literal (generated text has no quotes or backslashes, but be safe)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string_literals(line: str) -> list[tuple[int, int]]:
    """(start, end) of the plain string literals in a generated line (not format or interpolated strings)."""
    out = []
    k = 0
    while (start := line.find('"', k)) >= 0:
        end = line.index('"', start + 1) + 1
        text = line[start:end]
        if not (start and line[start - 1] == "$") and "%" not in text and "{" not in text:
            out.append((start, end))
        k = end
    return out


# ---- the model ---------------------------------------------------------------------------------------------------
@dataclass
class Func:
    name: str
    params: tuple[str, ...]  # parameter types, in order; () for a unit parameter
    ret: str
    body: list[str]  # statements, then the result expression (lines relative to the function's indentation)
    inline: bool = False
    calls: dict[str, int] = field(default_factory=dict)  # callee name -> weighted multiplicity
    uses: set[str] = field(default_factory=set)  # functions and types it names
    locals: list[tuple[str, str]] = field(default_factory=list)  # (name, type) bound by the body's statements
    shape: int = 0  # how a generic function's result picks between its arguments

    @property
    def generic(self) -> bool:
        """`f<'T> (a: 'T) (b: 'T) (n: int) : 'T`: its body computes an int that picks a or b."""
        return self.ret == GENERIC

    @property
    def core_type(self) -> str:
        return INT if self.generic else self.ret

    def param_vars(self) -> list[tuple[str, str]]:
        if self.generic:
            return [("a", GENERIC), ("b", GENERIC), ("n", INT)]
        return [(PARAM_NAMES[t], t) for t in self.params]

    def header(self) -> str:
        params = " ".join(f"({n}: {t})" for n, t in self.param_vars()) or "()"
        return f"let {'inline ' if self.inline else ''}{self.name}{'<' + GENERIC + '>' if self.generic else ''} " \
            f"{params} : {self.ret} ="

    def render(self) -> list[str]:
        """The function's lines: every local the statements bind flows into the result, so edits show."""
        result = f"({self.body[-1]})"
        for name, ty in self.locals:
            if self.core_type == INT:
                result += f" + {name}" if ty == INT else f" + (String.length {name})"
            else:
                result += f" + (string {name})" if ty == INT else f" + {name}"
        if self.generic:
            result = f"(if ({result}) % 2 = 0 then a else b)" if self.shape == 0 else \
                f"([a; b] |> List.map (fun (v: {GENERIC}) -> v) |> List.item (abs (({result}) % 2)))"
        return [self.header()] + [f"    {line}" for line in self.body[:-1]] + [f"    {result}"]


@dataclass
class Value:
    name: str
    type: str
    expr: str
    literal: bool = False


@dataclass
class Member:
    name: str
    ret: str
    method: bool  # `member r.Name(k: int)` rather than a property
    static: bool = False
    arms: list[str] = field(default_factory=list)  # one expression (record) or one per union case


@dataclass
class TypeDef:
    name: str
    union: bool
    fields: list[tuple[str, str]]  # record fields, or union cases (name, payload type or "")
    members: list[Member] = field(default_factory=list)


@dataclass
class Pad:
    lines: list[str]


Item = Func | Value | TypeDef | Pad


@dataclass
class Module:
    name: str
    items: list[Item] = field(default_factory=list)


@dataclass
class Edit:
    """What one save did to the model: a description for reports, and the refusal kinds expected if rude."""

    what: list[str] = field(default_factory=list)
    rude: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        return "; ".join(self.what)


class Retry(Exception):
    """This edit cannot be made to the current model; another one is drawn."""


# ---- expressions -------------------------------------------------------------------------------------------------
@dataclass
class Scope:
    """What an expression may name at the point where it is written."""

    vars: list[tuple[str, str]]  # (F# text, type)
    funcs: list[Func]
    types: list[TypeDef]
    costs: dict[str, int]
    inline: bool = False


class ExprGen:
    """Random well-typed F# expressions (each production parenthesized, so they nest on one line)."""

    def __init__(self, rng: random.Random, scope: Scope, fresh: Callable[[str], str]) -> None:
        self.rng = rng
        self.scope = scope
        self.fresh = fresh
        self.mult = 1
        self.spent = 0
        self.calls: dict[str, int] = {}
        self.uses: set[str] = set()
        self.vars = list(scope.vars)

    def lit_int(self) -> str:
        n = self.rng.randint(-20, 120)
        return f"({n})"

    def lit_str(self) -> str:
        return fs_string(self.rng.choice(WORDS))

    def var(self, ty: str) -> str | None:
        found = [v for v, t in self.vars if t == ty]
        if not found:
            return None
        return self.rng.choice(found)

    def _with(self, name: str, ty: str, mult: int, make: Callable[[], str]) -> str:
        self.vars.append((name, ty))
        self.mult *= mult
        try:
            return make()
        finally:
            self.mult //= mult
            self.vars.pop()

    def call(self, ty: str, depth: int) -> str | None:
        options = [f for f in self.scope.funcs if f.ret in (ty, GENERIC)
                   and self.spent + self.mult * self.scope.costs.get(f.name, 1) <= CALL_BUDGET]
        if not options:
            return None
        f = self.rng.choice(options)
        self.spent += self.mult * self.scope.costs.get(f.name, 1)
        self.calls[f.name] = self.calls.get(f.name, 0) + self.mult
        self.uses.add(f.name)
        args = " ".join(f"({self.expr(ty if t == GENERIC else t, depth + 1)})" for t in f.params) or "()"
        return f"({f.name} {args})"

    def expr(self, ty: str, depth: int = 0) -> str:
        if ty == INT:
            return self.int_expr(depth)
        if ty == STR:
            return self.str_expr(depth)
        return self.bool_expr(depth)

    def pick(self, choices: list[tuple[int, Callable[[], str | None]]]) -> str:
        for _ in range(20):
            total = sum(w for w, _ in choices)
            r = self.rng.uniform(0, total)
            for w, make in choices:
                r -= w
                if r <= 0:
                    made = make()
                    if made is not None:
                        return made
                    break
        raise AssertionError("no production applies")  # the literal productions always do

    def records(self) -> list[TypeDef]:
        return [t for t in self.scope.types if not t.union]

    def unions(self) -> list[TypeDef]:
        return [t for t in self.scope.types if t.union]

    def build_record(self, t: TypeDef, depth: int) -> str:
        self.uses.add(t.name)
        inits = "; ".join(f"{name} = {self.expr(ft, depth + 1)}" for name, ft in t.fields)
        return f"{{ {inits} }}"

    def build_union(self, t: TypeDef, depth: int) -> str:
        self.uses.add(t.name)
        case, payload = self.rng.choice(t.fields)
        return f"({case} ({self.expr(payload, depth + 1)}))" if payload else f"{case}"

    def use_member(self, t: TypeDef, ty: str, depth: int) -> str | None:
        members = [m for m in t.members if m.ret == ty and not m.static]
        if not members:
            return None
        m = self.rng.choice(members)
        value = self.build_union(t, depth) if t.union else self.build_record(t, depth)
        arg = f"({self.expr(INT, depth + 1)})" if m.method else ""
        return f"(({value}).{m.name}{arg})"

    def use_static(self, ty: str, depth: int) -> str | None:
        found = [(t, m) for t in self.scope.types for m in t.members if m.static and m.ret == ty]
        if not found:
            return None
        t, m = self.rng.choice(found)
        self.uses.add(t.name)
        return f"({t.name}.{m.name}({self.expr(INT, depth + 1)}))"

    def type_productions(self, ty: str, depth: int) -> list[tuple[int, Callable[[], str | None]]]:
        if not self.scope.types:
            return []
        out: list[tuple[int, Callable[[], str | None]]] = [
            (3, lambda: self.use_member(self.rng.choice(self.scope.types), ty, depth)),
            (1, lambda: self.use_static(ty, depth)),
        ]
        if ty == STR:
            out.append((1, lambda: f'(sprintf "%A" ({self.build_record(self.rng.choice(self.records()), depth)}))'
                        if self.records() else None))
            out.append((1, lambda: f"(string ({self.build_union(self.rng.choice(self.unions()), depth)}))"
                        if self.unions() else None))
        if ty == INT:
            out.append((1, lambda: self.compare_unions(depth)))
        return out

    def compare_unions(self, depth: int) -> str | None:
        if not self.unions():
            return None
        t = self.rng.choice(self.unions())
        return f"(compare ({self.build_union(t, depth)}) ({self.build_union(t, depth)}))"

    def async_bind(self) -> str:
        a = self.fresh("a")
        first = self.int_expr(2)
        rest = self._with(a, INT, 1, lambda: self.int_expr(2))
        return f"(async {{ let! {a} = async {{ return {first} }} in return {a} + {rest} }} |> Async.RunSynchronously)"

    def int_expr(self, depth: int) -> str:
        rng = self.rng
        leaf: list[tuple[int, Callable[[], str | None]]] = [(3, self.lit_int), (4, lambda: self.var(INT))]
        if depth >= 3:
            return self.pick(leaf)
        d = depth + 1
        e = self.int_expr
        s = self.str_expr

        def lam() -> str:
            v = self.fresh("v")
            body = self._with(v, INT, 3, lambda: e(d))
            tail = rng.choice(["List.sum", "List.max", "List.length", "List.head"])
            return f"([1; 2; 3] |> List.map (fun ({v}: int) -> {body}) |> {tail})"

        def fold() -> str:
            a, v = self.fresh("a"), self.fresh("v")
            self.vars.append((a, INT))
            body = self._with(v, INT, 2, lambda: e(d))
            self.vars.pop()
            return f"(List.fold (fun ({a}: int) ({v}: int) -> {body}) {e(d)} [{e(d)}; {e(d)}])"

        def seq() -> str:
            i = self.fresh("i")
            body = self._with(i, INT, 3, lambda: e(d))
            return f"(seq {{ for {i} in 1 .. 3 -> {body} }} |> Seq.sum)"

        def let_in() -> str:
            t = self.fresh("t")
            bound = e(d)
            body = self._with(t, INT, 1, lambda: e(d))
            return f"(let {t} = {bound} in {body})"

        def let_rec() -> str | None:
            if self.scope.inline:
                return None
            g, n = self.fresh("go"), self.fresh("n")
            self.mult *= 4
            base = e(d)
            self.mult //= 4
            return f"(let rec {g} {n} = if {n} <= 0 then {base} else {n} + {g} ({n} - 1) in {g} 3)"

        def match() -> str:
            return f"(match {e(d)} % 3 with 0 -> {e(d)} | 1 -> {e(d)} | _ -> {e(d)})"

        return self.pick(leaf + [
            (4, lambda: f"({e(d)} {rng.choice(['+', '-', '*'])} {e(d)})"),
            (2, lambda: f"({e(d)} % {rng.randint(2, 9)})"),
            (2, lambda: f"(if {self.bool_expr(d)} then {e(d)} else {e(d)})"),
            (2, lambda: f"(String.length {s(d)})"),
            (3, lambda: self.call(INT, d)),
            (2, lam), (1, fold), (1, seq), (1, let_in), (1, let_rec), (1, match),
            (1, lambda: f"(async {{ return {e(d)} }} |> Async.RunSynchronously)"),
            (1, self.async_bind),
            (1, lambda: f"((task {{ return {e(d)} }}).Result)"),
            (1, lambda: "(Array.sum [| " + "; ".join(self.lit_int() for _ in range(rng.randint(8, 12))) + " |])"),
            (1, lambda: f"(try {e(d)} with _ -> {e(d)})"),
            *self.type_productions(INT, d),
        ])

    def str_expr(self, depth: int) -> str:
        leaf: list[tuple[int, Callable[[], str | None]]] = [(3, self.lit_str), (3, lambda: self.var(STR))]
        if depth >= 3:
            return self.pick(leaf)
        d = depth + 1
        e = self.int_expr
        s = self.str_expr

        def interpolated() -> str | None:
            iv, sv = self.var(INT), self.var(STR)
            if iv is None or sv is None:
                return None
            return f'$"<{{{iv}}}|{{{sv}}}>"'

        def joined() -> str:
            v = self.fresh("v")
            body = self._with(v, INT, 2, lambda: e(d))
            return f'(String.concat "," ([1; 2] |> List.map (fun ({v}: int) -> string ({body}))))'

        return self.pick(leaf + [
            (3, lambda: f"({s(d)} + {s(d)})"),
            (2, lambda: f"(string {e(d)})"),
            (2, lambda: f'(sprintf "%d:%s" {e(d)} {s(d)})'),
            (1, interpolated),
            (2, lambda: f"(if {self.bool_expr(d)} then {s(d)} else {s(d)})"),
            (3, lambda: self.call(STR, d)),
            (1, joined),
            (1, lambda: f"({s(d)}.ToUpperInvariant())"),
            (1, lambda: f'({s(d)}.Replace({fs_string(self.rng.choice(WORDS[:-1]))}, {self.lit_str()}))'),
            (1, lambda: f'(match {s(d)} with "ab" -> {s(d)} | _ -> {s(d)})'),
            *self.type_productions(STR, d),
        ])

    def bool_expr(self, depth: int) -> str:
        rng = self.rng
        d = depth + 1
        e, s = self.int_expr, self.str_expr
        choices: list[tuple[int, Callable[[], str | None]]] = [
            (4, lambda: f"({e(d)} {rng.choice(['>', '<', '=', '<>', '>='])} {e(d)})"),
            (2, lambda: f"({s(d)} = {s(d)})"),
            (1, lambda: f"({s(d)}.Contains({self.lit_str()}))"),
            (1, lambda: f"(not ({e(d)} > {e(d)}))"),
        ]
        recs = self.records()
        if recs:
            def same() -> str:
                t = rng.choice(recs)
                return f"(({self.build_record(t, d)}) = ({self.build_record(t, d)}))"
            choices.append((1, same))
        return self.pick(choices)

    # ---- statements: the lines of a body ----------------------------------------------------------------------
    def body(self, ret: str) -> list[str]:
        lines: list[str] = []
        for _ in range(self.rng.choice([0, 1, 1, 2, 2, 3])):
            lines += self.statement()
        lines.append(self.expr(ret))
        return lines

    def statement(self) -> list[str]:
        rng = self.rng
        t = self.fresh("t")
        kind = rng.choice(["let", "let", "lets", "loop", "pipe", "match", "try"])
        out: list[str]
        ty = INT
        if kind == "let":
            out = [f"let {t} = {self.expr(INT)}"]
        elif kind == "lets":
            ty = STR
            out = [f"let {t} = {self.expr(STR)}"]
        elif kind == "loop":
            m, i = self.fresh("m"), self.fresh("i")
            step = self._with(i, INT, 3, lambda: self.expr(INT, 1))
            out = [f"let mutable {m} = 0", f"for {i} in 1 .. 3 do", f"    {m} <- {m} + {step}", f"let {t} = {m}"]
        elif kind == "pipe":
            v, w = self.fresh("v"), self.fresh("v")
            mapped = self._with(v, INT, 3, lambda: self.expr(INT, 1))
            kept = self._with(w, INT, 3, lambda: self.bool_expr(1))
            out = [f"let {t} =", "    [1; 2; 3]", f"    |> List.map (fun ({v}: int) -> {mapped})",
                   f"    |> List.filter (fun ({w}: int) -> {kept})", "    |> List.length"]
        elif kind == "match":
            ty = rng.choice([INT, STR])
            out = [f"let {t} =", f"    match {self.expr(INT, 1)} % 4 with",
                   f"    | 0 -> {self.expr(ty, 1)}", f"    | 1 | 2 -> {self.expr(ty, 1)}",
                   f"    | _ -> {self.expr(ty, 1)}"]
        else:
            ty = rng.choice([INT, STR])
            out = [f"let {t} =", f"    try {self.expr(ty, 1)}", f"    with _ -> {self.expr(ty, 1)}"]
        self.vars.append((t, ty))
        return out


# ---- the program -------------------------------------------------------------------------------------------------
class Program:
    """A generated F# app as a model; `files()` renders it, `random_edit()` changes it."""

    def __init__(self, seed: int, functions_per_module: int = 3) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.modules = [Module(m) for m in MODULES]
        self.counter = 0
        self.removed: list[tuple[str, Func]] = []  # (module, function) removed, for names that come back
        for module in self.modules:
            m = module.name
            module.items.append(Value(self.name("v", m), INT, str(self.rng.randint(1, 50))))
            module.items.append(Value(self.name("w", m), STR, fs_string(self.rng.choice(WORDS))))
            module.items.append(Value(self.name("z", m), INT, "[1; 2; 3] |> List.map (fun q -> q * q) |> List.sum"))
            module.items.append(Value(self.name("K", m), INT, str(self.rng.randint(1, 9)), literal=True))
            if self.rng.random() < 0.5:
                module.items.append(self.new_type(module, len(module.items)))
            for _ in range(functions_per_module):
                module.items.append(self.new_function(module, len(module.items)))
        assert self.all_costs_ok()

    # ---- names, scopes, costs -----------------------------------------------------------------------------------
    def name(self, prefix: str, module: str) -> str:
        self.counter += 1
        return f"{prefix}{module}{self.counter}"

    def fresh(self) -> Callable[[str], str]:
        counts: dict[str, int] = {}

        def make(prefix: str) -> str:
            counts[prefix] = counts.get(prefix, 0) + 1
            return f"{prefix}{counts[prefix]}"
        return make

    def functions(self) -> list[tuple[Module, Func]]:
        return [(m, i) for m in self.modules for i in m.items if isinstance(i, Func)]

    def costs(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, f in self.functions():  # callees come first (in file order)
            out[f.name] = 1 + sum(n * out.get(g, 1) for g, n in f.calls.items())
        return out

    def all_costs_ok(self) -> bool:
        return max(self.costs().values(), default=0) <= COST_CAP

    def scope(self, module: Module, position: int, inline: bool = False) -> Scope:
        vars_: list[tuple[str, str]] = []
        funcs: list[Func] = []
        types: list[TypeDef] = []
        for m in self.modules:
            items = m.items[:position] if m is module else m.items
            for item in items:
                if isinstance(item, Value):
                    vars_.append((item.name, item.type))
                elif isinstance(item, Func):
                    funcs.append(item)
                elif isinstance(item, TypeDef):
                    types.append(item)
            if m is module:
                break
        return Scope(vars_, funcs, types, self.costs(), inline)

    def dependents(self, name: str) -> list[Func]:
        return [f for _, f in self.functions() if name in f.uses]

    # ---- making things -------------------------------------------------------------------------------------------
    def new_body(self, module: Module, position: int, f: Func) -> None:
        scope = self.scope(module, position, f.inline)
        scope.vars += f.param_vars()
        gen = ExprGen(self.rng, scope, self.fresh())
        f.body = gen.body(f.core_type)
        f.calls, f.uses, f.locals = gen.calls, gen.uses, gen.vars[len(scope.vars):]

    def new_function(self, module: Module, position: int, name: str | None = None,
                     params: tuple[str, ...] | None = None, ret: str | None = None) -> Func:
        if ret is None and self.rng.random() < 0.1:
            params, ret = (GENERIC, GENERIC, INT), GENERIC
        f = Func(name or self.name("f", module.name),
                 params if params is not None else self.rng.choice(list(PROBE_ARGS)),
                 ret or self.rng.choice([INT, STR]), [], shape=self.rng.randint(0, 1))
        f.inline = not f.generic and self.rng.random() < 0.1
        self.new_body(module, position, f)
        return f

    def member_arms(self, t: TypeDef, ret: str, method: bool) -> list[str]:
        base = [("k", INT)] if method else []
        if not t.union:
            scope = Scope(base + [(f"r.{n}", ty) for n, ty in t.fields], [], [], {})
            return [ExprGen(self.rng, scope, self.fresh()).expr(ret)]
        arms = []
        for _case, payload in t.fields:
            scope = Scope(base + ([("c", payload)] if payload else []), [], [], {})
            arms.append(ExprGen(self.rng, scope, self.fresh()).expr(ret))
        return arms

    def new_member(self, t: TypeDef) -> Member:
        kind = self.rng.choice(["prop", "method", "static"])
        m = Member(self.name("M", ""), self.rng.choice([INT, STR]), kind != "prop", kind == "static")
        if m.static:
            scope = Scope([("k", INT)], [], [], {})
            m.arms = [ExprGen(self.rng, scope, self.fresh()).expr(m.ret)]
        else:
            m.arms = self.member_arms(t, m.ret, m.method)
        return m

    def new_type(self, module: Module, position: int) -> TypeDef:
        n = self.name("", module.name)
        if self.rng.random() < 0.5:
            t = TypeDef(f"Rec{n}", False, [(f"Foo{n}", INT), (f"Bar{n}", STR)])
            if self.rng.random() < 0.5:
                t.fields.append((f"Baz{n}", INT))
        else:
            t = TypeDef(f"Un{n}", True, [(f"Case{n}a", INT), (f"Case{n}b", STR), (f"Case{n}c", "")])
        for _ in range(self.rng.randint(1, 2)):
            t.members.append(self.new_member(t))
        return t

    # ---- rendering -----------------------------------------------------------------------------------------------
    def render_type(self, t: TypeDef) -> list[str]:
        if t.union:
            out = [f"type {t.name} ="] + [f"    | {c} of {p}" if p else f"    | {c}" for c, p in t.fields]
        else:
            out = [f"type {t.name} =", "    { " + "; ".join(f"{n}: {ty}" for n, ty in t.fields) + " }"]
        for m in t.members:
            if m.static:
                out.append(f"    static member {m.name}(k: int) : {m.ret} = {m.arms[0]}")
                continue
            self_ = "u" if t.union else "r"
            head = f"    member {self_}.{m.name}" + ("(k: int)" if m.method else "") + f" : {m.ret} ="
            if not t.union:
                out.append(f"{head} {m.arms[0]}")
            else:
                out.append(head)
                out.append(f"        match {self_} with")
                for (case, payload), arm in zip(t.fields, m.arms, strict=True):
                    out.append(f"        | {case}{' c' if payload else ''} -> {arm}")
        return out

    def render_module(self, module: Module) -> str:
        index = MODULES.index(module.name)
        lines = [f"module Gen.{module.name}", ""] + [f"open Gen.{m}" for m in MODULES[:index]] + [""]
        for item in module.items:
            if isinstance(item, Pad):
                lines += item.lines
            elif isinstance(item, Value):
                lines += (["[<Literal>]"] if item.literal else []) + [f"let {item.name} = {item.expr}", ""]
            elif isinstance(item, TypeDef):
                lines += self.render_type(item) + [""]
            else:
                lines += item.render() + [""]
        return "\n".join(lines)

    def probes(self) -> list[tuple[str, str, tuple[object, ...]]]:
        """(id, "Gen.Module.function", arguments) for every function, in file order."""
        out = []
        for module, f in self.functions():
            if f.generic:  # an open generic method cannot be called through reflection: its callers show it
                continue
            for k, args in enumerate(PROBE_ARGS[f.params]):
                out.append((f"{f.name}#{k}", f"Gen.{module.name}.{f.name}", args))
        return out

    def render_main(self) -> str:
        lines = ["module Gen.Program", "",
                 "let emit (id: string) (value: obj) =",
                 '    System.Console.Out.WriteLine(id + "\\t" + System.Text.Json.JsonSerializer.Serialize(value))',
                 "",
                 "let fail (id: string) (e: exn) =",
                 ('    System.Console.Out.WriteLine(id + "\\t" + System.Text.Json.JsonSerializer.Serialize('
                  '"!" + e.GetType().FullName))'),
                 "",
                 "[<EntryPoint>]",
                 "let main _ ="]
        for pid, qualified, args in self.probes():
            shown = " ".join(f"({fs_string(a) if isinstance(a, str) else a})" for a in args) or "()"
            lines.append(f'    (try emit "{pid}" (box ({qualified} {shown})) with e -> fail "{pid}" e)')
        lines += ["    0", ""]
        return "\n".join(lines)

    def files(self) -> dict[str, str]:
        out = {f"{m.name}.fs": self.render_module(m) for m in self.modules}
        out["Program.fs"] = self.render_main()
        return out

    # ---- edits ---------------------------------------------------------------------------------------------------
    def snapshot(self) -> Program:
        return copy.deepcopy(self)

    def random_edit(self) -> Edit:
        """Change the model by one save's worth of edits (the model is left unchanged if every try fails)."""
        kinds: list[tuple[int, Callable[[Edit], None]]] = [
            (16, self.edit_body), (18, self.edit_constant), (7, self.edit_statement), (14, self.add_function),
            (6, self.remove_function), (10, self.insert_lines), (4, self.remove_lines), (5, self.add_type),
            (6, self.edit_member), (3, self.add_member), (4, self.edit_literal), (5, self.several),
            (4, self.edit_value), (2, self.rude),
        ]
        for _ in range(50):
            before = self.snapshot()
            edit = Edit()
            try:
                self.draw(kinds)(edit)
                if not self.all_costs_ok():
                    raise Retry("too costly")
                return edit
            except Retry:
                rng = self.rng  # the draws go on: the next try is another edit
                self.__dict__.update(before.__dict__)
                self.rng = rng
        raise AssertionError("no edit could be made")

    def draw(self, kinds: list[tuple[int, Callable[[Edit], None]]]) -> Callable[[Edit], None]:
        total = sum(w for w, _ in kinds)
        r = self.rng.uniform(0, total)
        for w, make in kinds:
            r -= w
            if r <= 0:
                return make
        return kinds[-1][1]

    def pick_function(self) -> tuple[Module, Func]:
        found = self.functions()
        if not found:
            raise Retry("no functions")
        return self.rng.choice(found)

    def several(self, edit: Edit) -> None:
        simple: list[tuple[int, Callable[[Edit], None]]] = [
            (3, self.edit_body), (3, self.edit_constant), (2, self.add_function), (2, self.insert_lines),
            (1, self.add_type), (1, self.edit_member), (1, self.remove_function)]
        for _ in range(self.rng.randint(2, 3)):
            self.draw(simple)(edit)

    def edit_body(self, edit: Edit) -> None:
        module, f = self.pick_function()
        self.new_body(module, module.items.index(f), f)
        edit.what.append(f"body of {f.name} rewritten")

    def edit_statement(self, edit: Edit) -> None:
        """A statement added before the result, or the result expression replaced (the rest as it was)."""
        module, f = self.pick_function()
        position = module.items.index(f)
        scope = self.scope(module, position, f.inline)
        scope.vars += f.param_vars()
        gen = ExprGen(self.rng, scope, self.fresh())
        taken = set(re.findall(r"\b[a-z]+\d+\b", "\n".join(f.body)))
        fresh = gen.fresh

        def unused(prefix: str) -> str:
            while True:
                name = fresh(prefix)
                if name not in taken:
                    return name
        gen.fresh = unused
        gen.vars += f.locals
        if self.rng.random() < 0.7:  # a new statement just before the result (it may use every local above)
            f.body[-1:-1] = gen.statement()
            f.locals = f.locals + gen.vars[-1:]
            edit.what.append(f"statement added to {f.name}")
        else:
            f.body[-1] = gen.expr(f.core_type)
            edit.what.append(f"result expression of {f.name} replaced")
        for g, n in gen.calls.items():
            f.calls[g] = f.calls.get(g, 0) + n
        f.uses |= gen.uses

    def edit_constant(self, edit: Edit) -> None:
        """One integer or string literal in a body or member changed."""
        targets: list[tuple[list[str], int, str]] = []
        for _, f in self.functions():
            for k, line in enumerate(f.body):
                targets.append((f.body, k, f.name))
        for m in self.modules:
            for item in m.items:
                if isinstance(item, TypeDef):
                    for member in item.members:
                        for k in range(len(member.arms)):
                            targets.append((member.arms, k, f"{item.name}.{member.name}"))
        self.rng.shuffle(targets)
        for lines, k, owner in targets:
            line = lines[k]
            spots = [(m.start(), m.end(), "int") for m in re.finditer(r"\((-?\d+)\)", line)]
            spots += [(a, b, "str") for a, b in string_literals(line)]
            if not spots:
                continue
            start, end, kind = self.rng.choice(spots)
            old = line[start:end]
            # never "": it may be the text a `.Replace` looks for, which must not be empty
            new = f"({self.rng.randint(-20, 120)})" if kind == "int" else fs_string(self.rng.choice(WORDS[:-1]))
            if new == old:
                new = "(121)" if kind == "int" else '"changed"'
            lines[k] = line[:start] + new + line[end:]
            edit.what.append(f"constant {old} -> {new} in {owner}")
            return
        raise Retry("no literal")

    def add_function(self, edit: Edit) -> None:
        module = self.rng.choice(self.modules)
        lowest = max((k + 1 for k, i in enumerate(module.items) if isinstance(i, Value)), default=0)
        position = self.rng.randint(lowest, len(module.items))
        revived = [f for m, f in self.removed if m == module.name] if self.rng.random() < 0.4 else []
        if revived:
            old = self.rng.choice(revived)
            same = self.rng.random() < 0.7
            self.removed = [(m, f) for m, f in self.removed if f.name != old.name]
            f = self.new_function(module, position, old.name, old.params if same else None, old.ret if same else None)
            what = f"function {f.name} added back ({'same' if same else 'new'} signature)"
        else:
            f = self.new_function(module, position)
            what = f"function {f.name} added"
        module.items.insert(position, f)
        edit.what.append(what)

    def remove_function(self, edit: Edit) -> None:
        free = [(m, f) for m, f in self.functions() if not self.dependents(f.name)]
        if len(self.functions()) < 4 or not free:
            raise Retry("nothing to remove")
        module, f = self.rng.choice(free)
        module.items.remove(f)
        self.removed.append((module.name, f))
        edit.what.append(f"function {f.name} removed")

    def insert_lines(self, edit: Edit) -> None:
        module = self.rng.choice(self.modules)
        position = self.rng.randint(0, len(module.items))
        n = self.rng.randint(1, 3)
        module.items.insert(position, Pad([f"// note {self.rng.randint(0, 999)}" if self.rng.random() < 0.6 else ""
                                           for _ in range(n)]))
        edit.what.append(f"{n} line(s) inserted in {module.name}.fs at item {position}")

    def remove_lines(self, edit: Edit) -> None:
        pads = [(m, i) for m in self.modules for i in m.items if isinstance(i, Pad)]
        if not pads:
            raise Retry("no inserted lines")
        module, pad = self.rng.choice(pads)
        module.items.remove(pad)
        edit.what.append(f"{len(pad.lines)} line(s) removed from {module.name}.fs")

    def add_type(self, edit: Edit) -> None:
        module = self.rng.choice(self.modules)
        lowest = max((k + 1 for k, i in enumerate(module.items) if isinstance(i, Value)), default=0)
        position = self.rng.randint(lowest, len(module.items))
        t = self.new_type(module, position)
        module.items.insert(position, t)
        user = Func(self.name("use", module.name), (INT,), self.rng.choice([INT, STR]), [])
        module.items.insert(position + 1, user)
        scope = self.scope(module, position + 1)
        scope.vars.append(("x", INT))
        scope.types = [t]  # the new type is used for sure
        gen = ExprGen(self.rng, scope, self.fresh())
        if user.ret == INT:
            user.body = [gen.use_member(t, INT, 1) or gen.compare_unions(1)
                         or f"(String.length (string ({gen.build_record(t, 1)})))"]
        else:
            user.body = [f'(sprintf "%A" ({gen.build_union(t, 1) if t.union else gen.build_record(t, 1)}))']
        user.calls, user.uses = gen.calls, gen.uses | {t.name}
        edit.what.append(f"{'union' if t.union else 'record'} {t.name} added with {user.name}")

    def types(self) -> list[tuple[Module, TypeDef]]:
        return [(m, i) for m in self.modules for i in m.items if isinstance(i, TypeDef)]

    def edit_member(self, edit: Edit) -> None:
        found = [(t, m) for _, t in self.types() for m in t.members]
        if not found:
            raise Retry("no members")
        t, m = self.rng.choice(found)
        fresh = self.new_member(t)
        m.arms = fresh.arms if (fresh.static, fresh.method, fresh.ret) == (m.static, m.method, m.ret) else \
            (self.member_arms(t, m.ret, m.method) if not m.static else
             [ExprGen(self.rng, Scope([("k", INT)], [], [], {}), self.fresh()).expr(m.ret)])
        edit.what.append(f"member {t.name}.{m.name} rewritten")

    def add_member(self, edit: Edit) -> None:
        found = self.types()
        if not found:
            raise Retry("no types")
        _, t = self.rng.choice(found)
        m = self.new_member(t)
        t.members.append(m)
        edit.what.append(f"member {t.name}.{m.name} added")

    def edit_literal(self, edit: Edit) -> None:
        literals = [v for m in self.modules for v in m.items if isinstance(v, Value) and v.literal]
        v = self.rng.choice(literals)
        v.expr = str(int(v.expr) + self.rng.randint(1, 5))
        edit.what.append(f"[<Literal>] {v.name} = {v.expr}")

    def edit_value(self, edit: Edit) -> None:
        """A module-level value's initializer edited, or a value added: applied, and computed again in the running
        app with the values that read it (hotreload.module_values), so the live results must match a fresh run."""
        module = self.rng.choice(self.modules)
        if self.rng.random() < 0.5:
            v = self.rng.choice([v for v in module.items if isinstance(v, Value) and not v.literal])
            if v.name.startswith("z"):
                v.expr = f"[1; 2; 3] |> List.map (fun q -> q * q + {self.rng.randint(1, 999)}) |> List.sum"
            elif v.type == INT and v.expr.isdigit():
                v.expr = str(int(v.expr) + 1)
            elif v.type == INT:
                v.expr = f"List.sum [4; {self.rng.randint(1, 999)}]"
            else:
                v.expr = fs_string(v.expr.strip('"') + "!")
            edit.what.append(f"value {v.name} in {module.name}.fs")
        else:
            lowest = max(k + 1 for k, i in enumerate(module.items) if isinstance(i, Value))
            module.items.insert(lowest, Value(self.name("y", module.name), INT, f"List.sum [4; {self.counter}]"))
            edit.what.append(f"value added to {module.name}.fs")

    def rude(self, edit: Edit) -> None:
        # a function's signature change is applied (tests/test_edits_signatures.py), and so are module-level
        # values (edit_value): a union case added is what stays rude here
        unions = [t for _, t in self.types() if t.union]
        if not unions:
            raise Retry("no unions")
        t = self.rng.choice(unions)
        case = f"{t.fields[0][0][:-1]}d{len(t.fields)}"
        t.fields.append((case, ""))
        for m in t.members:
            if not m.static:
                m.arms.append(self.member_arms(t, m.ret, m.method)[-1])
        edit.rude.add("union case change")
        edit.what.append(f"rude: case {case} added to {t.name}")
