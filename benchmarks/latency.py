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
restart), then 0.5 s. The 20 ms tick interval bounds the resolution.

To show where the time goes, the JSON also has the medians of the stages hotreload reports (`[hotreload]
applied generation N: ... (build 3.48 s, diff 5 ms, delta 0 ms, apply 3 ms, verify 1 ms)`), and for dotnet watch
whether it applied deltas or restarted the app, with the rebuild and delta times it prints. Only stdout is read:
nothing here depends on hotreload's internals.

Every watcher runs in its own process group, killed as a whole on exit (also on errors and Ctrl-C); a final
`ps` check reports (and kills) anything of ours still running.

    .venv/bin/python benchmarks/latency.py --json benchmarks/out/latency.json [--runs 10] [--plot latency.png]
    .venv/bin/python benchmarks/latency.py --json out.json --runs 3 --tools hotreload      # CI: a quick subset
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INTERVAL_MS = 20
EDIT_TIMEOUT_S = 60.0
START_TIMEOUT_S = 300.0  # three first builds at once on a small machine
SETTLE_S = 0.5
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


class Watcher:
    """A watcher subprocess in its own process group, its stdout lines timestamped on arrival by a thread."""

    def __init__(self, tool: Tool, workdir: Path, env: dict[str, str]) -> None:
        self.tool = tool
        self.workdir = workdir
        self.lines: list[tuple[float, str]] = []
        self.changed = threading.Condition()
        self.done = False
        self.proc = subprocess.Popen(tool.command(workdir / tool.project), cwd=workdir, env=env,
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


def environment(tool: Tool) -> dict[str, str]:
    """The caller's environment, quiet; dotnet watch must set DOTNET_MODIFIABLE_ASSEMBLIES itself."""
    env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1", PYTHONUNBUFFERED="1")
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
    return record


def run(tools: Sequence[Tool], runs: int, root: Path) -> tuple[dict[str, Result], dict[str, list[str]]]:
    """Start every watcher, then edit round-robin; returns the results and every tool's output lines."""
    results = {t.name: Result() for t in tools}
    watchers: list[Watcher] = []
    outputs: dict[str, list[str]] = {}
    try:
        for tool in tools:
            watchers.append(Watcher(tool, copy_app(tool, root), environment(tool)))
        print(f"started {', '.join(t.name for t in tools)}; waiting for first builds and ticks...", flush=True)
        live = [w for w in watchers if wait_ready(w)]
        for w in watchers:
            if w not in live:
                results[w.tool.name].failures = runs
        originals = {w.tool.name: (w.workdir / w.tool.source).read_text() for w in live}
        time.sleep(1.0)  # let the last one to get ready finish its start-up work before timing anything
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


def summarize(tools: Sequence[Tool], runs: int, results: dict[str, Result],
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


def print_table(tools: Sequence[Tool], results: dict[str, Result]) -> None:
    head = f"{'tool':<22} {'n':>3} {'fail':>4} {'p50':>8} {'p90':>8} {'min':>8} {'max':>8}"
    print(head)
    print("-" * len(head))
    for tool in tools:
        r = results[tool.name]
        cells = [percentile(r.samples, 50), percentile(r.samples, 90), min(r.samples, default=None),
                 max(r.samples, default=None)]
        shown = " ".join(f"{'-':>8}" if v is None else f"{v:>7.3f}s" for v in cells)
        print(f"{tool.name:<22} {len(r.samples):>3} {r.failures:>4} {shown}")


def plot(tools: Sequence[Tool], results: dict[str, Result], path: Path, title: str) -> None:
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
    ax.set_ylabel("save to first new output line (s, log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM takes the Ctrl-C path, so the finally blocks kill the watchers' process groups."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--runs", type=int, default=10, help="edits per tool (default 10)")
    parser.add_argument("--plot", type=Path, help="PNG plot of the distributions (default: latency.png next to --json)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {', '.join(TOOLS)} (default all)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    unknown = [n for n in names if n not in TOOLS]
    if unknown or not names:
        parser.error(f"--tools: unknown {unknown}; choose from {', '.join(TOOLS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if "hotreload" in names and importlib.util.find_spec("hotreload") is None:
        parser.error(f"hotreload is not importable by {sys.executable}; run this with the project's venv python")
    tools = [TOOLS[n] for n in names]
    plot_path = args.plot or args.json.with_name("latency.png")

    signal.signal(signal.SIGTERM, _interrupt)
    print(f"{args.runs} edit(s) per tool, round-robin; app ticks every {INTERVAL_MS} ms", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="hotreload-latency-") as tmp:
            results, outputs = run(tools, args.runs, Path(tmp))
    except KeyboardInterrupt:
        print("interrupted; watchers stopped", file=sys.stderr)
        return 130
    doc = summarize(tools, args.runs, results, outputs)
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
