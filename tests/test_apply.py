"""Verification reads, it never runs the app's code; a check that fails makes the save `failed`; a fault of
hotreload's own after (or before) ApplyUpdate ends the save in a recorded outcome, never a traceback or a wait.

Real F# code on the real runtime: each test saves an edit through a `Session` and then reads the app's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_project import LiveProject

import hotreload.session as session_module
from hotreload import HotReloadError, OutcomeKind, UpdateFailed
from hotreload.delta import Delta
from hotreload.runtime import RuntimeInfo

pytestmark = pytest.mark.runtime

STATE = """module Demo.State

let items = System.Collections.Generic.List<int>([1; 2; 3])
let mutable counter = 0
let bump () = counter <- counter + 1; counter
let count () = items.Count
let current () = counter
let probe () = 1
type Tag() =
    member _.Name = "tag"
"""


@pytest.fixture
def state(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> Iterator[LiveProject]:
    live = LiveProject(tmp_path / "state", {"State.fs": STATE})
    yield live
    live.close()


def test_edited_and_added_side_effecting_functions_do_not_run_on_save(state: LiveProject) -> None:
    """A counter bump (edited) and a collection clear (added, parameterless, returns a value) are saved while the
    app holds state: the state is what it was; calling them afterwards shows the new code does run."""
    assert state.call("Demo.State.bump") == 1
    text = state.replace("State.fs", "counter <- counter + 1; counter", "counter <- counter + 10; counter")
    text = text.replace("let probe () = 1", "let probe () = 1\nlet reset () = items.Clear(); items.Count")
    outcome = state.edit("State.fs", text)
    assert sorted(outcome.methods) == ["+Demo.State.reset", "Demo.State.bump"]
    assert state.call("Demo.State.current") == 1  # bump did not run on save
    assert state.call("Demo.State.count") == 3  # reset did not run on save
    assert outcome.verification is not None
    assert outcome.verification.il_matches and outcome.verification.jitted
    assert "Demo.State.reset" in outcome.verification.visible
    assert not any("ran " in line for line in state.reporter.lines), state.reporter.lines
    assert state.call("Demo.State.bump") == 11  # the new code, on the next call
    assert state.call("Demo.State.reset") == 0
    assert state.call("Demo.State.count") == 0


def _break_il(delta: Delta) -> Delta:
    """Every sent body becomes stack-underflowing IL of the same size (`pop`s then `ret`): ApplyUpdate takes it
    (the runtime does not check IL), reading it back matches, and only the JIT can tell."""
    il = bytearray(delta.il)
    for key, code in delta.method_il.items():
        at = il.find(code)
        assert at > 0
        bad = b"\x26" * (len(code) - 1) + b"\x2a"
        il[at:at + len(code)] = bad
        delta.method_il[key] = bad
    delta.il = bytes(il)
    return delta


def test_a_failing_check_makes_the_save_failed(state: LiveProject, monkeypatch: pytest.MonkeyPatch) -> None:
    real = session_module.build_delta

    def broken(*args: Any, **kwargs: Any) -> Delta:
        return _break_il(real(*args, **kwargs))

    monkeypatch.setattr(session_module, "build_delta", broken)
    outcome = state.save("State.fs", state.replace("State.fs", "let probe () = 1", "let probe () = 2"))
    assert outcome.kind == OutcomeKind.FAILED, (outcome.kind, outcome.message)
    assert "did not verify" in outcome.message and "Demo.State.probe" in outcome.message, outcome.message
    assert outcome.verification is not None and outcome.verification.problems
    assert any("did not verify" in line for line in state.reporter.lines)
    assert not any(line.startswith("applied") for line in state.reporter.lines)
    monkeypatch.setattr(session_module, "build_delta", real)
    # nothing more goes into a process whose code did not verify; Session.edit raises, under the one root
    with pytest.raises(UpdateFailed) as raised:
        state.session.edit("State.fs", "let probe () = 2", "let probe () = 3")
    assert isinstance(raised.value, HotReloadError)
    assert raised.value.outcome.kind == OutcomeKind.FAILED
    assert "restart" in raised.value.outcome.message


@pytest.mark.parametrize("stage", ["diff_builds", "build_delta"])
def test_a_fault_before_apply_is_a_failed_outcome_and_the_app_is_untouched(
        state: LiveProject, monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    def fault(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug in hotreload")

    real = getattr(session_module, stage)
    monkeypatch.setattr(session_module, stage, fault)
    outcome = state.save("State.fs", state.replace("State.fs", "let probe () = 1", "let probe () = 2"))
    assert outcome.kind == OutcomeKind.FAILED
    assert "KeyError" in outcome.message and "nothing of this save was applied" in outcome.message
    assert state.call("Demo.State.probe") == 1
    monkeypatch.setattr(session_module, stage, real)
    state.edit("State.fs", state.source("State.fs"))  # the same save again, now applied: the session goes on
    assert state.call("Demo.State.probe") == 2


def test_a_fault_after_apply_is_reported_and_stops_further_updates(
        state: LiveProject, monkeypatch: pytest.MonkeyPatch) -> None:
    updater = state.session.updater
    assert updater is not None

    def fault(delta: Delta) -> Any:
        raise RuntimeError("bookkeeping broke")

    monkeypatch.setattr(updater, "verify", fault)
    outcome = state.save("State.fs", state.replace("State.fs", "let probe () = 1", "let probe () = 2"))
    assert outcome.kind == OutcomeKind.FAILED and "while verifying" in outcome.message, outcome.message
    assert "restart the app" in outcome.message
    monkeypatch.undo()
    again = state.save("State.fs", state.replace("State.fs", "let probe () = 2", "let probe () = 3"))
    assert again.kind == OutcomeKind.FAILED and "earlier update failed" in again.message


def test_session_edit_returns_promptly_when_a_watched_reload_faults(
        tmp_path: Path, dotnet_runtime: RuntimeInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the watcher on, edit() waits for the save's outcome: a fault must still record one."""
    import time

    from live_project import FSPROJ, QuietReporter

    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "Live.fsproj").write_text(FSPROJ.format(output="Library", name="Live",
                                                      items='    <Compile Include="State.fs" />'))
    (folder / "State.fs").write_text(STATE)
    s = session_module.Session(folder / "Live.fsproj", reporter=QuietReporter(), watch=True)
    with s:
        monkeypatch.setattr(session_module, "diff_builds", lambda *a, **k: 1 / 0)
        start = time.monotonic()
        with pytest.raises(UpdateFailed, match="ZeroDivisionError"):
            s.edit("State.fs", "let probe () = 1", "let probe () = 2", timeout=120)
        assert time.monotonic() - start < 60


def test_refusals_and_outcomes_have_typed_kinds(state: LiveProject) -> None:
    from hotreload import RefusalKind

    outcome = state.refuse("State.fs", state.replace("State.fs", "type Tag() =\n", "type Tag() =\n    interface "
                                                     "System.IDisposable with\n        member _.Dispose() = ()\n"))
    assert outcome.kind is OutcomeKind.REFUSED
    assert outcome.refusals[0].kind is RefusalKind.INTERFACES
    assert str(outcome.refusals[0]).startswith("State.fs:9: interface change in Demo.State.Tag"), outcome.refusals


JSON_APP = """module Demo.Json

type Point = { X: int; Y: int }

let show () = System.Text.Json.JsonSerializer.Serialize({ X = 1; Y = 2 })
"""


def test_framework_update_handlers_run_before_the_apps(fsharp_project: Any) -> None:
    """System.Text.Json caches what it learnt of a type; its MetadataUpdateHandler (in the framework, the default
    load context) clears that cache, so it runs on every update, before any handler of the app's own."""
    p = fsharp_project({"Lib.fs": JSON_APP}, name="JsonApp")
    assert p.call("Demo.Json.show") == '{"X":1,"Y":2}'  # System.Text.Json is loaded and has cached Point
    p.edit("Lib.fs", JSON_APP.replace("{ X = 1; Y = 2 }", "{ X = 3; Y = 4 }"))
    assert p.call("Demo.Json.show") == '{"X":3,"Y":4}'
    updater = p.session.updater
    assert updater is not None
    assert any(name.startswith("System.Text.Json.") for name in updater.handlers_run), updater.handlers_run
    assert updater.handlers_run[0] == "System.Reflection.Metadata.RuntimeTypeMetadataUpdateHandler"
