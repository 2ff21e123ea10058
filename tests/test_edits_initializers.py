"""Module-level value initializers and the compiler-generated code only they run (a regression found by the
differential soak, `test_differential_soak.py`): editing a lambda inside `let total = ... |> List.map (fun ...)`
changes only the closure's body, not the initializer's IL; applying it alone changed nothing the app could see (the
initializer already ran), so the running app silently kept the old value. The value whose initializer runs the
closure is now computed again (hotreload.module_values), like an edit of the initializer itself.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.runtime

BASE = """module Demo.Values

let total = [1; 2; 3] |> List.map (fun q -> q * q) |> List.sum
let nested = [1; 2] |> List.map (fun a -> [a; a] |> List.map (fun b -> b * 10) |> List.sum) |> List.sum
let squares = seq { for i in 1 .. 3 -> i * i }
let get () = total
let getNested () = nested
let scaled (x: int) = [1; 2; 3] |> List.map (fun q -> q * x) |> List.sum
"""


def test_a_closure_only_an_initializer_runs_recomputes_its_value(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE}, name="Values")
    assert p.call("Demo.Values.get") == 14
    text = BASE
    for old, new, value in (("q * q)", "q * q + 40)", "Demo.Values.total"), ("b * 10", "b * 100", "Demo.Values.nested"),
                            ("i * i", "i * i * i", "Demo.Values.squares")):
        text = text.replace(old, new)
        outcome = p.edit("Lib.fs", text)
        assert outcome.reevaluated == [value], outcome.reevaluated
    assert (p.call("Demo.Values.get"), p.call("Demo.Values.getNested")) == (134, 600)
    assert list(p.call("Demo.Values.get_squares")) == [1, 8, 27]
    # a function's closure is edited as ever, also with an initializer's closure just above it: nothing recomputed
    outcome = p.edit("Lib.fs", text.replace("q * x", "q * x + 1"))
    assert p.call("Demo.Values.scaled", 2) == 15 and outcome.reevaluated == []


TABLE = """module Demo.Table

open System

let routes : (string * Func<string>) list =
    [ "/", Func<string>(fun () -> "hello")
      "/count", Func<string>(fun () -> "count") ]
let once = [1; 2; 3] |> List.map (fun q -> q + 1) |> List.sum
let call (path: string) = (routes |> List.find (fun (p, _) -> p = path) |> snd).Invoke()
"""


def test_a_delegate_an_initializer_makes_runs_the_new_code_when_invoked(fsharp_project: Any) -> None:
    """A top-level F# web app (no [<EntryPoint>]: `app.MapGet("/", Func<string>(fun () -> ...))` at module level)
    registers delegates in its initializer; they run on every request, so editing one applies (found on a top-level
    minimal API: every handler edit was refused as initializer code). A lambda the initializer only runs once
    recomputes the value it is part of."""
    p = fsharp_project({"Lib.fs": TABLE}, name="Table")
    assert [p.call("Demo.Table.call", r) for r in ("/", "/count")] == ["hello", "count"]
    outcome = p.edit("Lib.fs", TABLE.replace('fun () -> "count"', 'fun () -> "count, edited"'))
    assert [p.call("Demo.Table.call", r) for r in ("/", "/count")] == ["hello", "count, edited"]
    assert outcome.methods and all("Invoke" in m for m in outcome.methods)
    assert outcome.reevaluated == ["Demo.Table.routes"]  # the list is built again, with the same delegates' code
    outcome = p.edit("Lib.fs", TABLE.replace('fun () -> "count"', 'fun () -> "count, edited"')
                     .replace("q + 1", "q + 2"))
    assert outcome.reevaluated == ["Demo.Table.once"]
    assert p.call("Demo.Table.get_once") == 12
