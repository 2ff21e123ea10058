"""Pieces the benchmarks share: a silent reporter, a record of which build path each save took, memory samples
and a note of what code was measured (hotreload is changing under the benchmarks, so every result says which
commit and which locally modified files it ran with)."""

from __future__ import annotations

import gc
import inspect
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hotreload.report import Reporter
from hotreload.session import Session

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


class QuietReporter(Reporter):
    """Keeps the session's lines, to show them only when something goes wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def _write(self, text: str, color: str = "") -> None:
        self.lines.append(text)


def make_session(project: Path, reporter: Reporter, dotnet_build: bool = False) -> Session:
    """An in-process session (no entry point, no watcher); `dotnet_build` turns the warm compiler off where the
    Session has one, to compare with the plain `dotnet build` path."""
    kwargs: dict[str, Any] = {}
    if dotnet_build:
        if "warm_compiler" not in inspect.signature(Session).parameters:
            raise SystemExit("--dotnet-build: this version of Session has no warm_compiler option")
        kwargs["warm_compiler"] = False
    return Session(project, reporter=reporter, run_entry_point=False, watch=False, **kwargs)


@dataclass
class BuildRecord:
    via: str  # BuildResult.how where it exists ("dotnet build", "warm fsc"), else the builder's name
    seconds: float
    ok: bool


class BuildLog:
    """Records every build a session runs (its first build, the warm compiler's, fallbacks to `dotnet build`),
    by wrapping the `build` method of the session's builder and compiler objects. Benchmarks only: it relies on
    those attributes and stays out of the way (records nothing) where they do not exist."""

    def __init__(self, session: Session) -> None:
        self.records: list[BuildRecord] = []
        for attr in ("builder", "compiler"):
            obj = getattr(session, attr, None)
            if obj is not None and callable(getattr(obj, "build", None)):
                obj.build = self._wrap(obj.build, type(obj).__name__)

    def _wrap(self, build: Callable[[], Any], owner: str) -> Callable[[], Any]:
        def timed() -> Any:
            result = build()
            self.records.append(BuildRecord(str(getattr(result, "how", owner)), float(getattr(result, "seconds", 0)),
                                            bool(getattr(result, "ok", True))))
            return result

        return timed

    def mark(self) -> int:
        return len(self.records)

    def since(self, mark: int) -> list[BuildRecord]:
        return self.records[mark:]

    def via_since(self, mark: int) -> str:
        """The path the last build since `mark` took ("warm fsc", "dotnet build", ...; "?" when unknown)."""
        new = self.since(mark)
        return new[-1].via if new else "?"


def collect() -> None:
    """Full collections in Python and in .NET, so memory reflects what is still reachable, not garbage."""
    from System import GC  # type: ignore[import-not-found]

    for _ in range(2):
        gc.collect()
        GC.Collect()
        GC.WaitForPendingFinalizers()
    GC.Collect()


def memory_sample() -> dict[str, Any]:
    """After collecting: RSS of this process, of each child process alive now (e.g. a compiler worker), and the
    .NET managed heap, in MB."""
    collect()
    from System import GC

    me = psutil.Process(os.getpid())
    children = []
    for child in me.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline()[:4])
            children.append({"pid": child.pid, "cmd": cmd, "rss_mb": round(child.memory_info().rss / MB, 1)})
        except psutil.Error:  # exited between listing and reading
            continue
    return {"rss_mb": me.memory_info().rss / MB, "children": children,
            "children_rss_mb": sum(c["rss_mb"] for c in children), "managed_heap_mb": GC.GetTotalMemory(True) / MB}


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.rstrip("\n") if proc.returncode == 0 else ""


def _at_start() -> dict[str, Any]:
    dirty = [line[3:] for line in _git("status", "--porcelain", "--", "hotreload").splitlines() if line]
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": _git("rev-parse", "--short", "HEAD"),
            "hotreload_uncommitted": dirty, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


# Taken as the benchmark starts (this module is imported first thing), when hotreload's modules are imported:
# the code that runs is the code of that moment, whatever is committed during the run.
_START = _at_start()


def provenance(dotnet: str) -> dict[str, Any]:
    """What ran: hotreload's commit and its uncommitted files (read-only git) as the run started, runtime versions,
    and the machine's 1/5/15-minute load averages at start and end (on a shared machine: how far to trust it)."""
    return {**_START, "dotnet": dotnet, "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "argv": sys.argv[1:]}
