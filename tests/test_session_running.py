"""Edits to code that runs only at startup: the entry point (its loop keeps its old code) and what only it calls
once (a web app's route and service registration). Such a save is applied and said (which method, that it runs
at startup, that a restart picks it up), and under `--restart auto|ask` it counts as needing a restart; under
`never` it is only reported. Code that runs again (called from the loop, or also from elsewhere) is not."""

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
let mutable configured = 0
let helper () = 1
let requestStop () = stop <- true
let register () = configured <- configured + 1
let configure () = register ()
let shared () = 2
let alsoFromLoop () = shared ()

[<EntryPoint>]
let main _ =
    configure ()
    configured <- configured + shared ()
    while not stop do
        loops <- loops + alsoFromLoop () - 2
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
    said = [line for line in reporter.lines if "runs at startup" in line]
    assert said and "Demo.App.main" in said[0] and "restart to pick it up" in said[0] and "r restarts" in said[0], said


@pytest.mark.parametrize(("old", "new", "method"), [
    ("configured <- configured + 1", "configured <- configured + 10", "Demo.App.register"),  # main -> configure -> it
    ("let configure () = register ()", "let configure () = register (); register ()", "Demo.App.configure"),
])
def test_edit_to_a_function_only_main_calls_once_is_said_to_run_at_startup(
        running: tuple[Session, QuietReporter], old: str, new: str, method: str) -> None:
    session, reporter = running
    _wait_for_loops(session, 3)
    outcome = session.edit("App.fs", old, new)
    assert outcome.kind == OutcomeKind.APPLIED and outcome.next_call == [method] and outcome.needs_restart
    assert session.call("Demo.App.get_configured") == 3  # applied, and nothing ran it: startup's value stays
    assert any("runs at startup" in line and method in line for line in reporter.lines), reporter.lines[-3:]


def test_function_main_calls_once_but_the_loop_also_calls_is_not_startup_code(
        running: tuple[Session, QuietReporter]) -> None:
    session, reporter = running
    before = _wait_for_loops(session, 3)
    outcome = session.edit("App.fs", "let shared () = 2", "let shared () = 1002")
    assert outcome.kind == OutcomeKind.APPLIED and outcome.next_call == [] and not outcome.needs_restart
    assert _wait_for_loops(session, before + 1000) > before  # the loop runs the new code
    assert not any("runs at startup" in line for line in reporter.lines)


def test_edit_called_from_the_loop_takes_effect_and_needs_no_restart(running: tuple[Session, QuietReporter]) -> None:
    session, reporter = running
    before = _wait_for_loops(session, 3)
    outcome = session.edit("App.fs", "let helper () = 1", "let helper () = 1000")
    assert outcome.kind == OutcomeKind.APPLIED and outcome.next_call == [] and not outcome.needs_restart
    assert _wait_for_loops(session, before + 1000) > before  # main's loop calls the new helper
    assert not any("runs at startup" in line for line in reporter.lines)


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
        assert any("runs at startup, needs a restart" in line for line in reporter.lines), reporter.lines[-3:]


TOP_LEVEL = """module Demo.Top

let mutable stop = false
let mutable loops = 0
let step () = 1
let requestStop () = stop <- true
let title = "top"

printfn "starting %s" title
while not stop do
    loops <- loops + step ()
    System.Threading.Thread.Sleep 5
"""


def test_a_top_level_programs_code_is_startup_code(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> None:
    """No [<EntryPoint>]: the last file's top-level code is the entry point (`main@`). Its edit is applied and said
    as startup code, as `main`'s is; a function it calls from its loop is applied and runs at once."""
    folder = tmp_path / "top"
    folder.mkdir()
    (folder / "Top.fsproj").write_text(FSPROJ.format(output="Exe", name="TopLevel",
                                                     items='    <Compile Include="Top.fs" />'))
    (folder / "Top.fs").write_text(TOP_LEVEL)
    session = Session(folder / "Top.fsproj", reporter=QuietReporter(), run_entry_point=True)
    session.start()
    try:
        outcome = session.edit("Top.fs", 'printfn "starting %s" title', 'printfn "starting %s!" title')
        assert outcome.kind == OutcomeKind.APPLIED and outcome.needs_restart
        assert outcome.next_call == ["the top-level code of Demo.Top"], outcome.next_call

        def loops() -> int:
            count = session.call("Demo.Top.get_loops")
            assert isinstance(count, int), count
            return count

        before = loops()
        session.edit("Top.fs", "let step () = 1", "let step () = 1000")
        deadline = time.monotonic() + 10
        while loops() < before + 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loops() >= before + 1000
    finally:
        session.call("Demo.Top.requestStop")
        assert session.app is not None and session.app.thread is not None
        session.app.thread.join(10)
        session.stop()
