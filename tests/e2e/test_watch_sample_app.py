"""End to end: `hotreload watch` on a copy of sample_app, edited the way editors save files."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


class WatchProcess:
    """`hotreload watch` as a subprocess, its stdout collected line by line."""

    def __init__(self, project: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotreload", "watch", str(project), "--restart", "never", "--", "--interval-ms",
             "200"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=project.parent,
        )
        self.lines: list[str] = []
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self.queue.put(line.rstrip("\n"))

    def wait_for(self, predicate: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if predicate in line:
                return line
        raise AssertionError(f"no line containing {predicate!r}; output so far:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def watched_app(tmp_path: Path) -> Iterator[tuple[WatchProcess, Path]]:
    app = tmp_path / "app"
    shutil.copytree(REPO / "sample_app", app, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    proc = WatchProcess(app / "SampleApp.fsproj")
    try:
        yield proc, app
    finally:
        proc.stop()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_edits_apply_live_and_compile_errors_keep_the_app_running(watched_app: tuple[WatchProcess, Path]) -> None:
    proc, app = watched_app
    greeting = app / "Greeting.fs"
    proc.wait_for("watching")
    first = proc.wait_for("| score")
    assert "Hello, F#" in first and "describe 9" in first
    start_tick = int(first.split()[1].rstrip(":"))

    # 1. In-place save: a constant.
    greeting.write_text(greeting.read_text().replace("let multiplier () = 2", "let multiplier () = 7"))
    applied = proc.wait_for("applied generation 1")
    assert "SampleApp.Greeting.multiplier" in applied
    line = proc.wait_for("score ")
    while "Hello, F#" not in line:
        line = proc.wait_for("score ")
    tick = int(line.split()[1].rstrip(":"))
    score = int(line.split("score ")[1].split()[0])
    # new code, same process: the counter kept counting (state intact) and the score uses the new multiplier
    deadline = time.monotonic() + 10
    while score != tick * 7 and time.monotonic() < deadline:
        line = proc.wait_for("score ")
        tick, score = int(line.split()[1].rstrip(":")), int(line.split("score ")[1].split()[0])
    assert score == tick * 7 and tick > start_tick

    # 2. Atomic save (write a temp file, rename over the source): a string literal and a closure body.
    text = greeting.read_text().replace('"Hello, %s"', '"Bonjour, %s!"').replace("v + 1", "v * 100")
    _atomic_write(greeting, text)
    proc.wait_for("applied generation 2")
    proc.wait_for("Bonjour, F#! | score")
    assert "describe 600" in proc.wait_for("Bonjour, F#!")

    # 3. A compile error: reported with file and line; the app keeps running the last good code.
    greeting.write_text(greeting.read_text().replace("let multiplier () = 7", "let multiplier () = 7 +"))
    error = proc.wait_for("error FS")
    assert "Greeting.fs(" in error
    assert "Bonjour" in proc.wait_for("| score")
    assert proc.proc.poll() is None

    # 4. The next good save applies.
    greeting.write_text(greeting.read_text().replace("let multiplier () = 7 +", "let multiplier () = 3"))
    # the app's MetadataUpdateHandler runs (it prints) before hotreload reports the update
    proc.wait_for("[app] update #3")
    proc.wait_for("applied generation 3")

    # 5. A rude edit (an interface added to a running type) is named (file, member, kind) and nothing of the save
    # is applied.
    handler = app / "ReloadHandler.fs"
    handler_text = handler.read_text()
    handler.write_text(handler_text.replace("    static member ClearCache", "    interface IDisposable with\n"
                                            "        member _.Dispose() = ()\n\n    static member ClearCache"))
    text = greeting.read_text().replace("let multiplier () = 3", "let multiplier () = 4")
    greeting.write_text(text)
    refused = proc.wait_for("interface change")
    assert "SampleApp.ReloadHandler" in refused and "ReloadHandler.fs:" in refused
    line = proc.wait_for("| score")
    tick, score = int(line.split()[1].rstrip(":")), int(line.split("score ")[1].split()[0])
    assert score == tick * 3  # the multiplier edit in the same save was not applied either
    assert proc.proc.poll() is None

    # 6. An added function and a new lambda apply live; the moved code below them keeps running.
    handler.write_text(handler_text)
    greeting.write_text(text.replace("let multiplier () = 4", "let bonus () = [1; 2] |> List.map (fun b -> b * 5) "
                                     "|> List.sum\n\nlet multiplier () = 4 + bonus ()"))
    proc.wait_for("+SampleApp.Greeting.bonus")
    line = proc.wait_for("| score")
    tick, score = int(line.split()[1].rstrip(":")), int(line.split("score ")[1].split()[0])
    assert score == tick * 19
