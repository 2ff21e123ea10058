"""End to end: whatever way `hotreload watch` (or a `Session`) ends, no process it started and no file it made in
the temp folder is left.

Every run gets a marker of its own in its environment (`HOTRELOAD_OWNER`, which hotreload passes on to everything
it starts) and a temp folder of its own (TMPDIR). Leftovers are then found by scanning every process on the
machine for the marker, so a child that was orphaned (reparented, no longer anyone's descendant) is found too;
and the temp folder must be empty once the run is over.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from hotreload.processes import MARKER

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

# refused (a running type cannot gain an interface), so --restart auto restarts
RUDE = ("    static member ClearCache",
        "    interface IDisposable with\n        member _.Dispose() = ()\n\n    static member ClearCache"),
CRASHING = """module Crash.Program

let message () = "before"

[<EntryPoint>]
let main _ =
    printfn "app says %s" (message ())
    if message () = "before" then failwith "boom from the app"
    System.Threading.Thread.Sleep 60000
    0
"""


def _copy_sample(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    shutil.copytree(REPO / "sample_app", app, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    return app / "SampleApp.fsproj"


def _crashing_app(tmp_path: Path) -> Path:
    from live_project import FSPROJ

    folder = tmp_path / "crash"
    folder.mkdir()
    (folder / "Program.fs").write_text(CRASHING)
    project = folder / "Crash.fsproj"
    project.write_text(FSPROJ.format(output="Exe", name="Crash", items='    <Compile Include="Program.fs" />'))
    return project


def _edit(path: Path, *pairs: tuple[str, str]) -> None:
    text = path.read_text()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)


def _touch_project(project: Path) -> None:
    """A project file edit: that save goes through `dotnet build`, and a new warm-up (MSBuild) follows it."""
    _edit(project, ("</OutputType>", "</OutputType>\n    <Description>edited</Description>"))


def marked(token: str, keeper: bool = True) -> list[psutil.Process]:
    """Every live process on the machine whose environment carries this run's marker (the keeper, which lives as
    long as its hotreload, unless `keeper` is False)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(MARKER) == token \
                    and (keeper or "hotreload.keeper" not in p.cmdline()):
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def describe(processes: list[psutil.Process]) -> str:
    out = []
    for p in processes:
        try:
            out.append(f"{p.pid} (parent {p.ppid()}): {' '.join(p.cmdline())[:200]}")
        except psutil.Error:
            out.append(f"{p.pid} (gone)")
    return "\n".join(out)


class Run:
    """`hotreload watch --json` with its own marker and temp folder; status events parsed, every process it starts
    recorded while it runs (by the marker, so grandchildren are in it)."""

    def __init__(self, tmp_path: Path, project: Path, *args: str) -> None:
        self.token = f"e2e-{uuid.uuid4()}"
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        env = dict(os.environ, TMPDIR=str(self.tmp), **{MARKER: self.token})
        self.proc = subprocess.Popen([sys.executable, "-m", "hotreload", "watch", str(project), "--json", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=project.parent, env=env)
        self.items: queue.Queue[dict[str, Any] | str] = queue.Queue()
        self.seen: list[dict[str, Any] | str] = []
        self.started: dict[int, str] = {}  # every process of the run seen so far: pid -> command line
        self._watching = True
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._record, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.items.put(json.loads(line) if line.startswith("{") else line)

    def _record(self) -> None:
        while self._watching:
            for p in marked(self.token):
                if p.pid not in self.started:
                    try:
                        self.started[p.pid] = " ".join(p.cmdline())
                    except psutil.Error:
                        pass
            time.sleep(0.05)

    def wait(self, event: str | None = None, text: str | None = None, timeout: float = 180) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.items.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(item)
            if event is not None and isinstance(item, dict) and item["event"] == event:
                return item
            if text is not None and isinstance(item, str) and text in item:
                return item
        raise AssertionError(f"no {event or text!r}; seen:\n" + "\n".join(map(str, self.seen[-30:])))

    def wait_for_process(self, part: str, timeout: float = 120) -> psutil.Process:
        """Block until a process of this run whose command line holds `part` is running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in marked(self.token):
                try:
                    if p.pid != self.proc.pid and part in " ".join(p.cmdline()):
                        return p
                except psutil.Error:
                    continue
            time.sleep(0.02)
        raise AssertionError(f"no process running {part!r}; seen:\n" + "\n".join(self.started.values()))

    def stop_with(self, sig: int, within: float = 2.0) -> float:
        """Send `sig` to hotreload alone (not its group) and return how long it took to exit."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(30)
        return time.monotonic() - start

    def assert_nothing_left(self, settle: float = 0.0) -> None:
        """No process of the run is alive (orphans included) and its temp folder is empty; after a clean stop at
        once, after a death no Python code saw within `settle` seconds (the keeper's work)."""
        self._watching = False
        deadline = time.monotonic() + settle
        while marked(self.token) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in marked(self.token) if p.pid != self.proc.pid]
        for p in left:
            p.kill()
        assert left == [], "left running after hotreload ended:\n" + describe(left)
        files = sorted(str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*"))
        assert files == [], f"left in the temp folder: {files}"

    def kill(self) -> None:
        """Clean-up after a failed test: the marker finds everything, orphans included."""
        self._watching = False
        for p in marked(self.token):
            try:
                p.kill()
            except psutil.Error:
                pass
        self.proc.wait(10)


def test_ctrl_c_during_a_dotnet_build_ends_the_build_with_its_compiler(tmp_path: Path) -> None:
    project = _copy_sample(tmp_path)
    run = Run(tmp_path, project, "--restart", "never", "--", "--interval-ms", "200")
    try:
        run.wait(text="tick 2:")
        run.wait_for_process("hotreload.compile_worker")
        _touch_project(project)  # the next save is built with `dotnet build`
        run.wait("fallback")
        run.wait_for_process("dotnet build")
        took = run.stop_with(signal.SIGINT)
        assert took < 2.0, f"Ctrl-C took {took:.2f} s"
        assert run.proc.returncode == 0
        assert any("dotnet build" in c for c in run.started.values())
        run.assert_nothing_left()
    finally:
        run.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path: Path, sig: signal.Signals) -> None:
    project = _copy_sample(tmp_path)
    run = Run(tmp_path, project, "--", "--interval-ms", "200")
    try:
        run.wait(text="tick 2:")
        run.wait_for_process("hotreload.compile_worker")
        took = run.stop_with(sig)
        assert took < 2.0, f"{sig.name} took {took:.2f} s"
        assert run.proc.returncode == 0  # a clean stop, not death by signal
        run.wait("stopping")
        run.assert_nothing_left()
    finally:
        run.kill()


def test_a_restart_then_stop_while_msbuild_runs_leaves_nothing(tmp_path: Path) -> None:
    """The reported leak: after a restart (rude edit, --restart auto) the fresh process asks MSBuild for fsc's
    arguments while the app starts; stopping it then left that `dotnet msbuild` running, orphaned."""
    project = _copy_sample(tmp_path)
    run = Run(tmp_path, project, "--restart", "auto", "--", "--interval-ms", "100")
    try:
        run.wait(text="tick 3:")
        _edit(project.parent / "ReloadHandler.fs", *RUDE)
        run.wait("restart")
        run.wait("restarted")
        msbuild = run.wait_for_process("-getItem:FscCommandLineArgs")
        took = run.stop_with(signal.SIGINT)
        assert took < 2.0, f"Ctrl-C took {took:.2f} s"
        assert not msbuild.is_running() or msbuild.status() == psutil.STATUS_ZOMBIE
        run.assert_nothing_left()
    finally:
        run.kill()


def test_a_restart_while_msbuild_runs_leaves_nothing_of_the_old_process(tmp_path: Path) -> None:
    """os.execv replaces hotreload but not its children: the warm-up's `dotnet msbuild`, started by the save that
    triggers the restart, must be ended before the exec, not left to the new process, which knows nothing of it."""
    project = _crashing_app(tmp_path)
    run = Run(tmp_path, project, "--restart", "auto")
    try:
        run.wait("app-exit")
        run.wait("waiting")
        run.wait_for_process("hotreload.compile_worker")
        time.sleep(1)  # the warm-up's compiles are over: the next MSBuild is the one the save starts
        _touch_project(project)  # built with `dotnet build`, then MSBuild is asked again while the app restarts
        run.wait("restart")
        run.wait("restarted")
        old = []  # the old process's children lack the restart count it sets just before the exec
        for p in marked(run.token):
            try:
                if p.pid != run.proc.pid and "HOTRELOAD_RESTARTS" not in p.environ():
                    old.append(p)
            except psutil.Error:
                continue
        assert old == [], "still running from before the exec:\n" + describe(old)
        assert any("-getItem:FscCommandLineArgs" in c for c in run.started.values())
        run.wait(text="app says before")
        took = run.stop_with(signal.SIGINT)
        assert took < 2.0
        run.assert_nothing_left()
    finally:
        run.kill()


def test_an_app_crash_then_stop_leaves_nothing(tmp_path: Path) -> None:
    project = _crashing_app(tmp_path)
    run = Run(tmp_path, project)
    try:
        crash = run.wait("app-exit")
        assert "boom from the app" in crash["exception"]
        run.wait_for_process("hotreload.compile_worker")
        took = run.stop_with(signal.SIGTERM)
        assert took < 2.0
        run.assert_nothing_left()
    finally:
        run.kill()


EXITING = """module Quit.Program

[<EntryPoint>]
let main _ =
    printfn "app runs"
    System.Threading.Thread.Sleep 4000
    exit 3
"""


def test_an_app_that_ends_the_process_leaves_nothing(tmp_path: Path) -> None:
    """`exit 3` in the app is Environment.Exit: the runtime ends the whole process, Python never regains control;
    the runtime's ProcessExit event still stops what hotreload started and removes its files."""
    from live_project import FSPROJ

    folder = tmp_path / "quit"
    folder.mkdir()
    (folder / "Program.fs").write_text(EXITING)
    project = folder / "Quit.fsproj"
    project.write_text(FSPROJ.format(output="Exe", name="Quit", items='    <Compile Include="Program.fs" />'))
    run = Run(tmp_path, project)
    try:
        run.wait(text="app runs")
        run.wait_for_process("hotreload.compile_worker")
        run.proc.wait(30)
        assert run.proc.returncode == 3
        assert any("hotreload.compile_worker" in c for c in run.started.values())
        run.assert_nothing_left(settle=3.0)
    finally:
        run.kill()


def test_hotreload_killed_outright_during_a_build_leaves_nothing(tmp_path: Path) -> None:
    """SIGKILL: no Python code of hotreload runs; the keeper ends the build's tree and removes the files."""
    project = _copy_sample(tmp_path)
    run = Run(tmp_path, project, "--restart", "never", "--", "--interval-ms", "200")
    try:
        run.wait(text="tick 2:")
        run.wait_for_process("hotreload.compile_worker")
        _touch_project(project)
        run.wait_for_process("dotnet build")
        run.proc.kill()
        run.proc.wait(10)
        run.assert_nothing_left(settle=3.0)
    finally:
        run.kill()


SESSION_SCRIPT = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    import hotreload
    from hotreload.processes import live

    project = Path(sys.argv[1])
    with hotreload.Session(project, watch=True) as s:
        assert s.call("SampleApp.Greeting.greeting", "F#") == "Hello, F#"
        while s.compiler is not None and not s.compiler.ready:  # the worker is up
            time.sleep(0.1)
        text = project.read_text()
        project.write_text(text.replace("</OutputType>", "</OutputType><Description>x</Description>"))
        while not any("dotnet build" in " ".join(c.proc.args) for c in live()):  # a rebuild is running
            time.sleep(0.02)
    print("stopped", flush=True)  # Session.stop() has returned; the runtime is still up in this process
    sys.stdin.readline()
""")


def test_session_stop_ends_every_process_and_leaves_no_file(tmp_path: Path) -> None:
    project = _copy_sample(tmp_path)
    token = f"e2e-{uuid.uuid4()}"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    script = tmp_path / "session.py"
    script.write_text(SESSION_SCRIPT)
    errors = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, str(script), str(project)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO,
                            env=dict(os.environ, TMPDIR=str(tmp), **{MARKER: token}))
    try:
        assert proc.stdout is not None and proc.stdin is not None
        lines = []
        for line in proc.stdout:  # the session's status lines, then ours
            lines.append(line)
            if line.strip() == "stopped":
                break
        assert lines and lines[-1].strip() == "stopped", "".join(lines) + (tmp_path / "stderr.txt").read_text()
        left = [p for p in marked(token, keeper=False) if p.pid != proc.pid]
        assert left == [], "left running after Session.stop():\n" + describe(left)
        # while the runtime is up, only its own IPC files are there: no runtimeconfig, no build's temp folder
        during = sorted(p.name for p in tmp.iterdir())
        assert all(name.startswith((f"clr-debug-pipe-{proc.pid}-", f"dotnet-diagnostic-{proc.pid}-"))
                   for name in during), during
        proc.communicate("\n", timeout=60)
        assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
        assert sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")) == []
        assert [p for p in marked(token) if p.pid != proc.pid] == []
    finally:
        for p in marked(token):
            p.kill()
        proc.kill()
        proc.wait(10)
        errors.close()
