"""Rude edits on the real runtime: each is refused with file, line, member, kind and what to do, nothing of it is
applied, and the app keeps running the code it had.

One project serves every test: each save is the base source plus one rude change, so each diff against the
running code sees exactly that change (a refused save leaves the running code and the diff baseline as they were).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_project import LiveProject

from hotreload.refusal import RefusalKind
from hotreload.runtime import RuntimeInfo
from hotreload.session import Outcome

pytestmark = pytest.mark.runtime

BASE = """module Demo.Lib

type Shape = Circle of float | Square of float
type Rec = { A: int; B: string }
[<Struct>]
type Pair = { X: int; Y: int }
type Animal() =
    abstract Sound: unit -> string
    default _.Sound() = "..."
type Dog() =
    inherit Animal()
    override _.Sound() = "woof"
type Named(name: string) =
    member _.Name = name
let table = dict [1, "one"]
let lookup () = table.[1]
let area s = match s with Circle r -> int r | Square a -> int a
let scaled (x: int) = x + 1
let smallest<'T when 'T :> System.IComparable> (a: 'T) (b: 'T) = if a.CompareTo(b) <= 0 then a else b
let useSmallest () = smallest 3 2
let sound () = Dog().Sound()
let probe () = 1
"""

CHANGES: dict[str, tuple[str, str, RefusalKind, str]] = {
    # name: (old text, new text, expected kind, member fragment)
    # a function's signature change is applied (tests/test_edits_signatures.py); a constructor's is not
    "signature": ("type Named(name: string) =\n", "type Named(name: string, n: int) =\n", RefusalKind.SIGNATURE,
                  "Named..ctor"),
    "union_case": ("type Shape = Circle of float | Square of float",
                   "type Shape = Circle of float | Square of float | Dot", RefusalKind.UNION_CASE, "Shape"),
    # a field added to or removed from a record is applied (tests/test_edits_types.py); a retyped one is not
    "record_field_type": ("type Rec = { A: int; B: string }", "type Rec = { A: int; B: int }",
                          RefusalKind.FIELD_TYPE, "Rec.B"),
    "struct_layout": ("type Pair = { X: int; Y: int }", "type Pair = { X: int; Y: int; Z: int }", RefusalKind.LAYOUT, "Pair"),
    "base_type": ("type Named(name: string) =\n", "type Named(name: string) =\n    inherit System.Exception(name)\n",
                  RefusalKind.BASE_TYPE, "Named"),
    "interface": ("    member _.Name = name\n",
                  "    member _.Name = name\n    interface System.IDisposable with member _.Dispose() = ()\n",
                  RefusalKind.INTERFACES, "Named"),
    "constraint": ("let smallest<'T when 'T :> System.IComparable>",
                   "let smallest<'T when 'T :> System.IComparable and 'T : struct>", RefusalKind.GENERIC_CONSTRAINT,
                   "smallest"),
    "param_attribute": ("let scaled (x: int) = x + 1",
                        'let scaled ([<System.ComponentModel.Description("x")>] x: int) = x + 1',
                        RefusalKind.ATTRIBUTE_TARGET, "Demo.Lib.scaled"),
    "return_attribute": ("let useSmallest () = smallest 3 2",
                         'let useSmallest () : [<return: System.ComponentModel.Description("r")>] int = smallest 3 2',
                         RefusalKind.ATTRIBUTE_TARGET, "Demo.Lib.useSmallest"),
    "assembly_attribute": ("let sound () = Dog().Sound()",
                           '[<assembly: System.Reflection.AssemblyMetadata("k", "v")>]\ndo ()\nlet sound () = Dog().Sound()',
                           RefusalKind.ATTRIBUTE_TARGET, "assembly"),
    "event_added": ("    member _.Name = name\n",
                    ("    let changed = Event<int>()\n    member _.Name = name\n"
                     "    [<CLIEvent>] member _.Changed = changed.Publish\n"), RefusalKind.EVENTS, "Named.Changed"),
    "override_added": ('    default _.Sound() = "..."\n',
                       '    default _.Sound() = "..."\n    override _.ToString() = "animal"\n',
                       RefusalKind.ADDED_VIRTUAL, "ToString"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, dotnet_runtime: RuntimeInfo) -> Iterator[LiveProject]:
    live = LiveProject(Path(tmp_path_factory.mktemp("refused")), {"Lib.fs": BASE})
    yield live
    live.close()


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def _still_running_base(project: LiveProject) -> None:
    assert project.call("Demo.Lib.scaled", 1) == 2
    assert project.call("Demo.Lib.useSmallest") == 2
    assert project.call("Demo.Lib.sound") == "woof"
    assert project.call("Demo.Lib.lookup") == "one"


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_rude_edit_is_refused_and_nothing_applied(project: LiveProject, name: str) -> None:
    old, new, kind, member = CHANGES[name]
    generation = project.session.generation
    assert old in BASE
    # a harmless body edit rides along: it must not be applied either (a refusal applies nothing of the save)
    text = BASE.replace(old, new).replace("let probe () = 1", "let probe () = 2")
    outcome = project.refuse("Lib.fs", text)
    matching = [r for r in outcome.refusals if r.kind == kind and member in r.member]
    assert matching, [str(r) for r in outcome.refusals]
    shown = str(matching[0])
    assert "restart" in shown, shown
    if name in ("base_type", "interface", "override_added"):  # what the runtime cannot do is said as such
        assert "none of the .NET runtime's hot reload capabilities" in shown, shown
    if name not in ("struct_layout", "record_field_type", "union_case",
                    "assembly_attribute", "event_added"):
        assert matching[0].location.startswith("Lib.fs:"), shown
    assert project.session.generation == generation
    assert project.call("Demo.Lib.probe") == 1
    _still_running_base(project)


def test_refusal_names_the_line_of_the_changed_member(project: LiveProject) -> None:
    text = BASE.replace("type Named(name: string) =\n", "type Named(name: string, n: int) =\n")
    outcome: Outcome = project.refuse("Lib.fs", text)
    refusal = next(r for r in outcome.refusals if r.kind == RefusalKind.SIGNATURE)
    assert refusal.location == f"Lib.fs:{_line_of(text, 'type Named')}"
    assert str(refusal).startswith(f"Lib.fs:{_line_of(text, 'type Named')}: signature change in Demo.Lib.Named..ctor")


def test_runtime_without_a_capability_refuses_what_needs_it(project: LiveProject) -> None:
    """The capability string decides: without NewTypeDefinition an added type is a rude edit."""
    saved = project.session.capabilities
    project.session.capabilities = [c for c in saved if c != "NewTypeDefinition"]
    try:
        outcome = project.refuse("Lib.fs", BASE + "type Added = { Z: int }\nlet useAdded () = { Z = 5 }.Z\n")
    finally:
        project.session.capabilities = saved
    assert any("NewTypeDefinition" in str(r) for r in outcome.refusals), [str(r) for r in outcome.refusals]
    _still_running_base(project)


def test_good_edit_after_refusals_applies(project: LiveProject) -> None:
    outcome = project.edit("Lib.fs", BASE.replace("let probe () = 1", "let probe () = 3"))
    assert outcome.methods == ["Demo.Lib.probe"]
    assert project.call("Demo.Lib.probe") == 3
    project.edit("Lib.fs", BASE)
    assert project.call("Demo.Lib.probe") == 1
