"""Exception handlers and `localloc` on the real runtime: edited bodies and added functions that catch by type
(.NET and F# exception types, running and added ones), use `when` guards, or allocate on the stack.

What F# (Debug) emits for these, checked against the build in each test: `:? T as e` alone is a filter block
(`isinst` in the filter, the handler after it); a handler with an F# exception pattern or a `when` guard is
`catch [System.Object]` with the tests and a `rethrow` inside. Either way the delta must carry the clauses
(offsets, kinds, the catch type's token mapped to the running module) and the runtime must run them: an
exception the handler does not take still goes up.

`NativePtr.stackalloc` is `localloc`, whose memory is zeroed only when the body's header has InitLocals: the
delta's re-encoded headers must keep the flag, or the edited code reads whatever the stack held before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from live_project import LiveProject

from hotreload.app import AppError
from hotreload.delta import Delta
from hotreload.delta import build_delta as real_build_delta
from hotreload.indexed import Build
from hotreload.metadata.il import parse_body
from hotreload.metadata.reader import MetadataImage
from hotreload.metadata.schema import T, token

pytestmark = pytest.mark.runtime

M = "Demo.Handlers."
FILTER, CATCH = 1, 0  # exception clause kinds (ECMA-335 II.25.4.6)

BASE = """module Demo.Handlers
#nowarn "9"
open Microsoft.FSharp.NativeInterop

exception MyErr of string
type OtherErr(msg: string) =
    inherit exn(msg)

let typed (s: string) =
    try (if s = "" then raise (System.ArgumentException "empty") else s.Length)
    with :? System.ArgumentException as e -> e.Message.Length + 100
let mine (n: int) =
    try (if n = 1 then raise (MyErr "m") elif n = 2 then raise (OtherErr "oo") else n)
    with
    | MyErr m -> m.Length + 200
    | :? OtherErr as o -> o.Message.Length + 300
let guarded (s: string) =
    try failwith s
    with
    | e when e.Message.Contains "x" -> 1
    | _ -> 2
let fill () =
    let p = NativePtr.stackalloc<int> 64
    for i in 0 .. 63 do NativePtr.set p i 0x5A5A5A5A
    NativePtr.get p 63
let stack () =
    let p = NativePtr.stackalloc<int> 8
    NativePtr.set p 0 1
    let s = System.Span<int>(NativePtr.toVoidPtr p, 8)
    s.[0] + s.[7]
"""


@pytest.fixture
def deltas(monkeypatch: pytest.MonkeyPatch) -> list[Delta]:
    """Every delta the session builds, in order (the session's own build_delta, recorded)."""
    made: list[Delta] = []

    def recording(*args: Any, **kwargs: Any) -> Delta:
        delta = real_build_delta(*args, **kwargs)
        made.append(delta)
        return delta

    monkeypatch.setattr("hotreload.session.build_delta", recording)
    return made


def _method_key(p: LiveProject, name: str) -> str:
    keys = [k for k in p.session.previous.methods if k.startswith(f"M:Demo.Handlers::{name}|")]
    assert len(keys) == 1, keys
    return keys[0]


def _clause_kinds_built(p: LiveProject, name: str) -> list[int]:
    """Clause kinds of `name` in the build now running (read from the assembly with our IL reader)."""
    build: Build = p.session.previous
    body = build.body(build.methods[_method_key(p, name)])
    assert body is not None
    return [c.flags for c in body.clauses]


def _clause_kinds_running(p: LiveProject, name: str) -> list[int]:
    """Clause kinds of `name` as the runtime has them now (reflection reads the updated body)."""
    assert p.session.app is not None
    clauses = p.session.app.find_method(M + name).GetMethodBody().ExceptionHandlingClauses
    return [int(c.Flags) for c in clauses]


def _delta_body(delta: Delta, key: str) -> tuple[bytes, Any]:
    """(raw bytes from the header on, parsed body) of method `key` as the delta's IL carries it: its RVA is the
    MethodDef row the delta's EncMap pairs with the method's running token."""
    md = MetadataImage(delta.metadata)
    running = delta.method_tokens[key]
    method_tokens = [tok for (tok,) in md.rows(T.EncMap) if tok >> 24 == T.MethodDef]
    rva = md.rows(T.MethodDef)[method_tokens.index(running)][0]
    assert 4 <= rva < len(delta.il)
    return delta.il[rva:], parse_body(delta.il[rva:])


def _check_clauses_carried(p: LiveProject, names: list[str]) -> None:
    for name in names:
        assert _clause_kinds_running(p, name) == _clause_kinds_built(p, name), name


def test_typed_catches_edited_and_added(fsharp_project: Callable[..., LiveProject]) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    assert p.call(M + "typed", "") == len("empty") + 100
    assert _clause_kinds_built(p, "typed") == [FILTER]  # a lone `:? T` pattern is a filter block
    # still one pattern (a filter): an InvalidOperationException is not taken and goes up
    one = BASE.replace(
        """    try (if s = "" then raise (System.ArgumentException "empty") else s.Length)
    with :? System.ArgumentException as e -> e.Message.Length + 100""",
        """    try (if s = "" then raise (System.ArgumentException "bad") elif s = "io" then invalidOp "io" else s.Length)
    with :? System.ArgumentException as e -> e.Message.Length + 1000""")
    p.edit("Lib.fs", one)
    assert _clause_kinds_built(p, "typed") == [FILTER]
    _check_clauses_carried(p, ["typed"])
    assert (p.call(M + "typed", ""), p.call(M + "typed", "abcd")) == (len("bad") + 1000, 4)
    with pytest.raises(AppError, match="threw System.InvalidOperationException: io"):
        p.call(M + "typed", "io")
    # two patterns: catch [Object] with the type tests inside
    two = one.replace("    with :? System.ArgumentException as e -> e.Message.Length + 1000",
                      "    with\n    | :? System.ArgumentException as e -> e.Message.Length + 1000\n"
                      "    | :? System.InvalidOperationException as e -> -e.Message.Length")
    p.edit("Lib.fs", two)
    assert _clause_kinds_built(p, "typed") == [CATCH]
    _check_clauses_carried(p, ["typed"])
    assert (p.call(M + "typed", ""), p.call(M + "typed", "io")) == (len("bad") + 1000, -2)
    with pytest.raises(AppError, match="NullReferenceException"):  # no clause takes it (s.Length on null)
        p.call(M + "typed", None)
    # an added function: two nested filters whose type tests name types the app never referenced
    added = two + """let divide (a: int) (b: int) =
    try
        try (if a < 0 then raise (System.ArgumentOutOfRangeException "a") elif a > 100 then raise (System.TimeoutException "t") else a / b)
        with :? System.DivideByZeroException -> -1
    with :? System.ArgumentOutOfRangeException as e -> e.ParamName.Length * -100
let useDivide () = divide 7 2 + divide 1 0 + divide (-1) 1
"""
    outcome = p.edit("Lib.fs", added)
    assert {M + "divide", M + "useDivide"} <= {m.lstrip("+") for m in outcome.methods}
    assert _clause_kinds_built(p, "divide") == [FILTER, FILTER]
    _check_clauses_carried(p, ["divide"])
    assert p.call(M + "useDivide") == 3 - 1 - 100
    with pytest.raises(AppError, match="threw System.TimeoutException: t"):
        p.call(M + "divide", 101, 1)
    # the added function is edited like any other
    p.edit("Lib.fs", added.replace("with :? System.DivideByZeroException -> -1", "with :? System.DivideByZeroException -> -7"))
    assert p.call(M + "useDivide") == 3 - 7 - 100
    _check_clauses_carried(p, ["divide"])


def test_fsharp_exception_types_caught_by_type(fsharp_project: Callable[..., LiveProject]) -> None:
    """`exception MyErr of string` and a class deriving from exn, running ones in an edited body; types added by
    the edit in an added function."""
    p = fsharp_project({"Lib.fs": BASE})
    assert [p.call(M + "mine", n) for n in (1, 2, 3)] == [201, 302, 3]
    assert _clause_kinds_built(p, "mine") == [CATCH]  # an F# exception pattern: catch [Object] and tests inside
    text = BASE.replace("    | MyErr m -> m.Length + 200\n    | :? OtherErr as o -> o.Message.Length + 300",
                        "    | :? OtherErr as o -> o.Message.Length * 1000\n    | MyErr m -> m.Length - 200")
    text = text.replace('elif n = 2 then raise (OtherErr "oo")', 'elif n = 2 then raise (OtherErr "ooo")')
    p.edit("Lib.fs", text)
    assert [p.call(M + "mine", n) for n in (1, 2, 3)] == [-199, 3000, 3]
    _check_clauses_carried(p, ["mine"])
    added = text + """exception Fresh of int
type FreshErr(code: int) =
    inherit exn("fresh")
    member _.Code = code
let classify (n: int) =
    try
        match n with
        | 1 -> raise (MyErr "abc")
        | 2 -> raise (Fresh 7)
        | 3 -> raise (FreshErr 9)
        | 4 -> raise (OtherErr "four")
        | _ -> 0
    with
    | MyErr s -> s.Length
    | Fresh c -> c * 10
    | :? FreshErr as f -> f.Code * 100
let onlyFresh (n: int) =
    try (if n > 0 then raise (FreshErr n) else raise (Fresh n))
    with :? FreshErr as f -> f.Code + 1
"""
    outcome = p.edit("Lib.fs", added)
    assert {"+Demo.Handlers/Fresh", "+Demo.Handlers/FreshErr", "+" + M + "classify"} <= set(outcome.methods)
    assert [p.call(M + "classify", n) for n in (1, 2, 3, 5)] == [3, 70, 900, 0]
    with pytest.raises(AppError, match=r"threw Demo\.Handlers\+OtherErr: four"):  # no handler takes OtherErr
        p.call(M + "classify", 4)
    # a lone `:? FreshErr` is a filter whose isinst names the added type
    assert _clause_kinds_built(p, "onlyFresh") == [FILTER]
    assert p.call(M + "onlyFresh", 4) == 5
    with pytest.raises(AppError, match=r"threw Demo\.Handlers\+Fresh"):
        p.call(M + "onlyFresh", 0)
    _check_clauses_carried(p, ["classify", "onlyFresh"])


def test_when_guards(fsharp_project: Callable[..., LiveProject]) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    assert (p.call(M + "guarded", "x1"), p.call(M + "guarded", "y1")) == (1, 2)
    kinds = _clause_kinds_built(p, "guarded")
    assert kinds == [CATCH], kinds  # F# in Debug: the guard is code inside catch [Object], not a filter block
    text = BASE.replace("""    | e when e.Message.Contains "x" -> 1
    | _ -> 2""", """    | e when e.Message.Contains "y" -> e.Message.Length
    | :? System.ArgumentException -> -5
    | e when e.Message.StartsWith "z" -> 3""")
    text = text.replace("    try failwith s\n", '    try (if s = "arg" then invalidArg "s" "bad" else failwith s)\n')
    p.edit("Lib.fs", text)
    assert (p.call(M + "guarded", "yy"), p.call(M + "guarded", "arg"), p.call(M + "guarded", "zz")) == (2, -5, 3)
    with pytest.raises(AppError, match="threw System.Exception: x1"):  # no guard holds: rethrown
        p.call(M + "guarded", "x1")
    _check_clauses_carried(p, ["guarded"])
    # an added function whose guard uses a running F# exception and a when on its payload
    added = text + """let picky (n: int) =
    try (if n > 0 then raise (MyErr (string n)) else failwith "neg")
    with
    | MyErr m when m.Length > 1 -> 100
    | MyErr _ -> 10
    | e when e.Message = "neg" -> -1
"""
    p.edit("Lib.fs", added)
    assert [p.call(M + "picky", n) for n in (42, 7, -3)] == [100, 10, -1]
    _check_clauses_carried(p, ["picky"])


def test_stackalloc_edited_and_added_keep_init_locals(fsharp_project: Callable[..., LiveProject], deltas: list[Delta]) -> None:
    """`stack` reads stack memory it never wrote; `fill` runs just before and leaves 0x5A5A5A5A on the stack.
    With InitLocals (F# sets it on every body with locals) `localloc` hands out zeros."""
    p = fsharp_project({"Lib.fs": BASE})

    def stack_after_fill(name: str = "stack") -> int:
        p.call(M + "fill")
        return int(p.call(M + name))

    assert stack_after_fill() == 1
    text = BASE.replace("""    NativePtr.set p 0 1
    let s = System.Span<int>(NativePtr.toVoidPtr p, 8)
    s.[0] + s.[7]""", """    NativePtr.set p 0 2
    let s = System.Span<int>(NativePtr.toVoidPtr p, 8)
    let mutable total = 10
    for i in 0 .. 7 do total <- total + s.[i]
    total""")
    p.edit("Lib.fs", text)
    assert [stack_after_fill() for _ in range(3)] == [12, 12, 12]
    key = _method_key(p, "stack")
    raw, body = _delta_body(deltas[-1], key)
    assert raw[0] & 3 == 3 and int.from_bytes(raw[:2], "little") & 0x10, "fat header with CorILMethod_InitLocals"
    assert body.init_locals and body.local_sig  # the header was rewritten: new locals (`total`, the loop)
    built = p.session.previous.body(p.session.previous.methods[key])
    assert built is not None and built.init_locals and body.code == deltas[-1].method_il[key]
    assert p.session.app is not None
    assert p.session.app.find_method(M + "stack").GetMethodBody().InitLocals
    # an added function: its body is new in the IL delta, header and all
    added = text + """let sixteen () =
    let p = NativePtr.stackalloc<int> 16
    let s = System.Span<int>(NativePtr.toVoidPtr p, 16)
    let mutable nonzero = 0
    for i in 0 .. 15 do if s.[i] <> 0 then nonzero <- nonzero + 1
    s.[3] <- 5
    nonzero * 1000 + s.[3]
"""
    p.edit("Lib.fs", added)
    assert [stack_after_fill("sixteen") for _ in range(3)] == [5, 5, 5]
    key = _method_key(p, "sixteen")
    assert p.session.updater is not None
    assert deltas[-1].method_tokens[key] == token(T.MethodDef, p.session.updater.baseline.row_counts[T.MethodDef])
    raw, body = _delta_body(deltas[-1], key)
    assert int.from_bytes(raw[:2], "little") & 0x10 and body.init_locals
