"""End to end: `hotreload watch Solution.slnx` on a copy of tests/solution_app, saved as an F# developer saves:
a library's source, a source linked from outside the app's folder, the solution's Directory.Build.props and a C#
library's source. Every save ends in a status event, and the running loop's output shows the applied code."""

from __future__ import annotations

import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_testkit import Running, edit, hotreload_watch

pytestmark = pytest.mark.e2e

SOLUTION = Path(__file__).resolve().parents[1] / "solution_app"


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[tuple[Path, Running]]:
    root = tmp_path / "s"
    shutil.copytree(SOLUTION, root, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    run = hotreload_watch(root / "Solution.slnx", "--restart", "never")
    try:
        yield root, run
    finally:
        run.kill()


def _printed(run: Running, wanted: Callable[[str], bool], what: str) -> str:
    """The next line the running loop prints that `wanted` accepts."""
    def match(item: dict[str, Any] | str) -> bool:
        text = item.get("text", "") if isinstance(item, dict) and item.get("event") == "app-output" else item
        return isinstance(text, str) and wanted(text)
    found = run.wait_for(match, what, timeout=60)
    return str(found)


def _left(line: str) -> tuple[int, int] | None:
    found = re.search(r"tick (\d+) \| core:left (\d+) \|", line)
    return (int(found[1]), int(found[2])) if found else None


def test_watching_a_solution(watching: tuple[Path, Running]) -> None:
    root, run = watching
    projects = run.wait("projects", timeout=240)
    assert isinstance(projects, dict) and sorted(Path(p).name for p in projects["projects"]) == [
        "Core.fsproj", "Left.fsproj", "Native.csproj", "Right.fsproj"]
    watched = run.wait("watching")
    assert isinstance(watched, dict)
    assert {Path(f).name for f in watched["folders"]} == {"App", "Core", "Left", "Right", "Native"}
    run.wait("ready")
    _printed(run, lambda line: (lr := _left(line)) is not None and lr[1] == 2 * lr[0], "the app's loop")

    edit(root / "Core" / "Core.fs", "x * 2", "x * 5")  # a library
    applied = run.wait("applied", timeout=120)
    assert isinstance(applied, dict) and list(applied["assemblies"]) == ["Core.dll"], applied
    _printed(run, lambda line: (lr := _left(line)) is not None and lr[1] == 5 * lr[0], "Core's new code running")

    edit(root / "Shared" / "Banner.fs", '"shapes"', '"solids"')  # linked into the app from outside its folder
    applied = run.wait("applied", timeout=60)
    assert isinstance(applied, dict) and list(applied["assemblies"]) == ["App.dll"], applied
    _printed(run, lambda line: "== solids ==" in line, "the linked file's new code running")

    edit(root / "Native" / "Greeter.cs", '"hello "', '"hi "')  # C#: not hot reloaded, said so
    refused = run.wait("refused", timeout=60)
    assert isinstance(refused, dict) and refused["kinds"] == ["edit to a C# project"], refused
    assert "Greeter.cs" in refused["refusals"][0] and "restart" in refused["refusals"][0]

    # the solution's own MSBuild file, above every project: handled as a project-file edit
    edit(root / "Directory.Build.props", "<WarningLevel>3</WarningLevel>", "<WarningLevel>4</WarningLevel>")
    fallback = run.wait("fallback", timeout=60)
    assert isinstance(fallback, dict) and "changed" in fallback["reason"], fallback
    run.wait_for(lambda item: isinstance(item, dict) and item.get("event") in ("built", "applied"), "a build",
                 timeout=240)

    start = time.monotonic()
    run.signal(signal.SIGINT)  # one Ctrl-C ends the app, the worker and hotreload
    assert run.proc.wait(10) == 0
    assert time.monotonic() - start < 5
