"""Entities of the files before the first edited one are carried, not compared (hotreload.carry): through a real
session, each structural save's diff with the carry is checked against the full comparison of the same builds,
and the running code (living closures included) shows the edits took effect on the right entities."""

from __future__ import annotations

from typing import Any

import pytest

import hotreload.diff
import hotreload.session
from hotreload.delta import load_build

pytestmark = pytest.mark.runtime

A = """module Demo.A

let scale (k: int) = List.map (fun v -> v * k)
let shift (k: int) = List.map (fun v -> v + k)
let kept = [scale 2; shift 10]  // closures that live from startup on
let apply () = kept |> List.map (fun f -> f [1; 2] |> List.sum) |> List.map string |> String.concat ","
"""
B = """module Demo.B

let twice (x: int) = x * 2
"""
C = """module Demo.C

let total () = Demo.A.apply () + ";" + string (Demo.B.twice 4)
"""


def _facts(diff: Any) -> tuple[object, ...]:
    return (diff.summary(), [(c.key, c.old_rid, c.new_rid) for c in diff.changed], diff.added_types,
            diff.added_methods, diff.added_fields, diff.deleted, diff.attributes, [str(r) for r in diff.refusals],
            [(m.key, m.old_rid, m.new_rid) for m in diff.moved], sorted(diff.new.renames.items()),
            sorted(diff.new.types.items()), sorted(diff.new.methods.items()), sorted(diff.new.fields.items()),
            sorted(diff.new.attributes.items()))


@pytest.fixture
def checked_diffs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[frozenset[str], int]]:
    """Every diff the session makes is also made without the carry, from a fresh read of the same build; both
    must agree in every fact the delta and the next save read. Returns (prefix, carried types) per diff."""
    seen: list[tuple[frozenset[str], int]] = []
    real_diff, real_carry = hotreload.diff.diff_builds, hotreload.diff.carried_rows
    carried: list[int] = []

    def counting_carry(*args: Any) -> Any:
        found = real_carry(*args)
        carried.append(len(found.types))
        return found

    def checked(old: Any, new: Any, capabilities: Any = None, pdbs: Any = (None, None), prefix: Any = ()) -> Any:
        fresh, fresh_pdb = load_build(new.asm.path)
        reference = real_diff(old, fresh, capabilities, (pdbs[0], fresh_pdb))
        carried.clear()
        diff = real_diff(old, new, capabilities, pdbs, prefix)
        assert _facts(diff) == _facts(reference)
        seen.append((frozenset(prefix), carried[0] if carried else 0))
        return diff

    monkeypatch.setattr(hotreload.diff, "carried_rows", counting_carry)
    monkeypatch.setattr(hotreload.session, "diff_builds", checked)
    return seen


def test_a_structural_save_of_the_last_file_carries_the_files_before_it(fsharp_project: Any,
                                                                      checked_diffs: list[Any]) -> None:
    p = fsharp_project({"A.fs": A, "B.fs": B, "C.fs": C}, name="Carry")
    assert p.call("Demo.C.total") == "6,23;8"
    # the first save compares with what `dotnet build` made: nothing is vouched for yet
    p.edit("C.fs", C + "let added1 () = 1\n")
    assert checked_diffs[-1] == (frozenset(), 0)
    # lines above A's lambdas: their closures get other names in the build, and keep their running ones
    moved = A.replace("let scale", "// a comment above\n\nlet scale").replace("v + k", "v + k + 1")
    outcome = p.edit("A.fs", moved + "let extra () = 3\n")
    assert "Demo.A.extra" in " ".join(outcome.methods)
    assert p.call("Demo.C.total") == "6,25;8"  # the living closure runs the edited lambda
    # a structural save of C: A and B are carried (renamed closures included) and not compared
    outcome = p.edit("C.fs", C + "let added1 () = 1\nlet added2 () = 2\n")
    prefix, carried = checked_diffs[-1]
    assert {path.rsplit("/", 1)[-1] for path in prefix} >= {"A.fs", "B.fs"} and "C.fs" not in str(prefix)
    assert carried >= 2  # Demo.A (with its closures) and Demo.B
    assert outcome.methods == ["+Demo.C.added2"]
    assert p.call("Demo.C.added2") == 2
    # A's closures still carry their running names: editing one reaches the living closure
    outcome = p.edit("A.fs", moved.replace("v * k", "v * k * 10") + "let extra () = 3\n")
    assert p.call("Demo.C.total") == "60,25;8"
    # and an edit of B after carried saves is seen (B is compared again once it changed)
    p.edit("B.fs", B.replace("x * 2", "x * 3") + "let thrice (x: int) = x * 3\n")
    assert p.call("Demo.C.total") == "60,25;12"
    prefix, carried = checked_diffs[-1]
    assert "B.fs" not in str(prefix) and "A.fs" in str(prefix)
