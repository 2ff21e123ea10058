"""Names hotreload gives compiler-generated code, over many saves (regressions found by the differential soak,
`test_differential_soak.py`). F# 10 names a pipeline's closures after their line only (`Pipe #1 stage #1 at line
4@4`), so closures of different functions share one group, and an added closure whose name a moved running one
still holds is added as `...@4-hr1`.
"""

from __future__ import annotations

from typing import Any

import pytest

from hotreload.refusal import RefusalKind

pytestmark = pytest.mark.runtime

BASE = """module Demo.Pipes

let f (x: int) =
    let t = [1; 2; 3] |> List.map (fun y -> y + x) |> List.sum
    t + 1
"""
G = """let g (x: int) =
    let t = [1; 2; 3] |> List.map (fun y -> y * x) |> List.sum
    t + 2
"""
ABOVE_F = BASE.replace("let f", G + "let f")


def _added_types(outcome: Any) -> list[str]:
    return [m for m in outcome.methods if m.startswith("+") and "/" in m]


def test_a_closure_added_under_a_taken_name_keeps_that_name_over_later_saves(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE}, name="Pipes")
    p.edit("Lib.fs", ABOVE_F)  # g's closure gets the name f's (now moved) running closure holds: added as -hr1
    assert any(k.endswith("@4-hr1") for k in p.session.previous.types)
    for extra in ("let h () = 1\n", "let h () = 1\nlet k () = 2\n"):
        outcome = p.edit("Lib.fs", ABOVE_F + extra)  # found before: re-added as -hr2, then as -hr1 again (failed)
        assert outcome.methods == [m for m in outcome.methods if m.startswith("+Demo.Pipes.")], outcome.methods
        assert p.call("Demo.Pipes.g", 2) == 14
        assert p.call("Demo.Pipes.f", 2) == 13


def test_an_added_closure_never_takes_the_name_of_a_removed_one(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE}, name="Pipes")
    p.edit("Lib.fs", ABOVE_F)  # g's closure: -hr1
    p.edit("Lib.fs", BASE)  # g removed: its closure type stays loaded in the running module
    assert not any(k.endswith("-hr1") for k in p.session.previous.types)
    q = G.replace("let g", "let q").replace("t + 2", "t + 3").replace("y * x", "y * x * x")
    outcome = p.edit("Lib.fs", BASE.replace("let f", q + "let f"))  # q's closure would be -hr1 again
    assert [m for m in _added_types(outcome) if "-hr1" in m] == []
    assert p.call("Demo.Pipes.q", 2) == 27
    assert p.call("Demo.Pipes.f", 2) == 13


def test_an_ambiguous_closure_edit_is_refused_for_that_reason_only(fsharp_project: Any) -> None:
    """Closures that did pair (here a module-level value's, which moved) keep their running names although
    another closure of their group is ambiguous: the initializer that uses one is not reported as changed."""
    base = """module Demo.Amb

let total = [1; 2; 3] |> List.map (fun q -> q * q) |> List.sum
let f (x: int) =
    let a = [1; 2] |> List.map (fun v -> v + x) |> List.sum
    a
"""
    p = fsharp_project({"Lib.fs": base}, name="Amb")
    moved = base.replace("let total", "// a line above every closure\nlet total")
    assert p.save("Lib.fs", moved).kind in ("applied", "no-change")
    added = moved + "let g (x: int) = [5] |> List.map (fun v -> v - x) |> List.sum\n"
    outcome = p.refuse("Lib.fs", added.replace("v + x", "v * x"))  # a lambda edited and a like one added at once
    assert {str(r.kind) for r in outcome.refusals} == {str(RefusalKind.AMBIGUOUS)}, [str(r) for r in outcome.refusals]
    assert p.call("Demo.Amb.f", 2) == 7


def test_array_data_of_a_size_used_before_reuses_its_helper_type(fsharp_project: Any) -> None:
    """F# types an array literal's data by its size (`T_44Bytes@`): a size that went away and comes back finds the
    helper type still loaded, and uses it rather than adding a second type of that name (which the runtime lost)."""
    def source(n: int, k: int = 0) -> str:
        return "module Demo.R\n\nlet f () = Array.sum [| " + "; ".join(str(i + k) for i in range(n)) + " |]\n"

    p = fsharp_project({"Lib.fs": source(11)}, name="R")
    p.edit("Lib.fs", source(12))  # T_48Bytes@ added, T_44Bytes@ no longer used
    assert p.call("Demo.R.f") == 66
    outcome = p.edit("Lib.fs", source(11, 5))  # T_44Bytes@ again
    assert "+Demo.R/T_44Bytes@" not in outcome.methods, outcome.methods
    assert p.call("Demo.R.f") == 110
    p.edit("Lib.fs", source(11, 7))
    assert p.call("Demo.R.f") == 132


def test_an_ambiguous_closure_never_takes_the_name_of_another_running_one(fsharp_project: Any) -> None:
    """Closures an ambiguous group leaves unpaired keep no name a running closure of another kind holds: here the
    new inner async's delay closure would be `@3-1`, the running bind continuation's name, and look like a changed
    base type and an added override."""
    base = "module Demo.Amb3\n\nlet m () = (async { return 5 } |> Async.RunSynchronously)\n"
    p = fsharp_project({"Lib.fs": base}, name="Amb3")
    nested = base.replace("return 5", "return (async { return 6 } |> Async.RunSynchronously)")
    outcome = p.refuse("Lib.fs", nested)  # a second delay closure added and the first edited: ambiguous, nothing else
    assert {str(r.kind) for r in outcome.refusals} == {str(RefusalKind.AMBIGUOUS)}, [str(r) for r in outcome.refusals]
    assert p.call("Demo.Amb3.m") == 5


ROUTES = """module Demo.Routes

open System

let hello () = "hello"
let count () = "count"
let items () = "items"
let mutable table : (string * Func<string>) list = []
let add (path: string) (f: Func<string>) = table <- table @ [ path, f ]

let register () =
    Func<string>(fun () -> hello ()) |> add "/"
    Func<string>(fun () -> count ()) |> add "/count"
    Func<string>(fun () -> items ()) |> add "/items"

let call (path: string) = (table |> List.find (fun (p, _) -> p = path) |> snd).Invoke()
"""


def test_a_pipe_added_above_live_delegates_keeps_each_running_closure_its_code(fsharp_project: Any) -> None:
    """F# names a pipe's input closure `Pipe #N input at line L`: N counts the pipes in the function, so a pipe added
    above renumbers the ones below like lines do (found on a web app: a line added to `main` made the running
    /count route run the / route's code). Closures that only moved keep their code."""
    p = fsharp_project({"Lib.fs": ROUTES}, name="Routes")
    p.call("Demo.Routes.register")  # the delegates are alive, as a web app's routes are
    assert [p.call("Demo.Routes.call", path) for path in ("/", "/count", "/items")] == ["hello", "count", "items"]
    p.edit("Lib.fs", ROUTES.replace("let register () =\n", "let register () =\n    0 |> ignore\n"))
    assert [p.call("Demo.Routes.call", path) for path in ("/", "/count", "/items")] == ["hello", "count", "items"]
    # and a moved closure whose body also changed is still paired with its own running one
    p.edit("Lib.fs", ROUTES.replace("let register () =\n", "let register () =\n    0 |> ignore\n    1 |> ignore\n")
           .replace("fun () -> count ()", "fun () -> count () + \"!\""))
    assert [p.call("Demo.Routes.call", path) for path in ("/", "/count", "/items")] == ["hello", "count!", "items"]


def test_lambdas_that_swap_lines_in_the_edited_file_keep_their_own_code_in_living_closures(
        fsharp_project: Any) -> None:
    """Two lambdas of one function swap lines: the names (`pick@4`, `pick@5`) are the same in both builds, but
    each now belongs to the other lambda. In an edited file names prove nothing: the closures pair by code, so
    the closures the app already holds keep computing what they computed (pairing by name would make the living
    `y + x` closure multiply)."""
    base = """module Demo.Swap

let pick (k: int) (x: int) : int -> int =
    if k = 0 then (fun y -> y + x)
    else (fun y -> y * x)
let mutable kept : (int -> int) list = []
let keep () = kept <- [pick 0 10; pick 1 10]; kept.Length
let run (y: int) = kept |> List.map (fun f -> string (f y)) |> String.concat ","
"""
    p = fsharp_project({"Lib.fs": base, "Other.fs": "module Demo.Other\n\nlet one () = 1\n"}, name="Swap")
    assert p.call("Demo.Swap.keep") == 2
    assert p.call("Demo.Swap.run", 3) == "13,30"
    swapped = base.replace("""    if k = 0 then (fun y -> y + x)
    else (fun y -> y * x)""", """    if k <> 0 then (fun y -> y * x)
    else (fun y -> y + x)""")
    outcome = p.edit("Lib.fs", swapped)
    assert any(m.endswith("Demo.Swap.pick") for m in outcome.methods), outcome.methods
    assert p.call("Demo.Swap.run", 3) == "13,30"  # the living closures: each its own code
    assert p.call("Demo.Swap.keep") == 2
    assert p.call("Demo.Swap.run", 3) == "13,30"  # closures the new code makes
    # a structural save of another file: Lib.fs is untouched, but its closures' running names are each other's
    # build names now (the running ones were renamed by the swap): still paired by code
    outcome = p.edit("Other.fs", "module Demo.Other\n\nlet one () = 1\nlet two () = 2\n")
    assert outcome.methods == ["+Demo.Other.two"], outcome.methods
    assert p.call("Demo.Swap.run", 3) == "13,30"
    # swapped back with a function added: a structural save, the same pairing by code
    outcome = p.edit("Lib.fs", base + "let extra () = 1\n")
    assert "+Demo.Swap.extra" in outcome.methods, outcome.methods
    assert p.call("Demo.Swap.run", 3) == "13,30"
    assert p.call("Demo.Swap.keep") == 2
    assert p.call("Demo.Swap.run", 3) == "13,30"
