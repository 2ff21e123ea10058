"""Edits to code that is running now: the entry point's loop keeps its old code. Such a save is applied and said
(which method, that its new code runs on its next call, that a restart runs it), and under `--restart auto|ask` it
counts as needing a restart; under `never` it is only reported."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_project import FSPROJ, QuietReporter

from hotreload.console import Console
from hotreload.runtime import RuntimeInfo
from hotreload.session import OutcomeKind, Session

pytestmark = pytest.mark.runtime

APP = """module Demo.App

let mutable stop = false
let mutable loops = 0
let helper () = 1
let requestStop () = stop <- true

[<EntryPoint>]
let main _ =
    while not stop do
        loops <- loops + helper ()
        System.Threading.Thread.Sleep 5
    0
"""


@pytest.fixture
def running(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> Iterator[tuple[Session, QuietReporter]]:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "App.fsproj").write_text(FSPROJ.format(output="Exe", name="RunningApp",
                                                     items='    <Compile Include="App.fs" />'))
    (folder / "App.fs").write_text(APP)
    reporter = QuietReporter()
    session = Session(folder / "App.fsproj", reporter=reporter, run_entry_point=True)
    session.start()
    try:
        yield session, reporter
    finally:
        session.call("Demo.App.requestStop")
        assert session.app is not None and session.app.thread is not None
        session.app.thread.join(10)
        session.stop()


def _wait_for_loops(session: Session, at_least: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        loops = int(session.call("Demo.App.get_loops"))  # type: ignore[call-overload]
        if loops >= at_least:
            return loops
        time.sleep(0.02)
    raise AssertionError("the app's loop is not running")


def test_entry_point_edit_is_applied_and_said(running: tuple[Session, QuietReporter]) -> None:
    session, reporter = running
    _wait_for_loops(session, 3)
    outcome = session.edit("App.fs", "System.Threading.Thread.Sleep 5", "System.Threading.Thread.Sleep 6")
    assert outcome.kind == OutcomeKind.APPLIED
    assert outcome.next_call == ["Demo.App.main"] and outcome.needs_restart
    said = [line for line in reporter.lines if "running now" in line]
    assert said and "Demo.App.main" in said[0] and "next call" in said[0] and "r restarts" in said[0], said


def test_edit_called_from_the_loop_takes_effect_and_needs_no_restart(running: tuple[Session, QuietReporter]) -> None:
    session, reporter = running
    before = _wait_for_loops(session, 3)
    outcome = session.edit("App.fs", "let helper () = 1", "let helper () = 1000")
    assert outcome.kind == OutcomeKind.APPLIED and outcome.next_call == [] and not outcome.needs_restart
    assert _wait_for_loops(session, before + 1000) > before  # main's loop calls the new helper
    assert not any("running now" in line for line in reporter.lines)


@pytest.mark.parametrize(("policy", "action", "asking"), [("auto", "restart", False), ("ask", None, True),
                                                          ("never", None, False)])
def test_restart_policy_treats_an_entry_point_edit_as_needing_a_restart(
        running: tuple[Session, QuietReporter], policy: str, action: str | None, asking: bool) -> None:
    session, reporter = running
    console = Console(session, reporter, policy, argv=[])
    outcome = session.edit("App.fs", "System.Threading.Thread.Sleep 5", "System.Threading.Thread.Sleep 7")
    assert outcome.needs_restart
    assert (console.action, console.asking) == (action, asking)
    if policy != "auto":
        assert any("running now, needs a restart" in line for line in reporter.lines), reporter.lines[-3:]
