"""SourceWatcher and SerialWorker on the real file system with the real watchdog observer.

Negative checks ("X is not reported") use a sentinel: after doing X, change another source file and wait for that.
Events arrive in order, so if X had been reported it would show up in the same or an earlier callback; this avoids
sleeping "long enough" and hoping.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotreload.watch import SerialWorker, SourceWatcher

pytestmark = pytest.mark.timeout(60)

DEADLINE = 10.0


def poll(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    """Poll until `predicate` holds or the deadline passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Recorder:
    """on_change target: records each callback's paths and what the changed files held at that moment."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[set[Path]] = []
        self.contents: list[dict[Path, str | None]] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, paths: set[Path]) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        view = {p: p.read_text() if p.exists() else None for p in paths}
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append(set(paths))
            self.contents.append(view)
            self.active -= 1

    def all_paths(self) -> set[Path]:
        with self._lock:
            return set().union(*self.calls)

    def saw(self, path: Path) -> bool:
        return path in self.all_paths()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "App.fsproj").write_text("<Project />\n")
    (root / "src" / "Lib.fs").write_text("module Lib\nlet x = 1\n")
    (root / "Program.fs").write_text("module Program\nlet main _ = 0\n")
    (root / "Sentinel.fs").write_text("module Sentinel\n")
    for d in ("bin", "obj", ".hotreload", ".git", "generated"):
        (root / d).mkdir()
    return root


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def watcher(project: Path, rec: Recorder) -> Iterator[SourceWatcher]:
    with SourceWatcher(project, rec, ignore=[Path("generated")]) as w:
        yield w


def bump_sentinel(project: Path, rec: Recorder, tag: str) -> None:
    """Change the sentinel file and wait until it is reported: everything saved before it has been handled."""
    sentinel = project / "Sentinel.fs"
    sentinel.write_text(f"module Sentinel\n// {tag}\n")
    assert poll(lambda: rec.saw(sentinel)), "sentinel change was not reported"


@pytest.mark.usefixtures("watcher")
def test_in_place_write_triggers_once(project: Path, rec: Recorder) -> None:
    lib = project / "src" / "Lib.fs"
    lib.write_text("module Lib\nlet x = 2\n")
    assert poll(lambda: len(rec.calls) >= 1)
    bump_sentinel(project, rec, "after in-place write")
    assert rec.calls == [{lib}, {project / "Sentinel.fs"}]
    assert rec.contents[0][lib] == "module Lib\nlet x = 2\n"


@pytest.mark.usefixtures("watcher")
def test_atomic_save_reports_destination(project: Path, rec: Recorder) -> None:
    program = project / "Program.fs"
    tmp = project / ".Program.fs.swp1234"
    tmp.write_text("module Program\nlet main _ = 42\n")
    os.replace(tmp, program)
    assert poll(lambda: rec.saw(program))
    assert rec.all_paths() == {program}
    assert rec.contents[-1][program] == "module Program\nlet main _ = 42\n"


@pytest.mark.usefixtures("watcher")
def test_vim_style_save_reports_file(project: Path, rec: Recorder) -> None:
    program = project / "Program.fs"
    backup = project / "Program.fs~"
    os.rename(program, backup)
    program.write_text("module Program\nlet main _ = 7\n")
    backup.unlink()
    assert poll(lambda: rec.saw(program) and rec.contents[-1].get(program) == "module Program\nlet main _ = 7\n")
    assert rec.all_paths() == {program}


@pytest.mark.usefixtures("watcher")
def test_build_output_and_other_files_are_ignored(project: Path, rec: Recorder) -> None:
    for rel in ("bin/Gen.fs", "obj/Debug/App.fs", "obj/App.fsproj", ".hotreload/Copy.fs", ".git/x.fs",
                "generated/Gen.fs", "notes.txt", "App.dll", "src/Lib.fs.bak"):
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("noise\n")
    (project / "obj" / "App.fsproj").unlink()
    bump_sentinel(project, rec, "after noise")
    assert rec.all_paths() == {project / "Sentinel.fs"}


@pytest.mark.usefixtures("watcher")
def test_identical_content_does_not_trigger(project: Path, rec: Recorder) -> None:
    lib = project / "src" / "Lib.fs"
    lib.write_text(lib.read_text())  # a real write (modified events), same bytes
    os.utime(lib)
    bump_sentinel(project, rec, "after touch")
    assert rec.all_paths() == {project / "Sentinel.fs"}


@pytest.mark.usefixtures("watcher")
def test_burst_of_writes_coalesces(project: Path, rec: Recorder) -> None:
    lib = project / "src" / "Lib.fs"
    final = ""
    with lib.open("w") as handle:  # a tool writing continuously: no close (no "done") until the end
        for i in range(20):
            final = f"module Lib\nlet x = {i}\n"
            handle.seek(0)
            handle.write(final)
            handle.truncate()
            handle.flush()
            time.sleep(0.02)  # closer together than the debounce: one burst
    assert poll(lambda: bool(rec.contents) and rec.contents[-1].get(lib) == final)
    assert 1 <= len(rec.calls) <= 5, rec.calls
    assert all(call == {lib} for call in rec.calls)


def test_a_finished_save_does_not_wait_for_the_debounce(project: Path, rec: Recorder) -> None:
    """A save whose writer closed the file ends the burst shortly after; a file still open for writing holds it
    (here the debounce is 30 s: only the close can end the burst within the poll's deadline)."""
    lib, program = project / "src" / "Lib.fs", project / "Program.fs"
    with SourceWatcher(project, rec, debounce=30.0, ceiling=60.0):
        lib.write_text("module Lib\nlet x = 3\n")  # in place: written, then closed
        assert poll(lambda: rec.saw(lib))
        tmp = project / ".Program.fs.tmp"
        tmp.write_text("module Program\nlet main _ = 3\n")
        os.replace(tmp, program)  # atomic save: renamed into place
        assert poll(lambda: rec.saw(program))
        with lib.open("w") as handle:
            handle.write("module Lib\nlet x = 4\n")
            handle.flush()
            time.sleep(0.3)
            assert len(rec.calls) == 2, "a file still open for writing ended its burst"
        assert poll(lambda: len(rec.calls) == 3)
        assert rec.contents[-1] == {lib: "module Lib\nlet x = 4\n"}


@pytest.mark.usefixtures("watcher")
def test_delete_reports_path(project: Path, rec: Recorder) -> None:
    lib = project / "src" / "Lib.fs"
    lib.unlink()
    assert poll(lambda: rec.saw(lib))
    assert rec.contents[-1] == {lib: None}


@pytest.mark.usefixtures("watcher")
def test_rename_reports_both_paths(project: Path, rec: Recorder) -> None:
    lib, renamed = project / "src" / "Lib.fs", project / "src" / "Core.fs"
    os.rename(lib, renamed)
    assert poll(lambda: rec.all_paths() == {lib, renamed})


@pytest.mark.usefixtures("watcher")
def test_folder_moved_out_reports_its_files(project: Path, rec: Recorder) -> None:
    lib = project / "src" / "Lib.fs"
    (project / "src").rename(project.parent / "elsewhere")  # inotify sends no per-file events for this
    assert poll(lambda: rec.saw(lib))
    assert rec.contents[-1] == {lib: None}


@pytest.mark.usefixtures("watcher")
def test_new_file_and_msbuild_props(project: Path, rec: Recorder) -> None:
    sig, props = project / "src" / "Lib.fsi", project / "Directory.Build.props"
    sig.write_text("module Lib\nval x: int\n")
    props.write_text("<Project />\n")
    assert poll(lambda: rec.all_paths() == {sig, props})


def test_callbacks_never_overlap(project: Path) -> None:
    slow = Recorder(delay=0.3)
    lib = project / "src" / "Lib.fs"
    with SourceWatcher(project, slow, debounce=0.05, ceiling=0.1):
        for i in range(8):
            lib.write_text(f"module Lib\nlet x = {i}\n")
            time.sleep(0.1)
        assert poll(lambda: bool(slow.contents) and slow.contents[-1].get(lib) == "module Lib\nlet x = 7\n")
    assert len(slow.calls) >= 2
    assert slow.max_active == 1


def test_handler_exception_keeps_watching(project: Path) -> None:
    calls: list[set[Path]] = []

    def flaky(paths: set[Path]) -> None:
        calls.append(paths)
        if len(calls) == 1:
            raise RuntimeError("boom")

    lib = project / "src" / "Lib.fs"
    with SourceWatcher(project, flaky):
        lib.write_text("module Lib\nlet x = 10\n")
        assert poll(lambda: len(calls) == 1)
        lib.write_text("module Lib\nlet x = 11\n")
        assert poll(lambda: len(calls) == 2)


# ---- SerialWorker -----------------------------------------------------------------------------------------------
class GatedJob:
    """A job that blocks until released, so a test controls exactly when a run is in progress."""

    def __init__(self, fail_first: bool = False) -> None:
        self.runs = 0
        self.started = threading.Semaphore(0)
        self.gate = threading.Event()
        self.fail_first = fail_first

    def __call__(self) -> None:
        self.runs += 1
        self.started.release()
        assert self.gate.wait(DEADLINE)
        if self.fail_first and self.runs == 1:
            raise ValueError("job failed")


def test_requests_during_run_collapse_to_one_follow_up() -> None:
    job = GatedJob()
    with SerialWorker(job) as worker:
        worker.request()
        assert job.started.acquire(timeout=DEADLINE)
        for _ in range(5):
            worker.request()
        assert job.runs == 1
        job.gate.set()
        assert worker.wait_idle(DEADLINE)
        assert job.runs == 2


def test_follow_up_starts_after_last_request() -> None:
    starts: list[float] = []
    last_request = 0.0
    release = threading.Event()

    def job() -> None:
        starts.append(time.monotonic())
        release.wait(DEADLINE)

    with SerialWorker(job) as worker:
        worker.request()
        assert poll(lambda: len(starts) == 1)
        for _ in range(3):
            last_request = time.monotonic()
            worker.request()
        release.set()
        assert worker.wait_idle(DEADLINE)
    assert len(starts) == 2
    assert starts[-1] >= last_request


def test_job_exception_does_not_kill_worker(caplog: pytest.LogCaptureFixture) -> None:
    job = GatedJob(fail_first=True)
    job.gate.set()
    with caplog.at_level(logging.ERROR, logger="hotreload.watch"), SerialWorker(job) as worker:
        worker.request()
        assert worker.wait_idle(DEADLINE)
        worker.request()
        assert worker.wait_idle(DEADLINE)
    assert job.runs == 2
    assert any(r.exc_info and isinstance(r.exc_info[1], ValueError) for r in caplog.records)


def test_wait_idle() -> None:
    job = GatedJob()
    worker = SerialWorker(job)
    try:
        assert worker.wait_idle(0.1)  # nothing requested yet
        worker.request()
        assert job.started.acquire(timeout=DEADLINE)
        assert not worker.wait_idle(0.1)  # a run is in progress
        job.gate.set()
        assert worker.wait_idle(DEADLINE)
        assert job.runs == 1
    finally:
        worker.stop()


def test_request_after_stop_is_ignored() -> None:
    job = GatedJob()
    job.gate.set()
    worker = SerialWorker(job)
    worker.stop()
    worker.request()
    assert worker.wait_idle(1.0)
    assert job.runs == 0
