"""Edit-to-running latency: from the moment a source file is saved to the first app line printed by the new code.

Three watchers run the same ticking app (it prints `tick N: Hello, F# | score ...` every 20 ms):

- `hotreload`: `hotreload watch` on a copy of sample_app/ (rebuild, IL diff, delta applied in-process);
- `dotnet_watch_fsharp`: `dotnet watch` on the same copy of sample_app/ (it cannot hot reload F#: it rebuilds
  and restarts the app);
- `dotnet_watch_csharp`: `dotnet watch` on benchmarks/apps/CsSampleApp, the same app in C#, which it hot
  reloads with Roslyn's in-memory deltas: the reference loop.

Every tool works on its own temporary copy (the repository is never edited) and all of them run at once. The
edits go round-robin, one tool at a time, so only one tool is busy while it is being timed. Edit k of a tool
rewrites the greeting, "Hello, %s" -> "Hello k, %s", with a plain write; the clock starts right after the
write and close, and stops at the arrival of the first stdout line containing "Hello k, F#" (a reader thread
timestamps every line with time.perf_counter() as it arrives). An edit with no such line within 60 s is a
failure: counted and reported, kept out of the percentiles. Before the first edit each tool must be fully up
(its first tick line and its "watching" line seen). After each edit the tool settles before the next one: until
its own line for that edit (hotreload's "applied generation", dotnet watch F#'s "Waiting for changes" after the
restart), then 0.5 s and until the machine is quiet (see `quiet_machine`), as before the first edit: on a 2-core
machine one tool's background work (dotnet watch C# loads its workspace for 10-20 s after its "watching" line)
must not be timed as another tool's edit. The 20 ms tick interval bounds the resolution.

To show where the time goes, the JSON also has the medians of the stages hotreload reports (`[hotreload]
applied generation N: ... (build 3.48 s, diff 5 ms, delta 0 ms, apply 3 ms, verify 1 ms)`), and for dotnet watch
whether it applied deltas or restarted the app, with the rebuild and delta times it prints. Only stdout is read:
nothing here depends on hotreload's internals.

Every watcher runs in its own process group, killed as a whole on exit (also on errors and Ctrl-C); a final
`ps` check reports (and kills) anything of ours still running.

Web mode (`--web`): edit-to-first-HTTP-response latency on ASP.NET Core apps. The same three tools serve the
same minimal API (`/`, `/count`, `/items`, `/page`; the handlers are plain functions in Handlers.fs / Handlers.cs):

- `hotreload`: `hotreload watch` on a copy of benchmarks/apps/FsWebApp (the handler shape of tests/web_app);
- `dotnet_watch_fsharp`: `dotnet watch` on the same copy (it rebuilds and restarts the app: /count starts again);
- `dotnet_watch_csharp`: `dotnet watch` on benchmarks/apps/CsWebApp, the same app in C#, hot reloaded.

Each tool serves on its own free port on 127.0.0.1 (`--urls` for the app and ASPNETCORE_URLS; dotnet watch with
`--non-interactive`, no browser launch, no browser refresh, restart on rude edits). Every edit rewrites the string
the `/` handler returns, alternating between two bodies ("Hello A from F#", "Hello B from F#"; C# for C#), with a
plain write; from right after the write and close, `/` is polled every 20 ms on a keep-alive connection (reconnected
after an error, as while dotnet watch restarts the app) until a 200 response's body is exactly the new text: the
latency is that response's arrival. No such response within 60 s is a failed edit. Each tool's first edit is a
warm-up (hotreload's first save may wait for its compiler's warm-up, begun at start; dotnet watch's first edit is
cold too): recorded in the JSON, kept out of the percentiles. After each edit the tool settles as in console mode (hotreload's "applied
generation", dotnet watch's "Waiting for changes" after a restart, "changes applied" after a C# delta), `/count`
is read (a count that fell back says the app restarted: state lost), then 0.5 s pass and the machine is quiet.

    .venv/bin/python benchmarks/latency.py --json benchmarks/out/latency.json [--runs 10] [--plot latency.png]
    .venv/bin/python benchmarks/latency.py --json out.json --runs 3 --tools hotreload      # CI: a quick subset
    .venv/bin/python benchmarks/latency.py --web --runs 10 [--json web.json] [--plot web.png]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import psutil

REPO = Path(__file__).resolve().parents[1]
INTERVAL_MS = 20
EDIT_TIMEOUT_S = 60.0
START_TIMEOUT_S = 300.0  # three first builds at once on a small machine
SETTLE_S = 0.5
QUIET_CPU_PERCENT = 25.0  # of all cores together: the ticking apps and idle watchers use a few percent
QUIET_MAX_S = 60.0  # dotnet watch C#'s start-up work lasts 10-20 s on this machine
STOP_TIMEOUT_S = 5.0
STAGES = ("build", "diff", "delta", "apply")
TICK = "| score"  # in every tick line of both apps


@dataclass(frozen=True)
class Tool:
    """One watcher under test: what to copy, what to run, what to edit and which lines say it is ready."""

    name: str
    label: str
    app: Path  # the app folder, copied before use
    project: str
    source: str  # the file edited
    ready: str  # the watcher's own "watching" line; the first tick line is awaited too
    settled: str | None  # a line expected after each edit before the next one, if any
    command: Callable[[Path], list[str]]
    dotnet_watch: bool


def _hotreload_command(project: Path) -> list[str]:
    return [sys.executable, "-m", "hotreload", "watch", str(project), "--", "--interval-ms", str(INTERVAL_MS)]


def _dotnet_watch_command(project: Path) -> list[str]:
    return ["dotnet", "watch", "run", "--project", str(project), "--non-interactive", "--",
            "--interval-ms", str(INTERVAL_MS)]


TOOLS = {t.name: t for t in (
    Tool("hotreload", "hotreload watch (F#)", REPO / "sample_app", "SampleApp.fsproj", "Greeting.fs",
         "[hotreload] watching", "[hotreload] applied generation", _hotreload_command, dotnet_watch=False),
    Tool("dotnet_watch_fsharp", "dotnet watch (F#)", REPO / "sample_app", "SampleApp.fsproj", "Greeting.fs",
         "Waiting for changes", "Waiting for changes", _dotnet_watch_command, dotnet_watch=True),
    Tool("dotnet_watch_csharp", "dotnet watch (C#)", REPO / "benchmarks" / "apps" / "CsSampleApp",
         "CsSampleApp.csproj", "Greeting.cs", "Waiting for changes", None, _dotnet_watch_command, dotnet_watch=True),
)}

_STAGE = re.compile(r"\b(build|diff|delta|apply|verify) (\d+(?:\.\d+)?) (ms|s)\b")


def parse_stages(line: str) -> dict[str, float]:
    """Stage timings in seconds from one `applied generation` status line; stages it lacks are simply absent,
    so a renamed or dropped stage does not break the benchmark."""
    if "applied generation" not in line or "(" not in line:
        return {}
    timings = line[line.rindex("("):]
    return {name: float(value) / (1000 if unit == "ms" else 1) for name, value, unit in _STAGE.findall(timings)}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), without numpy; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class Watched(Protocol):
    """What `environment` and `Watcher` need of a case: a name (folders, threads) and whether it is dotnet watch."""

    @property
    def name(self) -> str: ...

    @property
    def dotnet_watch(self) -> bool: ...


W = TypeVar("W", bound=Watched)


class Watcher(Generic[W]):
    """A watcher subprocess in its own process group, its stdout lines timestamped on arrival by a thread."""

    def __init__(self, tool: W, workdir: Path, env: dict[str, str], argv: list[str] | None = None) -> None:
        self.tool = tool
        self.workdir = workdir
        self.lines: list[tuple[float, str]] = []
        self.changed = threading.Condition()
        self.done = False
        if argv is None:  # a console tool's command needs only the project; a web tool's is built by the caller
            assert isinstance(tool, Tool)
            argv = tool.command(workdir / tool.project)
        self.proc = subprocess.Popen(argv, cwd=workdir, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pgid = self.proc.pid  # start_new_session: the child leads its own session and group
        threading.Thread(target=self._read, name=f"read-{tool.name}", daemon=True).start()

    def _read(self) -> None:
        """Timestamp each line the moment it arrives, before anything else looks at it."""
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            now = time.perf_counter()
            with self.changed:
                self.lines.append((now, raw.decode("utf-8", "replace").rstrip("\r\n")))
                self.changed.notify_all()
        with self.changed:
            self.done = True
            self.changed.notify_all()

    def mark(self) -> int:
        """Index of the next line, so a search can skip everything printed before an edit."""
        with self.changed:
            return len(self.lines)

    def wait_for(self, match: Callable[[str], bool], start: int, timeout: float) -> tuple[float, str] | None:
        """The first line from index `start` on that matches, waiting up to `timeout` s; None on timeout or exit."""
        deadline = time.perf_counter() + timeout
        index = start
        with self.changed:
            while True:
                for t, line in self.lines[index:]:
                    if match(line):
                        return t, line
                index = len(self.lines)
                remaining = deadline - time.perf_counter()
                if self.done or remaining <= 0:
                    return None
                self.changed.wait(min(remaining, 0.5))

    def tail(self, n: int = 30) -> str:
        with self.changed:
            return "\n".join(line for _, line in self.lines[-n:])

    def texts(self) -> list[str]:
        with self.changed:
            return [line for _, line in self.lines]

    def stop(self) -> None:
        """Kill the whole group: dotnet watch's `dotnet run`, the app, build nodes, not just the leader."""
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break  # nothing left in the group
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Result:
    """What one tool measured: the latencies in edit order, failed edits, and every edit's record."""

    samples: list[float] = field(default_factory=list)
    failures: int = 0
    edits: list[dict[str, Any]] = field(default_factory=list)


def environment(tool: Watched, root: Path) -> dict[str, str]:
    """The caller's environment, quiet; dotnet watch must set DOTNET_MODIFIABLE_ASSEMBLIES itself. Each tool gets a
    temporary folder under `root` (removed with it): dotnet watch and the .NET processes it starts leave folders
    and IPC files in theirs when stopped (hotreload gives the processes it starts private ones itself)."""
    tmp = root / f"tmp-{tool.name}"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1", PYTHONUNBUFFERED="1", TMPDIR=str(tmp))
    if tool.dotnet_watch:
        env["DOTNET_WATCH_SUPPRESS_EMOJIS"] = "1"
        env.pop("DOTNET_MODIFIABLE_ASSEMBLIES", None)
    return env


def copy_app(tool: Tool, root: Path) -> Path:
    """A private copy per tool, so the repository is never edited and the watchers never see each other."""
    dest = root / tool.name
    shutil.copytree(tool.app, dest, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    if "Hello, " not in (dest / tool.source).read_text():
        raise SystemExit(f"{tool.app / tool.source} has no 'Hello, ' greeting to edit")
    return dest


def is_tick(line: str) -> bool:
    return TICK in line


def wait_ready(watcher: Watcher) -> bool:
    """Both the watcher's "watching" line and a tick line seen: built, running and watching."""
    for match in (lambda line: watcher.tool.ready in line, is_tick):
        if watcher.wait_for(match, 0, START_TIMEOUT_S) is None:
            print(f"{watcher.tool.name}: not ready after {START_TIMEOUT_S:.0f} s (or it exited); last lines:\n"
                  f"{watcher.tail()}", file=sys.stderr)
            return False
    return True


def quiet_machine(limit_s: float = QUIET_MAX_S) -> float:
    """Wait until the whole machine's CPU use stays under QUIET_CPU_PERCENT for two 0.25 s windows in a row (at
    most `limit_s`); returns the seconds waited. Every watcher runs at once, and a tool's work that outlasts its
    own "ready" or "applied" line (dotnet watch C# loads its Roslyn workspace for 10-20 s after "watching"; seen
    with a sampler of per-process CPU) would otherwise slow the edit timed next, whoever's it is."""
    start = time.perf_counter()
    quiet = 0
    while quiet < 2 and time.perf_counter() - start < limit_s:
        quiet = quiet + 1 if psutil.cpu_percent(interval=0.25) < QUIET_CPU_PERCENT else 0
    return time.perf_counter() - start


def edit_once(watcher: Watcher, original: str, k: int) -> dict[str, Any]:
    """Save edit k and time it to the first tick line with its marker; then let the tool settle."""
    tool = watcher.tool
    marker = f"Hello {k}, F#"
    start = watcher.mark()
    with open(watcher.workdir / tool.source, "w", encoding="utf-8") as f:
        f.write(original.replace("Hello, ", f"Hello {k}, ", 1))
    saved = time.perf_counter()
    seen = watcher.wait_for(lambda line: marker in line and is_tick(line), start, EDIT_TIMEOUT_S)
    record: dict[str, Any] = {"edit": k, "latency_s": None, "tick": None}
    if seen is None:
        reason = "the watcher exited" if watcher.proc.poll() is not None else f"no {marker!r} in {EDIT_TIMEOUT_S:.0f} s"
        record["error"] = reason
        print(f"  {tool.name} edit {k}: FAILED ({reason}); last lines:\n{watcher.tail()}", file=sys.stderr)
        return record
    arrived, line = seen
    record["latency_s"] = round(arrived - saved, 4)
    record["line"] = line
    tick = re.search(r"(\d+): Hello", line)  # not "tick N:": another writer's line may have split it
    record["tick"] = int(tick.group(1)) if tick else None  # restarts show as the counter starting again at 1
    settled = tool.settled
    if settled and watcher.wait_for(lambda text: settled in text, start, EDIT_TIMEOUT_S) is None:
        print(f"  {tool.name} edit {k}: no {settled!r} line after the edit", file=sys.stderr)
    time.sleep(SETTLE_S)
    quiet_machine(5.0)
    return record


def run(tools: Sequence[Tool], runs: int, root: Path) -> tuple[dict[str, Result], dict[str, list[str]]]:
    """Start every watcher, then edit round-robin; returns the results and every tool's output lines."""
    results = {t.name: Result() for t in tools}
    watchers: list[Watcher] = []
    outputs: dict[str, list[str]] = {}
    try:
        for tool in tools:
            watchers.append(Watcher(tool, copy_app(tool, root), environment(tool, root)))
        print(f"started {', '.join(t.name for t in tools)}; waiting for first builds and ticks...", flush=True)
        live = [w for w in watchers if wait_ready(w)]
        for w in watchers:
            if w not in live:
                results[w.tool.name].failures = runs
        originals = {w.tool.name: (w.workdir / w.tool.source).read_text() for w in live}
        time.sleep(1.0)  # let the last one to get ready finish its start-up work before timing anything
        print(f"machine quiet after {quiet_machine():.1f} s more", flush=True)
        for k in range(1, runs + 1):
            for w in live:
                record = edit_once(w, originals[w.tool.name], k)
                result = results[w.tool.name]
                result.edits.append(record)
                if record["latency_s"] is None:
                    result.failures += 1
                else:
                    result.samples.append(record["latency_s"])
                shown = "FAILED" if record["latency_s"] is None else f"{record['latency_s']:.3f} s"
                print(f"  edit {k}/{runs} {w.tool.name:<20} {shown:>9}  (tick {record['tick']})", flush=True)
    finally:
        for w in watchers:
            w.stop()
        for w in watchers:
            outputs[w.tool.name] = w.texts()
        leftovers(root, [w.pgid for w in watchers])
    return results, outputs


def leftovers(root: Path, pgids: Sequence[int]) -> None:
    """Report and kill any process still in one of our groups or running from our temp folder."""
    ps = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=False)
    mine = os.getpid()
    found = []
    for row in ps.stdout.splitlines():
        parts = row.split(None, 3)
        if len(parts) < 4 or not parts[0].isdigit() or int(parts[0]) == mine or parts[2].startswith("Z"):
            continue  # zombies are dead already: grandchildren waiting for init to reap them
        pid, pgid, args = int(parts[0]), int(parts[1]), parts[3]
        if pgid in pgids or str(root) in args:
            found.append((pid, args))
    for pid, args in found:
        print(f"left behind, killing: {pid} {args[:120]}", file=sys.stderr)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if not found:
        print("ps: no watcher, build or app process left behind", flush=True)
    tmp = root / "tmp-hotreload"  # hotreload's own temporary folder: it must leave nothing there
    left = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")) if tmp.is_dir() else []
    print(f"hotreload left in its temporary folder: {left}" if left else
          "hotreload left nothing in its temporary folder", flush=True)


def stage_medians(lines: Sequence[str]) -> dict[str, float | None]:
    """Median of each hotreload stage over its `applied generation` lines; None when it never reported one."""
    seen: dict[str, list[float]] = {s: [] for s in STAGES}
    for line in lines:
        for stage, seconds in parse_stages(line).items():
            if stage in seen:
                seen[stage].append(seconds)
    return {f"{s}_s": round(statistics.median(v), 4) if v else None for s, v in seen.items()}


_ELAPSED = re.compile(r"Time Elapsed (\d+):(\d+):(\d+(?:\.\d+)?)")
_APPLIED = re.compile(r"changes applied in (\d+(?:\.\d+)?) ?ms")


def dotnet_watch_events(lines: Sequence[str]) -> dict[str, Any]:
    """How dotnet watch handled the edits (deltas applied or app restarted) and what it says they cost: the
    median rebuild after an edit (its first build is start-up) and the median time it reports for a delta."""
    builds = [int(h) * 3600 + int(m) * 60 + float(sec) for line in lines for h, m, sec in _ELAPSED.findall(line)]
    applied = [float(ms) / 1000 for line in lines for ms in _APPLIED.findall(line)]
    return {"hot_reload_applied": sum("changes applied" in line for line in lines),
            "restarted": sum("Restart is needed" in line for line in lines),
            "rebuild_s": round(statistics.median(builds[1:]), 3) if len(builds) > 1 else None,
            "delta_applied_s": round(statistics.median(applied), 3) if applied else None}


def machine() -> dict[str, Any]:
    """Enough context to compare runs: cores, SDK, date, and the hotreload source that was measured."""
    sdk = subprocess.run(["dotnet", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "dotnet_version": sdk,
                            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                            "platform": sys.platform, "python": sys.version.split()[0]}
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    if head.returncode == 0:
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(REPO), "diff", "--quiet", "HEAD", "--",
                                "hotreload"], capture_output=True, check=False).returncode != 0
        info["hotreload_commit"] = head.stdout.strip() + ("+dirty" if dirty else "")
    return info


def summarize(tools: Sequence[Tool | WebTool], runs: int, results: dict[str, Result],
              outputs: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON document: percentiles per tool, hotreload's stage medians, raw samples and failures."""
    doc: dict[str, Any] = {}
    for name in TOOLS:
        samples = results[name].samples if name in results else []
        doc[f"{name}_p50_s"] = _round(percentile(samples, 50))
        doc[f"{name}_p90_s"] = _round(percentile(samples, 90))
    doc.update(stage_medians(outputs.get("hotreload", [])))
    doc.update({
        "runs": runs,
        "tools": [t.name for t in tools],
        "interval_ms": INTERVAL_MS,
        "samples": {name: r.samples for name, r in results.items()},
        "failures": {name: r.failures for name, r in results.items()},
        "edits": {name: r.edits for name, r in results.items()},
        "dotnet_watch": {t.name: dotnet_watch_events(outputs.get(t.name, [])) for t in tools if t.dotnet_watch},
        "machine": machine(),
    })
    return doc


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def print_report(tools: list[Any], results: dict[str, Any], doc: dict[str, Any]) -> None:
    """The table, hotreload's stage medians and what dotnet watch says it did: the same in both modes."""
    print()
    print_table(tools, results)
    if "hotreload" in results:
        print("hotreload stage medians: " + ", ".join(
            f"{s} {'-' if doc[f'{s}_s'] is None else format(doc[f'{s}_s'], '.3f') + ' s'}" for s in STAGES))
    for name, ev in doc["dotnet_watch"].items():
        costs = [f"rebuild median {ev['rebuild_s']} s" if ev["rebuild_s"] is not None else "",
                 f"delta median {ev['delta_applied_s']} s" if ev["delta_applied_s"] is not None else ""]
        print(f"{name}: {ev['hot_reload_applied']} hot reload(s) applied, {ev['restarted']} restart(s)"
              + "".join(f"; {c}" for c in costs if c) + " (as dotnet watch reports them)")


def print_table(tools: Sequence[Tool | WebTool], results: dict[str, Result]) -> None:
    head = f"{'tool':<22} {'n':>3} {'fail':>4} {'p50':>8} {'p90':>8} {'min':>8} {'max':>8}"
    print(head)
    print("-" * len(head))
    for tool in tools:
        r = results[tool.name]
        cells = [percentile(r.samples, 50), percentile(r.samples, 90), min(r.samples, default=None),
                 max(r.samples, default=None)]
        shown = " ".join(f"{'-':>8}" if v is None else f"{v:>7.3f}s" for v in cells)
        print(f"{tool.name:<22} {len(r.samples):>3} {r.failures:>4} {shown}")


def plot(tools: Sequence[Tool | WebTool], results: dict[str, Result], path: Path, title: str,
         ylabel: str = "save to first new output line (s, log)") -> None:
    """Box plot plus every sample per tool on a log scale (the tools differ by orders of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    positions = list(range(1, len(tools) + 1))
    data = [results[t.name].samples for t in tools]
    ax.boxplot([d if d else [float("nan")] for d in data], positions=positions, widths=0.5, showfliers=False)
    for x, tool, samples in zip(positions, tools, data, strict=True):
        jitter = [x + 0.12 * ((i * 7919) % 11 - 5) / 5 for i in range(len(samples))]  # deterministic spread
        ax.scatter(jitter, samples, s=14, alpha=0.6, zorder=3)
        p50 = percentile(samples, 50)
        if p50 is not None:
            ax.annotate(f"p50 {p50:.2f} s", (x + 0.28, p50), fontsize=9, va="center")
        failed = results[tool.name].failures
        if failed:
            ax.annotate(f"{failed} failed", (x, 0.02), xycoords=("data", "axes fraction"), ha="center",
                        fontsize=8, color="red")
    ax.set_xticks(positions, [f"{t.label}\n(n={len(results[t.name].samples)})" for t in tools])
    ax.set_yscale("log")
    if not any(data):
        ax.set_ylim(0.01, 100)  # nothing measured: an empty log axis still needs limits
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- web mode: save -> first HTTP response with the new body -----------------------------------------------------

POLL_S = 0.02  # how often the endpoint is polled after a save
HTTP_TIMEOUT_S = 2.0  # one request
WEB_BODIES = ("Hello A from {lang}", "Hello B from {lang}")  # edits alternate between these two


@dataclass(frozen=True)
class WebTool:
    """One watcher serving a web app: the string its `/` handler returns (`literal`) is what every edit rewrites."""

    name: str
    label: str
    app: Path
    project: str
    source: str  # the file edited: the handlers
    literal: str  # the string `/` returns before any edit
    lang: str  # "F#" or "C#", in the edited bodies
    ready: str  # the watcher's own "watching" line; a 200 from `/` with `literal` is awaited too
    settled: str | None  # a line expected after each edit before the next one, if any
    command: Callable[[Path, str], list[str]]  # (project, url) -> argv
    dotnet_watch: bool

    def body(self, k: int) -> str:
        """The text `/` returns after edit k (k = 0 is the warm-up): A, B, A, ... so each differs from the last."""
        return WEB_BODIES[k % 2].format(lang=self.lang)


def _hotreload_web_command(project: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "hotreload", "watch", str(project), "--no-launch-profile", "--", "--urls", url]


def _dotnet_watch_web_command(project: Path, url: str) -> list[str]:
    return ["dotnet", "watch", "run", "--project", str(project), "--non-interactive", "--", "--urls", url]


APPS = REPO / "benchmarks" / "apps"
WEB_TOOLS = {t.name: t for t in (
    WebTool("hotreload", "hotreload watch (F#)", APPS / "FsWebApp", "FsWebApp.fsproj", "Handlers.fs",
            "Hello from F#", "F#", "[hotreload] watching", "[hotreload] applied generation", _hotreload_web_command,
            dotnet_watch=False),
    WebTool("dotnet_watch_fsharp", "dotnet watch (F#)", APPS / "FsWebApp", "FsWebApp.fsproj", "Handlers.fs",
            "Hello from F#", "F#", "Waiting for changes", "Waiting for changes", _dotnet_watch_web_command,
            dotnet_watch=True),
    WebTool("dotnet_watch_csharp", "dotnet watch (C#)", APPS / "CsWebApp", "CsWebApp.csproj", "Handlers.cs",
            "Hello from C#", "C#", "Waiting for changes", "changes applied", _dotnet_watch_web_command,
            dotnet_watch=True),
)}


def free_port() -> int:
    """A port nothing listens on now (the OS's choice); each tool gets its own."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Probe:
    """GET requests on one keep-alive connection, reconnected after any error (a restarting app refuses them)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, str] | None:
        """(status, body), or None when the request failed (refused, reset, timed out)."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            if response.will_close:
                self.close()
            return response.status, body
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def web_environment(tool: WebTool, url: str, root: Path) -> dict[str, str]:
    """As in console mode, plus the URL, and dotnet watch kept from browsers and from asking about rude edits."""
    env = environment(tool, root)
    env["ASPNETCORE_URLS"] = url
    if tool.dotnet_watch:
        env.update(DOTNET_WATCH_SUPPRESS_LAUNCH_BROWSER="1", DOTNET_WATCH_SUPPRESS_BROWSER_REFRESH="1",
                   DOTNET_WATCH_RESTART_ON_RUDE_EDIT="1")
    return env


def copy_web_app(tool: WebTool, root: Path) -> Path:
    dest = root / tool.name
    shutil.copytree(tool.app, dest, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    if (dest / tool.source).read_text().count(f'"{tool.literal}"') != 1:
        raise SystemExit(f"{tool.app / tool.source} does not return \"{tool.literal}\" exactly once")
    return dest


def wait_serving(watcher: Watcher, probe: Probe, body: str, timeout: float) -> bool:
    """Poll until `/` answers 200 with `body` (bounded); False on timeout or when the watcher exited."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and watcher.proc.poll() is None:
        got = probe.get("/")
        if got == (200, body):
            return True
        time.sleep(0.2)
    return False


def wait_web_ready(watcher: Watcher, probe: Probe) -> bool:
    """The watcher's "watching" line seen, and `/` serving the original text."""
    tool = watcher.tool
    assert isinstance(tool, WebTool)
    if (watcher.wait_for(lambda line: tool.ready in line, 0, START_TIMEOUT_S) is None
            or not wait_serving(watcher, probe, tool.literal, START_TIMEOUT_S)):
        print(f"{tool.name}: not serving {tool.literal!r} after {START_TIMEOUT_S:.0f} s (or it exited); last lines:\n"
              f"{watcher.tail()}", file=sys.stderr)
        return False
    return True


def read_count(probe: Probe) -> int | None:
    """The number `/count` answers (it counts its own requests in memory: it falls back when the app restarts)."""
    got = probe.get("/count")
    if got is None or got[0] != 200:
        return None
    match = re.search(r"(\d+)", got[1])
    return int(match.group(1)) if match else None


def web_edit_once(watcher: Watcher, probe: Probe, current: str, k: int) -> dict[str, Any]:
    """Save edit k (the `/` handler's string `current` -> the k-th body) and time it to the first 200 response with
    the new body; then let the tool settle and read `/count`."""
    tool = watcher.tool
    assert isinstance(tool, WebTool)
    new = tool.body(k)
    path = watcher.workdir / tool.source
    text = path.read_text(encoding="utf-8")
    if text.count(f'"{current}"') != 1:
        raise RuntimeError(f"{path}: \"{current}\" is not in it exactly once")
    start = watcher.mark()
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(f'"{current}"', f'"{new}"'))
    saved = time.perf_counter()
    deadline = saved + EDIT_TIMEOUT_S
    record: dict[str, Any] = {"edit": k, "body": new, "latency_s": None, "polls": 0, "errors": 0}
    next_poll = saved
    while True:
        got = probe.get("/")
        now = time.perf_counter()
        record["polls"] += 1
        if got is None or got[0] != 200:
            record["errors"] += 1  # refused while restarting, or a non-200: polled again, not a failure
        elif got[1] == new:
            record["latency_s"] = round(now - saved, 4)
            break
        if now >= deadline or watcher.proc.poll() is not None:
            reason = ("the watcher exited" if watcher.proc.poll() is not None
                      else f"no {new!r} from / in {EDIT_TIMEOUT_S:.0f} s")
            record["error"] = reason
            print(f"  {tool.name} edit {k}: FAILED ({reason}); last lines:\n{watcher.tail()}", file=sys.stderr)
            return record
        next_poll += POLL_S
        time.sleep(max(0.0, next_poll - time.perf_counter()))
    settled = tool.settled
    if settled and watcher.wait_for(lambda line: settled in line, start, EDIT_TIMEOUT_S) is None:
        print(f"  {tool.name} edit {k}: no {settled!r} line after the edit", file=sys.stderr)
    record["count"] = read_count(probe)
    time.sleep(SETTLE_S)
    quiet_machine(5.0)
    return record


def run_web(tools: Sequence[WebTool], runs: int, root: Path) -> tuple[dict[str, Result], dict[str, list[str]],
                                                                       dict[str, dict[str, Any]]]:
    """Start every watcher on its own port, a warm-up edit each, then `runs` edits round-robin. Returns the results,
    every tool's output lines, and per tool its URL, warm-up and whether /count kept counting."""
    results = {t.name: Result() for t in tools}
    extra: dict[str, dict[str, Any]] = {}
    watchers: list[Watcher] = []
    probes: dict[str, Probe] = {}
    outputs: dict[str, list[str]] = {}
    try:
        for tool in tools:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            workdir = copy_web_app(tool, root)
            watchers.append(Watcher(tool, workdir, web_environment(tool, url, root),
                                    tool.command(workdir / tool.project, url)))
            probes[tool.name] = Probe(port)
            extra[tool.name] = {"url": url, "warmup": None, "counts": [], "restarts_seen": 0}
        print(f"started {', '.join(t.name for t in tools)}; waiting for first builds and responses...", flush=True)
        live = [w for w in watchers if wait_web_ready(w, probes[w.tool.name])]
        for w in watchers:
            if w not in live:
                results[w.tool.name].failures = runs
        current = {w.tool.name: w.tool.literal for w in live if isinstance(w.tool, WebTool)}
        last_count = {w.tool.name: read_count(probes[w.tool.name]) for w in live}
        time.sleep(1.0)  # let the last one to get ready finish its start-up work before timing anything
        print(f"machine quiet after {quiet_machine():.1f} s more", flush=True)
        for k in range(runs + 1):  # edit 0: the warm-up
            for w in live:
                name = w.tool.name
                record = web_edit_once(w, probes[name], current[name], k)
                current[name] = record["body"]  # what the file holds now, served or not
                info = extra[name]
                count, before = record.get("count"), last_count[name]
                if count is not None and before is not None and count <= before:
                    info["restarts_seen"] += 1  # the in-memory counter started again: a new process, state lost
                    record["state_lost"] = True
                last_count[name] = count
                info["counts"].append(count)
                result = results[name]
                if k == 0:
                    info["warmup"] = record
                else:
                    result.edits.append(record)
                    if record["latency_s"] is None:
                        result.failures += 1
                    else:
                        result.samples.append(record["latency_s"])
                shown = "FAILED" if record["latency_s"] is None else f"{record['latency_s']:.3f} s"
                which = "warm-up" if k == 0 else f"edit {k}/{runs}"
                print(f"  {which:<10} {name:<20} {shown:>9}  (/count {count}"
                      f"{', state lost' if record.get('state_lost') else ''})", flush=True)
    finally:
        for probe in probes.values():
            probe.close()
        for w in watchers:
            w.stop()
        for w in watchers:
            outputs[w.tool.name] = w.texts()
        leftovers(root, [w.pgid for w in watchers])
    return results, outputs, extra


def main_web(args: argparse.Namespace, names: list[str]) -> int:
    """`--web`: the three tools on web apps; table, JSON and plot as in console mode."""
    tools = [WEB_TOOLS[n] for n in names]
    plot_path = args.plot or (args.json.with_name("latency_web.png") if args.json else None)
    print(f"web mode: {args.runs} edit(s) per tool after a warm-up, round-robin; / polled every "
          f"{POLL_S * 1000:.0f} ms", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="hotreload-latency-web-") as tmp:
            results, outputs, extra = run_web(tools, args.runs, Path(tmp))
    except KeyboardInterrupt:
        print("interrupted; watchers stopped", file=sys.stderr)
        return 130
    doc = summarize(tools, args.runs, results, outputs)
    doc.pop("interval_ms", None)  # console mode's tick; here the endpoint is polled
    machine_info = doc.pop("machine")
    doc.update({"mode": "web", "poll_ms": round(POLL_S * 1000), "edit": "the string the / handler returns",
                "bodies": {t.name: [t.body(0), t.body(1)] for t in tools}, "web": extra, "machine": machine_info})
    print_report(tools, results, doc)
    for name, info in extra.items():
        kept = "state kept" if not info["restarts_seen"] else f"state lost {info['restarts_seen']} time(s)"
        print(f"{name}: /count after each edit {info['counts']} ({kept})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if plot_path:
        title = (f"save to first HTTP response with the new body, {args.runs} edits per tool "
                 f"({doc['machine']['cpu_count']} CPUs, .NET SDK {doc['machine']['dotnet_version']})")
        try:
            plot(tools, results, plot_path, title, ylabel="save to first new HTTP response (s, log)")
            print(f"wrote {plot_path}")
        except ImportError:
            print("matplotlib is not installed: no plot", file=sys.stderr)
    return 1 if any(not r.samples for r in results.values()) else 0


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM takes the Ctrl-C path, so the finally blocks kill the watchers' process groups."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="where to write the results (required but for --web)")
    parser.add_argument("--runs", type=int, default=10, help="edits per tool (default 10)")
    parser.add_argument("--plot", type=Path, help="PNG plot of the distributions (default: latency.png next to --json)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {', '.join(TOOLS)} (default all)")
    parser.add_argument("--web", action="store_true",
                        help="web mode: ASP.NET Core apps, save to the first HTTP response with the new body")
    args = parser.parse_args(argv)
    if args.json is None and not args.web:
        parser.error("the following arguments are required: --json")
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    unknown = [n for n in names if n not in TOOLS]
    if unknown or not names:
        parser.error(f"--tools: unknown {unknown}; choose from {', '.join(TOOLS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if "hotreload" in names and importlib.util.find_spec("hotreload") is None:
        parser.error(f"hotreload is not importable by {sys.executable}; run this with the project's venv python")
    signal.signal(signal.SIGTERM, _interrupt)
    if args.web:
        return main_web(args, names)
    tools = [TOOLS[n] for n in names]
    plot_path = args.plot or args.json.with_name("latency.png")
    print(f"{args.runs} edit(s) per tool, round-robin; app ticks every {INTERVAL_MS} ms", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="hotreload-latency-") as tmp:
            results, outputs = run(tools, args.runs, Path(tmp))
    except KeyboardInterrupt:
        print("interrupted; watchers stopped", file=sys.stderr)
        return 130
    doc = summarize(tools, args.runs, results, outputs)
    print_report(tools, results, doc)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    title = (f"edit-to-running latency, {args.runs} edits per tool ({doc['machine']['cpu_count']} CPUs, "
             f".NET SDK {doc['machine']['dotnet_version']})")
    try:
        plot(tools, results, plot_path, title)
        print(f"wrote {plot_path}")
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
    # failed edits are data (reported above); a tool that never measured anything is an error
    return 1 if any(not r.samples for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
