"""Structural edits on the real runtime: moved closures, added functions, fields and types, generics, deleted
functions, attribute changes. Each test builds real F#, saves an edit through the real Session, and calls the
updated code to prove the new behaviour runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from live_project import LiveProject

from hotreload.metadata.schema import T
from hotreload.session import OutcomeKind

pytestmark = pytest.mark.runtime

BASE = """module Demo.Lib

let f (x: int) = [1; 2; 3] |> List.map (fun y -> y + x) |> List.sum
let twice (x: int) = [x; x] |> List.map (fun v -> v * 10) |> List.sum
let g () = 1
let h () = 7
type Counter() =
    let mutable n = 0
    member this.Next() = n <- n + 1; n
let useCounter () = let c = Counter() in c.Next() + c.Next()
let pick<'T> (a: 'T) (b: 'T) (flag: bool) = if flag then a else b
let usePick () = pick "a" "b" true
let run () = async { let! a = async { return 1 } in return a + 1 } |> Async.RunSynchronously
"""


def _added_types(outcome: Any) -> list[str]:
    return [m for m in outcome.methods if m.startswith("+") and "/" in m]


def test_lines_inserted_above_closures_move_them_without_adding_anything(fsharp_project: Any) -> None:
    p: LiveProject = fsharp_project({"Lib.fs": BASE})
    before = len(p.session.previous.types)
    moved = BASE.replace("module Demo.Lib\n", "module Demo.Lib\n\n// two lines\n// inserted above every closure\n")
    outcome = p.edit("Lib.fs", moved.replace("let g () = 1", "let g () = 2"))
    assert outcome.methods == ["Demo.Lib.g"]  # the closures only moved: no added types, no other body
    assert len(p.session.previous.types) == before
    assert p.call("Demo.Lib.g") == 2
    assert p.call("Demo.Lib.f", 1) == 9
    # the moved closure keeps its running identity and can still be edited
    outcome = p.edit("Lib.fs", p.replace("Lib.fs", "fun y -> y + x", "fun y -> y * x"))
    assert not _added_types(outcome)
    assert p.call("Demo.Lib.f", 2) == 12
    # and moving it back (lines removed) is again no change at all
    assert p.save("Lib.fs", BASE.replace("let g () = 1", "let g () = 2").replace("y + x", "y * x")).kind == OutcomeKind.NO_CHANGE
    assert p.call("Demo.Lib.f", 3) == 18


def test_added_function_with_new_lambda_and_new_caller(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    text = BASE + "let squares (n: int) = [1 .. n] |> List.map (fun i -> i * i) |> List.sum\nlet useSquares () = squares 3\n"
    outcome = p.edit("Lib.fs", text)
    assert {"+Demo.Lib.squares", "+Demo.Lib.useSquares"} <= set(outcome.methods)
    assert p.call("Demo.Lib.useSquares") == 14
    assert p.call("Demo.Lib.squares", 4) == 30
    # a function added one generation earlier is edited like any other
    p.edit("Lib.fs", text.replace("useSquares () = squares 3", "useSquares () = squares 3 + 1000"))
    assert p.call("Demo.Lib.useSquares") == 1014
    # an existing function calls a function added above it (every line below moves)
    p.edit("Lib.fs", text.replace("let g () = 1", "let cube (n: int) = n * n * n\nlet g () = cube 2"))
    assert p.call("Demo.Lib.g") == 8
    assert p.call("Demo.Lib.f", 1) == 9


def test_added_lambda_then_removed_lambda(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    p.edit("Lib.fs", BASE.replace("let g () = 1", "let g () = [1; 2] |> List.map (fun v -> v + 100) |> List.sum"))
    assert p.call("Demo.Lib.g") == 203
    p.edit("Lib.fs", BASE.replace("let g () = 1", "let g () = 5"))
    assert p.call("Demo.Lib.g") == 5
    assert p.call("Demo.Lib.twice", 2) == 40


def test_added_types_records_unions_classes_interfaces_generics(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    text = BASE + """type Point = { X: int; Y: int } with member p.Sum = p.X + p.Y
let mk () = { X = 3; Y = 4 }.Sum
let shown () = sprintf "%A" { X = 1; Y = 2 }
let equal () = { X = 1; Y = 2 } = { X = 1; Y = 2 } && compare { X = 1; Y = 2 } { X = 1; Y = 3 } < 0
type Color = Red | Green | Blue of int
let colorName c = match c with Red -> "r" | Green -> "g" | Blue n -> sprintf "b%d" n
let useColor () = colorName (Blue 3) + colorName Red + (string Green)
type IGreeter = abstract Greet: string -> string
type Hello() = interface IGreeter with member _.Greet n = "hello " + n
let useGreeter () = (Hello() :> IGreeter).Greet "bob"
type Box<'T>(v: 'T) =
    member _.Value = v
    member _.Map(f: 'T -> 'U) = Box<'U>(f v)
let useBox () = Box(20).Map(fun x -> x + 1).Value
let swap<'a, 'b> (a: 'a, b: 'b) = (b, a)
let useSwap () = fst (swap (1, "x")) + "!"
module Nested =
    let inner () = 42
let useNested () = Nested.inner ()
"""
    outcome = p.edit("Lib.fs", text)
    assert {"+Demo.Lib/Point", "+Demo.Lib/Color", "+Demo.Lib/Hello", "+Demo.Lib/Box`1"} <= set(outcome.methods)
    assert p.call("Demo.Lib.mk") == 7
    assert p.call("Demo.Lib.shown") == "{ X = 1\n  Y = 2 }"
    assert p.call("Demo.Lib.equal") is True
    assert p.call("Demo.Lib.useColor") == "b3rGreen"
    assert p.call("Demo.Lib.useGreeter") == "hello bob"
    assert p.call("Demo.Lib.useBox") == 21
    assert p.call("Demo.Lib.useSwap") == "x!"
    assert p.call("Demo.Lib.useNested") == 42
    # the added types are now part of the running module: edit a member of one
    p.edit("Lib.fs", text.replace("member p.Sum = p.X + p.Y", "member p.Sum = p.X * p.Y"))
    assert p.call("Demo.Lib.mk") == 12


def test_added_instance_field_and_method_on_an_existing_class(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    text = BASE.replace("    member this.Next() = n <- n + 1; n\n",
                        "    let mutable total = 100\n    member this.Next() = n <- n + 1; n\n"
                        "    member this.Total() = total <- total + n; total\n")
    text = text.replace("c.Next() + c.Next()", "c.Next() + c.Next() + c.Total()")
    outcome = p.edit("Lib.fs", text)
    assert "+Demo.Lib/Counter.Total" in outcome.methods and "+Demo.Lib/Counter.total" in outcome.methods
    assert p.call("Demo.Lib.useCounter") == 1 + 2 + 102


def test_generic_function_body_edit(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    assert p.call("Demo.Lib.usePick") == "a"
    outcome = p.edit("Lib.fs", BASE.replace("if flag then a else b", "if flag then b else a"))
    assert "Demo.Lib.pick" in outcome.methods
    assert p.call("Demo.Lib.usePick") == "b"


def test_async_body_gains_a_let_bang(fsharp_project: Any) -> None:
    """In Debug builds F# compiles async into closures: a new `let!` is new closure types, applied."""
    p = fsharp_project({"Lib.fs": BASE})
    assert p.call("Demo.Lib.run") == 2
    p.edit("Lib.fs", BASE.replace("let! a = async { return 1 } in return a + 1",
                                  "let! a = async { return 1 } in let! b = async { return 10 } in return a + b + 1"))
    assert p.call("Demo.Lib.run") == 12


def test_deleted_function_throws_missing_method_and_is_hidden(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE})
    key = next(k for k in p.session.updater.baseline.defs if k.startswith("M:Demo.Lib::h|"))
    token = p.session.updater.baseline.defs[key]
    outcome = p.edit("Lib.fs", BASE.replace("let h () = 7\n", ""))
    assert outcome.methods == ["-Demo.Lib.h"]
    with pytest.raises(LookupError):  # [MetadataUpdateDeleted]: reflection no longer lists it
        p.call("Demo.Lib.h")
    method = p.session.app.method(token)  # code that still holds the method (a delegate, a running caller)
    with pytest.raises(Exception) as info:
        method.Invoke(None, None)
    inner = info.value.InnerException  # type: ignore[attr-defined]
    assert inner.GetType().FullName == "System.MissingMethodException"
    assert "Demo.Lib.h was deleted" in str(inner.Message)
    # adding it back later is an added method again, and works
    p.edit("Lib.fs", BASE.replace("let h () = 7", "let h () = 8"))
    assert p.call("Demo.Lib.h") == 8


def test_ambiguous_closure_pairing_is_refused(fsharp_project: Any) -> None:
    """Two same-shape lambdas in one function; one removed and the other edited in one save: which running
    closure the survivor continues cannot be proven, so nothing is guessed."""
    text = BASE.replace("let g () = 1",
                        "let g () = List.sum (List.map (fun x -> x + 1) [1]) + List.sum (List.map (fun x -> x + 2) [1])")
    p = fsharp_project({"Lib.fs": text})
    assert p.call("Demo.Lib.g") == 5
    outcome = p.refuse("Lib.fs", BASE.replace("let g () = 1", "let g () = List.sum (List.map (fun x -> x + 3) [1])"))
    assert any(r.kind == "ambiguous change to compiler-generated code" and "save the added or removed" in r.hint
               for r in outcome.refusals), [str(r) for r in outcome.refusals]
    assert p.call("Demo.Lib.g") == 5
    # one step at a time works: first drop a lambda (identical survivor pairs exactly), then edit it
    p.edit("Lib.fs", BASE.replace("let g () = 1", "let g () = List.sum (List.map (fun x -> x + 1) [1])"))
    assert p.call("Demo.Lib.g") == 2
    p.edit("Lib.fs", BASE.replace("let g () = 1", "let g () = List.sum (List.map (fun x -> x + 3) [1])"))
    assert p.call("Demo.Lib.g") == 4


def _obsolete_messages(p: LiveProject, name: str) -> list[str]:
    assert p.session.app is not None
    attrs = p.session.app.find_method(name).GetCustomAttributes(False)
    return [str(a.Message) for a in attrs if str(a.GetType().Name) == "ObsoleteAttribute"]


def test_custom_attribute_changes(fsharp_project: Any) -> None:
    text = BASE.replace("let g () = 1", '[<System.Obsolete("first")>]\nlet g () = 1')
    p = fsharp_project({"Lib.fs": text})
    assert _obsolete_messages(p, "Demo.Lib.g") == ["first"]
    outcome = p.edit("Lib.fs", text.replace('"first"', '"second"'))
    assert outcome.methods == ["[attributes] Demo.Lib.g"]
    assert _obsolete_messages(p, "Demo.Lib.g") == ["second"]
    moved = text.replace('[<System.Obsolete("first")>]\n', "").replace("let h () = 7",
                                                                        '[<System.Obsolete("now h")>]\nlet h () = 7')
    p.edit("Lib.fs", moved)
    assert _obsolete_messages(p, "Demo.Lib.g") == []
    assert _obsolete_messages(p, "Demo.Lib.h") == ["now h"]
    assert p.call("Demo.Lib.h") == 7


def test_renamed_types_keep_running_names_across_generations(fsharp_project: Any) -> None:
    """Three saves, each inserting a line at the top and editing the lambda: always the same running closure."""
    p = fsharp_project({"Lib.fs": BASE})
    closures = {k for k in p.session.previous.types if "@" in k}
    text = BASE
    for i in range(1, 4):
        text = text.replace("module Demo.Lib\n", f"module Demo.Lib\n// {i}\n").replace(
            f"v * {10 ** i}", f"v * {10 ** (i + 1)}")
        outcome = p.edit("Lib.fs", text)
        assert not _added_types(outcome)
        assert p.call("Demo.Lib.twice", 1) == 2 * 10 ** (i + 1)
    assert {k for k in p.session.previous.types if "@" in k} == closures
    assert p.session.updater is not None
    assert p.session.updater.baseline.row_counts[T.TypeDef] == p.session.previous.asm.md.row_counts[T.TypeDef]


def test_line_shift_only_edit_updates_stack_trace_lines(fsharp_project: Any) -> None:
    """Blank lines inserted above: no code changes, nothing applied, yet a throw reports its new line."""
    from System import Array, Int32, Object  # type: ignore[import-not-found]

    source = "module Demo.Lib\n\nlet fail (x: int) : int =\n    if x > 0 then\n        failwith \"boom\"\n    x\n"
    p = fsharp_project({"Lib.fs": source})

    def thrown_at() -> str:
        try:
            p.session.app.find_method("Demo.Lib.fail").Invoke(None, Array[Object]([Int32(1)]))
        except Exception as exc:  # noqa: BLE001 - TargetInvocationException around the F# failure
            return next(line for line in str(exc.InnerException.ToString()).splitlines()  # type: ignore[attr-defined]
                        if "Demo.Lib.fail(" in line)
        raise AssertionError("fail did not throw")

    # two real updates: the module is an updated one, and the runtime's lines are on (confirmed in the second)
    p.edit("Lib.fs", source.replace("x\n", "x + 2\n"))
    p.edit("Lib.fs", source.replace("x\n", "x + 1\n"))
    assert thrown_at().endswith("Lib.fs:line 5")
    outcome = p.save("Lib.fs", source.replace("module Demo.Lib\n", "module Demo.Lib\n\n\n\n").replace("x\n", "x + 1\n"))
    assert outcome.kind == OutcomeKind.NO_CHANGE and "line numbers updated" in outcome.message, outcome.message
    assert thrown_at().endswith("Lib.fs:line 8")
    assert p.session.generation == 2


def test_a_type_no_longer_used_goes_quietly_with_its_properties(fsharp_project: Any) -> None:
    """An anonymous record replaced by a named one (found serving JSON from a web app): the anonymous type and its
    properties are no longer in the build; that is no attribute change of a running property."""
    base = BASE + "let status () : obj = box {| healthy = true |}\nlet describe () = string (status ())\n"
    p = fsharp_project({"Lib.fs": base})
    assert "true" in str(p.call("Demo.Lib.describe"))
    outcome = p.edit("Lib.fs", base.replace("let status () : obj = box {| healthy = true |}",
                                            "type Status = { Healthy: bool; Version: string }\n"
                                            "let status () : obj = box { Healthy = true; Version = \"2\" }"))
    assert outcome.kind == OutcomeKind.APPLIED
    assert 'Version = "2"' in str(p.call("Demo.Lib.describe"))


def test_a_body_with_the_same_bytes_that_now_calls_another_function_is_a_change(fsharp_project: Any) -> None:
    """Two functions swap places and the caller switches from one to the other: its IL is byte for byte what it
    was (`call` of the first MethodDef row), but that row is now the other function. The comparison must see the
    token's meaning, not the bytes (the shortcut for bodies with the same bytes checks each token's identity)."""
    source = ('module Demo.Lib\n\nlet first () = "first"\nlet second () = "second"\n'
              'let caller () = first ()\n')
    p = fsharp_project({"Lib.fs": source})
    assert p.call("Demo.Lib.caller") == "first"
    swapped = ('module Demo.Lib\n\nlet second () = "second"\nlet first () = "first"\n'
               'let caller () = second ()\n')
    outcome = p.edit("Lib.fs", swapped)
    assert "Demo.Lib.caller" in outcome.methods, outcome.methods
    assert p.call("Demo.Lib.caller") == "second"
    assert (p.call("Demo.Lib.first"), p.call("Demo.Lib.second")) == ("first", "second")
