"""Deadlines and process trees: every command hotreload runs ends in time, with everything it started.

These use stand-ins (shell commands that sleep, a fake `dotnet`, a fake compiler worker that never answers), so
they run in seconds and without the .NET SDK; the real worker hung by SIGSTOP is in test_compiler.py.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hotreload import processes
from hotreload.build import BUILD_TIMEOUT_VARIABLE, Builder, ProjectError
from hotreload.compiler import COMPILE_TIMEOUT_VARIABLE, WarmCompiler, Worker, WorkerTimedOut
from hotreload.processes import MARKER, Owner, StepTimedOut, Stopped

FSPROJ = '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><OutputType>Exe</OutputType></PropertyGroup></Project>\n'


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """A marker value of this test's own: every process started under it carries it, reparented or not."""
    value = f"test-{uuid.uuid4()}"
    monkeypatch.setenv(MARKER, value)
    return value


def marked(token: str, keeper: bool = False) -> list[psutil.Process]:
    """Live processes whose environment holds the test's marker (children, grandchildren, orphans alike); the
    keeper (which lives as long as this test process) only if asked for."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(MARKER) == token \
                    and (keeper or "hotreload.keeper" not in p.cmdline()):
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def assert_none_left(token: str) -> None:
    left = marked(token)
    for p in left:
        p.kill()
    assert left == [], "left running: " + "; ".join(" ".join(p.cmdline()) for p in left)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TMPDIR for this test alone: whatever hotreload leaves in the temp folder shows up here."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    yield folder
    monkeypatch.setattr(tempfile, "tempdir", None)


# ---- settings -------------------------------------------------------------------------------------------------

def test_deadlines_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    project = tmp_path / "App.fsproj"
    project.write_text(FSPROJ)
    monkeypatch.delenv(BUILD_TIMEOUT_VARIABLE, raising=False)
    monkeypatch.delenv(COMPILE_TIMEOUT_VARIABLE, raising=False)
    assert Builder(project).timeout == 600.0
    assert WarmCompiler(Builder(project)).compile_timeout == 120.0
    monkeypatch.setenv(BUILD_TIMEOUT_VARIABLE, "42.5")
    monkeypatch.setenv(COMPILE_TIMEOUT_VARIABLE, "7")
    assert Builder(project).timeout == 42.5
    assert WarmCompiler(Builder(project)).compile_timeout == 7.0
    assert Builder(project, timeout=3).timeout == 3  # a setting on the object wins


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_a_bad_deadline_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   value: str) -> None:
    project = tmp_path / "App.fsproj"
    project.write_text(FSPROJ)
    monkeypatch.setenv(BUILD_TIMEOUT_VARIABLE, value)
    with pytest.raises(ProjectError, match=f"{BUILD_TIMEOUT_VARIABLE}='{value}' is not a number of seconds"):
        Builder(project)


# ---- one command ----------------------------------------------------------------------------------------------

def test_a_command_past_its_deadline_is_stopped_with_its_whole_tree(token: str) -> None:
    # a grandchild that ignores SIGTERM, in the background: only killing the group (then SIGKILL) ends it
    script = "trap '' TERM; (trap '' TERM; sleep 300) & sleep 300"
    start = time.monotonic()
    with pytest.raises(StepTimedOut) as caught:
        Owner().run(["sh", "-c", script], "`the stand-in`", 1.0, "HOTRELOAD_TEST_TIMEOUT", "the test goes on")
    took = time.monotonic() - start
    message = str(caught.value)
    assert message.startswith("`the stand-in` did not finish within 1 s; it was stopped with every process it "
                              "started; the test goes on"), message
    assert "HOTRELOAD_TEST_TIMEOUT sets this limit" in message
    assert took < 1.0 + processes.STOP_GRACE + 1.0, took
    assert_none_left(token)
    assert processes.live() == []


def test_a_command_that_ends_takes_its_stragglers_and_temp_folder_with_it(token: str, tmp_path: Path) -> None:
    seen = tmp_path / "env.txt"
    # the leader exits at once; the child it left behind (a daemon, say) is ended with it
    script = f"env > {seen}; sleep 300 & echo done"
    done = Owner().run(["sh", "-c", script], "`the stand-in`", 30, None, "")
    assert done.returncode == 0 and done.stdout.strip() == "done"
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert env[MARKER] == token
    assert env["MSBUILDDISABLENODEREUSE"] == "1" and env["DOTNET_CLI_USE_MSBUILD_SERVER"] == "0"
    assert Path(env["TMPDIR"]).name.startswith("hotreload-tmp-")
    assert not Path(env["TMPDIR"]).exists(), "the command's private temp folder was not removed"
    assert_none_left(token)


def test_the_marker_is_this_process_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MARKER, raising=False)
    assert processes.child_env()[MARKER] == str(os.getpid())
    monkeypatch.setenv(MARKER, "outer")
    assert processes.child_env()[MARKER] == "outer"  # a worker's children belong to the same hotreload


def test_closing_an_owner_ends_its_running_command_and_refuses_new_ones(token: str) -> None:
    import threading

    owner = Owner()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            owner.run(["sleep", "300"], "`sleep`", 60, None, "")
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not marked(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marked(token), "the command did not start"
    start = time.monotonic()
    owner.close()
    thread.join(5)
    assert time.monotonic() - start < 2
    assert len(errors) == 1 and isinstance(errors[0], Stopped), errors
    with pytest.raises(Stopped, match="was not started"):
        owner.run(["true"], "`true`", 5, None, "")
    assert_none_left(token)


# ---- dotnet build ---------------------------------------------------------------------------------------------

def _fake_dotnet(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "dotnet"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return folder


def test_a_hung_dotnet_build_is_stopped_and_reported_by_step(token: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _fake_dotnet(tmp_path / "bin", "echo building; sleep 300\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "app" / "App.fsproj"
    project.parent.mkdir()
    project.write_text(FSPROJ)
    builder = Builder(project, timeout=1.0)
    half_written = builder.obj_dir / builder.dll.name
    half_written.parent.mkdir(parents=True)
    half_written.write_bytes(b"MZ")  # what a compile cut short may leave, newer than the sources
    start = time.monotonic()
    result = builder.build()
    assert time.monotonic() - start < 1.0 + processes.STOP_GRACE + 1.0
    assert not result.ok
    [error] = result.errors
    assert error.code == "TIMEOUT" and error.file == str(project)
    assert error.message.startswith("`dotnet build` did not finish within 1 s; it was stopped with every process")
    assert "hotreload cannot start without this first build" in error.message  # what happens next
    assert f"{BUILD_TIMEOUT_VARIABLE} sets this limit" in error.message
    assert not half_written.exists(), "the next build would take the half-written assembly as up to date"
    assert_none_left(token)


def test_build_commands_turn_node_reuse_and_build_servers_off(tmp_path: Path) -> None:
    project = tmp_path / "App.fsproj"
    project.write_text(FSPROJ)
    command = Builder(project).command()
    assert "-nodeReuse:false" in command and "--disable-build-servers" in command


def test_msbuild_for_the_arguments_has_the_build_deadline(token: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from hotreload.compiler import compiler_arguments

    log = tmp_path / "args.txt"
    bin_dir = _fake_dotnet(tmp_path / "bin", f'echo "$@" > {log}; sleep 300\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "app" / "App.fsproj"
    project.parent.mkdir()
    project.write_text(FSPROJ)
    with pytest.raises(ProjectError) as caught:
        compiler_arguments(Builder(project, timeout=1.0))
    assert str(caught.value).startswith("`dotnet msbuild` (asked for the compiler's arguments) did not finish "
                                        "within 1 s; it was stopped")
    assert "saves are built with `dotnet build`" in str(caught.value)
    assert "-nodeReuse:false" in log.read_text().split()
    assert_none_left(token)


# ---- the compiler worker ----------------------------------------------------------------------------------------

HANGING_WORKER = textwrap.dedent("""\
    import subprocess, sys, time
    subprocess.Popen(["sleep", "300"])  # something the worker started: it must end with it
    if sys.argv[1] == "ready":
        print('{"ready": true}', flush=True)
    for line in sys.stdin:
        time.sleep(300)  # a compile that never ends
""")


def _worker(tmp_path: Path, mode: str, timeout: float) -> Worker:
    script = tmp_path / "fake_worker.py"
    script.write_text(HANGING_WORKER)
    return Worker(tmp_path, tmp_path / "compiler.log", Owner(), timeout, command=[sys.executable, str(script), mode])


def test_a_compile_request_past_its_deadline_stops_the_worker(token: str, tmp_path: Path) -> None:
    worker = _worker(tmp_path, "ready", 60.0)  # a loaded machine may take seconds to start Python
    assert len(marked(token)) == 2  # the worker and its child
    start = time.monotonic()
    with pytest.raises(WorkerTimedOut) as caught:
        worker.compile(["Lib.fs"], 1.0)
    assert time.monotonic() - start < 1.0 + 2 * processes.STOP_GRACE + 1.0
    message = str(caught.value)
    assert message.startswith("the compiler worker did not answer within 1 s; it was stopped with every process it "
                              "started; it is started again after this save's build"), message
    assert f"{COMPILE_TIMEOUT_VARIABLE} sets this limit" in message
    assert_none_left(token)
    worker.close()  # closing a stopped worker again is harmless


def test_a_worker_that_never_starts_is_stopped(token: str, tmp_path: Path) -> None:
    with pytest.raises(WorkerTimedOut, match="^the compiler worker did not start within 1 s; it was stopped"):
        _worker(tmp_path, "silent", 1.0)
    assert_none_left(token)


# ---- stopping everything ----------------------------------------------------------------------------------------

def test_stop_all_ends_every_tree_and_refuses_new_ones(token: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_stopping", False)  # restored after the test: this process goes on
    children = [Owner().start(["sh", "-c", "sleep 300 & exec sleep 300"], f"`sleep` {i}") for i in range(3)]
    deadline = time.monotonic() + 5
    while len(marked(token)) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(marked(token)) == 6
    start = time.monotonic()
    processes.stop_all()
    assert time.monotonic() - start < 2  # within Ctrl-C's budget, all trees together
    assert all(child.proc.returncode is not None for child in children)
    assert not any(Path(child.tmp).exists() for child in children)
    with pytest.raises(Stopped, match="hotreload is stopping"):
        processes.run(["true"], "`true`", 5, None, "")
    assert processes._keeper is None  # dismissed: there is nothing left to keep
    assert_none_left(token)


KILLED_HOST = textwrap.dedent("""\
    import os, signal, sys
    from hotreload import processes
    from hotreload.processes import Owner
    child = Owner().start(["sh", "-c", "sleep 300 & exec sleep 300"], "`sleep`")
    print(child.tmp, flush=True)
    sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGKILL)  # no finally, no atexit: only the keeper is left to clean up
""")


def test_the_keeper_ends_the_trees_of_a_host_killed_outright(token: str, tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "host.py"
    script.write_text(KILLED_HOST)
    host = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert host.stdout is not None and host.stdin is not None
    tree_tmp = Path(host.stdout.readline().strip())
    assert tree_tmp.is_dir()
    deadline = time.monotonic() + 10
    while len(marked(token)) < 3 and time.monotonic() < deadline:  # the host and its tree of two
        time.sleep(0.05)
    assert len(marked(token)) == 3 and len(marked(token, keeper=True)) == 4
    host.stdin.write("\n")
    host.stdin.flush()
    host.wait(10)
    assert host.returncode == -9
    deadline = time.monotonic() + 3
    while marked(token, keeper=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_none_left(token)
    assert marked(token, keeper=True) == [], "the keeper did not leave"
    assert not tree_tmp.exists(), "the tree's temp folder was not removed"


def test_what_a_dead_hotreload_left_in_the_temp_folder_is_swept(tmp_path: Path) -> None:
    """Everything of a run killed at once (the keeper included) leaves its folders; the next hotreload removes
    them, and only them: never a live process's, never through a symlink, never someone else's name."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    live = os.getpid()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not ours")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stale = [f"hotreload-tmp-{dead.pid}-abc123", f"hotreload-{dead.pid}-x1y2.runtimeconfig.json",
             f"hotreload-{dead.pid}.runtimeconfig.json"]  # the last: the old, predictable name
    kept = [f"hotreload-tmp-{live}-abc123", f"hotreload-{live}-x1y2.runtimeconfig.json", "hotreload-notes.txt",
            f"hotreload-tmp-{dead.pid}-link", "MSBuildTempXYZ"]
    for name in stale + kept:
        path = tmp / name
        if name.endswith("-link"):
            path.symlink_to(outside)
        elif "tmp-" in name or name.startswith("MSBuild"):
            path.mkdir()
            (path / "inner").write_text("x")
        else:
            path.write_text("{}")
    processes.sweep_stale(str(tmp))
    assert sorted(p.name for p in tmp.iterdir()) == sorted(kept)
    assert (outside / "keep.txt").exists()
