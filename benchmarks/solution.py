"""Save to running for a library edit in a solution, next to an edit in a one-project app (issue 12's target: within
1.5x).

Both run under `hotreload watch` exactly as a user runs it, one after the other (never at once: 2 cores):

- `single`: sample_app/ (one project); each edit rewrites the greeting, "Hello, %s" -> "Hello k, %s", and the
  clock stops at the first tick line with "Hello k, F#";
- `library`: tests/solution_app/ (App -> Left, Right -> Core, plus a C# library), watched through Solution.slnx;
  each edit rewrites Core's `twice` (`x * 2` -> `x * k`, k a digit: a body edit at the bottom of the diamond), and
  the clock stops at the first loop line whose `core:left` value is k times its tick;
- `app`: the same solution, an edit of the app's own report format, for comparison.

Latency is from right after the write to the arrival of that stdout line (the apps print every 20 ms). Each
tool's first edit is a warm-up (the first save may wait for the compiler's warm-up begun at start), recorded and
kept out of the percentiles, as in latency.py's web mode.

    .venv/bin/python benchmarks/solution.py --runs 8 [--json out.json]
    .venv/bin/python benchmarks/solution.py --runs 3 --json out.json          # CI
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency import EDIT_TIMEOUT_S, SETTLE_S, START_TIMEOUT_S, Watcher, environment, leftovers, percentile

REPO = Path(__file__).resolve().parents[1]
INTERVAL_MS = 20
TARGET_RATIO = 1.5


@dataclass
class Case:
    name: str
    label: str
    folder: Path  # copied before use
    target: str  # what `hotreload watch` is given, relative to the copy
    source: str  # the file edited, relative to the copy
    args: list[str]  # the app's own arguments
    edit: Callable[[str, int], str]  # original text, edit number -> new text
    shows: Callable[[str, int], bool]  # a stdout line, edit number -> whether it comes from the edited code
    dotnet_watch: bool = False


def _left_is(line: str, k: int) -> bool:
    found = re.search(r"tick (\d+) \| core:left (\d+) \|", line)
    return found is not None and int(found[2]) == _factor(k) * int(found[1])


def _factor(k: int) -> int:
    return 3 + k % 7  # 3..9: one digit, so the edit never changes the length of the line


CASES = {c.name: c for c in (
    Case("single", "one-project app (sample_app, Greeting.fs)", REPO / "sample_app", "SampleApp.fsproj",
         "Greeting.fs", ["--interval-ms", str(INTERVAL_MS)],
         lambda text, k: text.replace("Hello, ", f"Hello {k}, ", 1),
         lambda line, k: f"Hello {k}, F#" in line and "tick" in line),
    Case("library", "library at the bottom of a 4-project solution (Core.fs)", REPO / "tests" / "solution_app",
         "Solution.slnx", "Core/Core.fs", [str(INTERVAL_MS)],
         lambda text, k: text.replace("x * 2", f"x * {_factor(k)}", 1), _left_is),
    Case("app", "the app of the same solution (Program.fs)", REPO / "tests" / "solution_app", "Solution.slnx",
         "App/Program.fs", [str(INTERVAL_MS)],
         lambda text, k: text.replace('"tick %d', f'"tick{k} %d', 1),
         lambda line, k: line.startswith(f"tick{k} ")),
)}


def measure(case: Case, runs: int, root: Path) -> dict[str, Any]:
    """Start `hotreload watch` on a copy, make `runs` + 1 edits (the first a warm-up), stop it."""
    work = root / case.name
    shutil.copytree(case.folder, work, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    argv = [sys.executable, "-m", "hotreload", "watch", str(work / case.target), "--", *case.args]
    watcher = Watcher(case, work, environment(case, root), argv)
    edits: list[dict[str, Any]] = []
    try:
        if watcher.wait_for(lambda line: "[hotreload] ready" in line or "restart policy" in line, 0,
                            START_TIMEOUT_S) is None or watcher.wait_for(lambda line: "tick" in line, 0, 60) is None:
            raise SystemExit(f"{case.name}: not ready after {START_TIMEOUT_S:.0f} s; last lines:\n{watcher.tail()}")
        time.sleep(1.0)
        original = (work / case.source).read_text()
        for k in range(runs + 1):
            start = watcher.mark()
            (work / case.source).write_text(case.edit(original, k))
            saved = time.perf_counter()
            seen = watcher.wait_for(lambda line: case.shows(line, k), start, EDIT_TIMEOUT_S)  # noqa: B023 (waited here)
            applied = watcher.wait_for(lambda line: "[hotreload] applied" in line, start, EDIT_TIMEOUT_S)
            record: dict[str, Any] = {"edit": k, "warm_up": k == 0,
                                      "latency_s": round(seen[0] - saved, 4) if seen else None,
                                      "status": applied[1] if applied else None}
            edits.append(record)
            shown = "FAILED" if seen is None else f"{record['latency_s']:.3f} s"
            print(f"  {case.name:<8} edit {k}{' (warm-up)' if k == 0 else ''}: {shown}", flush=True)
            time.sleep(SETTLE_S)
    finally:
        watcher.stop()
        leftovers(root, [watcher.pgid])
    samples = [e["latency_s"] for e in edits if not e["warm_up"] and e["latency_s"] is not None]
    return {"label": case.label, "edits": edits, "failures": sum(1 for e in edits if e["latency_s"] is None),
            "p50_s": percentile(samples, 50), "p90_s": percentile(samples, 90)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="timed edits per case (after one warm-up edit)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--cases", default="single,library,app")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hotreload-solution-bench-") as tmp:
        for name in args.cases.split(","):
            results[name] = measure(CASES[name], args.runs, Path(tmp))
    print(f"\n{'case':<10}{'p50':>9}{'p90':>9}  failed  what")
    for name, r in results.items():
        p50, p90 = (f"{v:.3f}s" if v is not None else "-" for v in (r["p50_s"], r["p90_s"]))
        print(f"{name:<10}{p50:>9}{p90:>9}  {r['failures']:>6}  {r['label']}")
    doc: dict[str, Any] = {"runs": args.runs, "interval_ms": INTERVAL_MS, "cases": results}
    single, library = results.get("single", {}).get("p50_s"), results.get("library", {}).get("p50_s")
    if single and library:
        doc["library_over_single_p50"] = round(library / single, 2)
        print(f"library edit p50 / one-project edit p50 = {library / single:.2f} (target <= {TARGET_RATIO})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
    return 1 if any(r["failures"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
