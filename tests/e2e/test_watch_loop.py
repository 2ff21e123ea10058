"""End to end: the dev loop of `hotreload watch`: JSON events, restarts, app exits and crashes, keys, Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import psutil
import pytest
from web_testkit import Output

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

# refused: an interface added to a running type (the runtime cannot); the same save's other edit waits for it
RUDE = ("let multiplier () = 2", "let multiplier (k: int) = 2 + k"), ("tick * multiplier ()", "tick * multiplier 0")
INTERFACE = ("    static member ClearCache",
             "    interface IDisposable with\n        member _.Dispose() = ()\n\n    static member ClearCache")


def _rude(app: Path) -> None:
    """The interface first: whichever save the watcher sees first is refused, and the restart builds both."""
    _edit(app / "ReloadHandler.fs", INTERFACE)
    _edit(app / "Greeting.fs", *RUDE)


def _copy_sample(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    shutil.copytree(REPO / "sample_app", app, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    return app


def _edit(path: Path, *pairs: tuple[str, str]) -> None:
    text = path.read_text()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)


class JsonWatch(Output):
    """`hotreload watch --json` with stdin not a terminal; status events parsed, app lines kept as text."""

    def __init__(self, project: Path, *args: str, sigint_ignored: bool = False) -> None:
        # SIGINT ignored as a background job of a non-interactive shell starts: set, then kept across exec
        start = [sys.executable, "-c", ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                 "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")] if sigint_ignored else [sys.executable]
        super().__init__(subprocess.Popen([*start, "-m", "hotreload", "watch", str(project), "--json", *args],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, cwd=project.parent))

    def stop(self) -> None:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            child.kill()
        self.proc.kill()
        self.proc.wait(10)


def test_rude_edit_restarts_automatically_when_stdin_is_not_a_terminal(tmp_path: Path) -> None:
    app = _copy_sample(tmp_path)
    watch = JsonWatch(app / "SampleApp.fsproj", "--", "--interval-ms", "100")
    try:
        ready = watch.wait("ready")
        assert isinstance(ready, dict) and ready["policy"] == "auto"
        watch.wait(text="tick 3:")
        _rude(app)
        refused = watch.wait("refused")
        assert isinstance(refused, dict) and "interface change in SampleApp.ReloadHandler" in refused["refusals"][0]
        restart = watch.wait("restart")
        assert isinstance(restart, dict) and "state is lost" in restart["message"] and restart["restart"] == 1
        assert isinstance(watch.wait("restarted"), dict)
        first = watch.wait(text="tick 1:")  # a fresh app: the counter starts again, with the new code
        assert isinstance(first, str) and "score 2 " in first
    finally:
        watch.stop()


CRASHING = """module Crash.Program

let message () = "before"

[<EntryPoint>]
let main _ =
    printfn "app says %s" (message ())
    if message () = "before" then failwith "boom from the app"
    System.Threading.Thread.Sleep 60000
    0
"""


def test_app_crash_is_reported_and_the_next_good_save_starts_it_again(tmp_path: Path) -> None:
    from live_project import FSPROJ

    folder = tmp_path / "crash"
    folder.mkdir()
    (folder / "Program.fs").write_text(CRASHING)
    project = folder / "Crash.fsproj"
    project.write_text(FSPROJ.format(output="Exe", name="Crash", items='    <Compile Include="Program.fs" />'))
    watch = JsonWatch(project)
    try:
        watch.wait(text="app says before")
        crash = watch.wait("app-exit")
        assert isinstance(crash, dict) and "boom from the app" in crash["exception"]
        assert isinstance(watch.wait("waiting"), dict)
        _edit(folder / "Program.fs", ('"before"', '"after"'))
        restart = watch.wait("restart")
        assert isinstance(restart, dict) and "stopped" in restart["reason"]
        watch.wait(text="app says after")
    finally:
        watch.stop()


@pytest.mark.parametrize("started_with_sigint_ignored", [False, True])
def test_ctrl_c_ends_within_two_seconds_and_leaves_no_process(tmp_path: Path, started_with_sigint_ignored: bool) -> None:
    """Also when hotreload was started with SIGINT ignored (`cmd &` in a script), which Python would keep."""
    app = _copy_sample(tmp_path)
    watch = JsonWatch(app / "SampleApp.fsproj", "--", "--interval-ms", "200", sigint_ignored=started_with_sigint_ignored)
    watch.wait(text="tick 2:")
    time.sleep(3)  # the compiler worker is up by now
    family = [watch.proc.pid] + [c.pid for c in psutil.Process(watch.proc.pid).children(recursive=True)]
    assert len(family) >= 2, "the compiler worker should be running"
    start = time.monotonic()
    watch.proc.send_signal(signal.SIGINT)
    watch.proc.wait(5)
    assert time.monotonic() - start < 2.0
    deadline = time.monotonic() + 3
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in family) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"left running: {left}"


def test_keys_and_the_restart_question_on_a_terminal(tmp_path: Path) -> None:
    app = _copy_sample(tmp_path)
    child = pexpect.spawn(sys.executable, ["-m", "hotreload", "watch", str(app / "SampleApp.fsproj"), "--",
                                           "--interval-ms", "500"], cwd=str(app), encoding="utf-8", timeout=120)
    try:
        child.expect("restart policy: ask")
        child.expect("tick 1:")
        child.send("h")
        child.expect("keys: r restart")
        _rude(app)
        child.expect(r"\[y\]es / \[n\]o / \[a\]lways / ne\[v\]er")
        child.send("n")
        child.expect("not restarting")
        child.expect("tick")  # still running
        start = time.monotonic()
        child.send("q")
        child.expect(pexpect.EOF, timeout=10)
        assert time.monotonic() - start < 3
    finally:
        child.close(force=True)
