"""Signature changes applied live (issue 13, item 1): a function whose parameters or return type change is a new
method, its callers in the same save call it, and the old one is deleted: hidden from reflection, and it throws
MissingMethodException naming itself for code that still holds it. Proven on the runtime: build, apply, call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from live_project import FSPROJ, LiveProject, QuietReporter

from hotreload.app import AppExit
from hotreload.session import OutcomeKind, Session

pytestmark = pytest.mark.runtime

BASE = """module Demo.Lib

let scale (x: int) = x * 2
let add (a: int, b: int) = a + b
let label (x: int) = "n" + string x
let run () = scale 21 + add (1, 2)
let describe () = label 7
"""


def _old_token(p: LiveProject, prefix: str) -> int:
    assert p.session.updater is not None
    return next(tok for key, tok in p.session.updater.baseline.defs.items() if key.startswith(prefix))


def test_added_parameter_with_its_caller_updated(fsharp_project: Any) -> None:
    p: LiveProject = fsharp_project({"Lib.fs": BASE})
    assert p.call("Demo.Lib.run") == 45
    old = _old_token(p, "M:Demo.Lib::scale|")
    outcome = p.edit("Lib.fs", BASE.replace("let scale (x: int) = x * 2", "let scale (x: int) (y: int) = x * y")
                     .replace("scale 21 +", "scale 21 3 +"))
    assert "+Demo.Lib.scale" in outcome.methods and "-Demo.Lib.scale" in outcome.methods
    assert "Demo.Lib.run" in outcome.methods
    assert p.call("Demo.Lib.run") == 66
    assert p.call("Demo.Lib.scale", 4, 5) == 20  # reflection finds the new one only
    assert p.session.app is not None
    from System import Array, Int32, Object  # type: ignore[import-not-found]

    with pytest.raises(Exception) as info:  # code that still holds the old one
        p.session.app.method(old).Invoke(None, Array[Object]([Int32(4)]))
    inner = info.value.InnerException  # type: ignore[attr-defined]
    assert inner.GetType().FullName == "System.MissingMethodException"
    assert "Demo.Lib.scale was replaced by hot reload: its signature changed" in str(inner.Message)


def test_retyped_parameter_and_return_type(fsharp_project: Any) -> None:
    p: LiveProject = fsharp_project({"Lib.fs": BASE})
    assert p.call("Demo.Lib.describe") == "n7"
    p.edit("Lib.fs", BASE.replace('let label (x: int) = "n" + string x', "let label (x: int64) = x * 10L")
           .replace("let describe () = label 7", "let describe () = string (label 7L)"))
    assert p.call("Demo.Lib.describe") == "70"
    assert p.call("Demo.Lib.label", 3) == 30


def test_tupled_to_curried_and_removed_parameter(fsharp_project: Any) -> None:
    p: LiveProject = fsharp_project({"Lib.fs": BASE})
    text = BASE.replace("let add (a: int, b: int) = a + b", "let add (a: int) (b: int) = a - b") \
        .replace("add (1, 2)", "add 1 2")
    p.edit("Lib.fs", text)
    assert p.call("Demo.Lib.run") == 41
    p.edit("Lib.fs", text.replace("let scale (x: int) = x * 2", "let scale () = 100").replace("scale 21", "scale ()"))
    assert p.call("Demo.Lib.run") == 99


def test_a_running_caller_is_named_as_a_holder(tmp_path: Path, dotnet_runtime: object) -> None:
    """The entry point's loop is on a stack: its running frame keeps the old call. The save says so at once (read
    from the running IL), and that is what happens: the old method throws when the running loop calls it."""
    folder = tmp_path / "holder"
    folder.mkdir()
    project = folder / "Holder.fsproj"
    project.write_text(FSPROJ.format(output="Exe", name="Holder", items='    <Compile Include="Lib.fs" />'))
    main = """
[<EntryPoint>]
let main _ =
    while true do
        total <- total + scale 1
        System.Threading.Thread.Sleep 10
    0
"""
    source = BASE + "let mutable total = 0\n" + main
    (folder / "Lib.fs").write_text(source)
    exits: list[AppExit] = []
    with Session(project, reporter=QuietReporter(), run_entry_point=True) as session:
        session.exit_listeners.append(exits.append)
        (folder / "Lib.fs").write_text(source.replace("let scale (x: int) = x * 2", "let scale (x: int) (y: int) = x * y")
                                       .replace("scale 21 +", "scale 21 3 +").replace("scale 1\n", "scale 1 1\n"))
        outcome = session.reload()
        assert outcome.kind == OutcomeKind.APPLIED, outcome
        assert any(h.startswith("Demo.Lib.main is running and calls Demo.Lib.scale") for h in outcome.holders), \
            outcome.holders
        deadline = time.monotonic() + 10
        while not exits and time.monotonic() < deadline:
            time.sleep(0.05)
        assert exits and exits[0].error is not None and "MissingMethodException" in exits[0].error
        assert "Demo.Lib.scale was replaced by hot reload" in exits[0].error
