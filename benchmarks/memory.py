"""Memory held by a long hot reload session: does every generation leave something behind?

Starts an in-process `Session` on a temporary copy of sample_app/ (entry point not run), then applies N
generations, each a real body edit of Greeting.fs (`let multiplier () = <generation>`), and checks after each
that `SampleApp.Greeting.multiplier` returns the new value, that its unedited caller `score` sees it, and that
the app's MetadataUpdateHandler ran once per generation (its printing is sent to TextWriter.Null unless
--app-output).

Measured: resident set size of this process (Python + hosted CoreCLR + the app; plus, separately, any child
process such as a compiler worker) after generation 1 and after generation N, each sampled after Python's
gc.collect() and .NET's GC.Collect(), and the growth between the two; also the managed heap size, an RSS curve
every few generations, and the per-stage timing medians.

    .venv/bin/python benchmarks/memory.py --json memory.json [--generations 100]
    .venv/bin/python benchmarks/memory.py --quick --json memory.json      # CI: 10 generations
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchutil import BuildLog, QuietReporter, make_session, memory_sample, provenance

from hotreload.runtime import start_runtime
from hotreload.session import OutcomeKind

SAMPLE_APP = Path(__file__).resolve().parent.parent / "sample_app"
MULTIPLIER = re.compile(r"^let multiplier \(\) = \d+$", re.MULTILINE)
STAGES = ("build", "diff", "delta", "apply", "verify")


def copy_sample_app(dest: Path) -> Path:
    """A private copy of sample_app (never the repo's own), without any build output."""
    shutil.copytree(SAMPLE_APP, dest, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    return dest / "SampleApp.fsproj"


def run(generations: int, every: int, folder: Path, dotnet_build: bool = False, quiet_app: bool = True
        ) -> dict[str, Any]:
    """Start a session on a copy of sample_app, apply `generations` edits, and sample memory along the way."""
    project = copy_sample_app(folder / "sample_app")
    greeting = project.parent / "Greeting.fs"
    source = greeting.read_text()
    assert MULTIPLIER.search(source), "sample_app/Greeting.fs no longer has `let multiplier () = <int>`"
    reporter = QuietReporter()
    session = make_session(project, reporter, dotnet_build)
    builds = BuildLog(session)
    t = time.perf_counter()
    session.start()
    start_s = time.perf_counter() - t
    app = session.app
    assert app is not None
    if quiet_app:  # the app's update handler prints a line per update; keep the benchmark's output readable
        from System import Console  # type: ignore[import-not-found]
        from System.IO import TextWriter  # type: ignore[import-not-found]

        Console.SetOut(TextWriter.Null)
    at_start = memory_sample()
    curve: list[dict[str, Any]] = [{"generation": 0, **{k: v for k, v in at_start.items() if k != "children"}}]
    samples: dict[int, dict[str, Any]] = {}
    timings: list[dict[str, float]] = []
    via: dict[str, int] = {}
    try:
        for gen in range(1, generations + 1):
            greeting.write_text(MULTIPLIER.sub(f"let multiplier () = {gen}", source))
            mark = builds.mark()
            outcome = session.reload()
            path = builds.via_since(mark)
            via[path] = via.get(path, 0) + 1
            if outcome.kind != OutcomeKind.APPLIED:
                detail = [str(r) for r in outcome.refusals] + [str(e) for e in outcome.errors] + [outcome.message]
                raise AssertionError(f"generation {gen}: {outcome.kind} {detail}\n" + "\n".join(reporter.lines[-10:]))
            got = app.call("SampleApp.Greeting.multiplier")
            assert got == gen, f"generation {gen}: multiplier() = {got!r}"
            score = app.call("SampleApp.Greeting.score", 3)
            assert score == 3 * gen, f"generation {gen}: score 3 = {score!r}, want {3 * gen}"
            updates = app.call("SampleApp.ReloadHandler.Updates")  # the app's MetadataUpdateHandler ran each time
            assert updates == gen, f"generation {gen}: ReloadHandler.Updates = {updates!r}"
            timings.append(dict(outcome.timings))
            if gen in (1, generations) or gen % every == 0:
                s = memory_sample()
                samples[gen] = s
                curve.append({"generation": gen, **{k: v for k, v in s.items() if k != "children"}})
                print(f"  generation {gen:>4}: rss {s['rss_mb']:.1f} MB, managed heap {s['managed_heap_mb']:.1f} MB"
                      + (f", children {s['children_rss_mb']:.1f} MB" if s["children"] else ""), flush=True)
    finally:
        session.stop()

    first, last = samples[1], samples[generations]
    medians = {f"{stage}_ms": round(statistics.median(t.get(stage, 0.0) for t in timings) * 1000, 1)
               for stage in STAGES}
    medians["diff_delta_ms"] = round(statistics.median(t.get("diff", 0.0) + t.get("delta", 0.0) for t in timings)
                                     * 1000, 1)
    worker = last["children_rss_mb"] if last["children"] else None
    return {
        "benchmark": "memory",
        "generations": generations,
        "start_s": round(start_s, 2),
        "rss_at_start_mb": round(at_start["rss_mb"], 1),
        "rss_after_1_mb": round(first["rss_mb"], 1),
        "rss_after_n_mb": round(last["rss_mb"], 1),
        "growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
        "growth_per_generation_kb": round((last["rss_mb"] - first["rss_mb"]) * 1024 / max(1, generations - 1), 1),
        "managed_heap_after_1_mb": round(first["managed_heap_mb"], 1),
        "managed_heap_after_n_mb": round(last["managed_heap_mb"], 1),
        "worker_rss_mb": round(worker, 1) if worker is not None else None,
        "worker_rss_after_1_mb": round(first["children_rss_mb"], 1) if first["children"] else None,
        "worker_growth_mb": round(last["children_rss_mb"] - first["children_rss_mb"], 1)
        if first["children"] and last["children"] else None,
        "children_after_n": last["children"],
        "builds_via": via,
        "timings_median_ms": medians,
        "timings_max_ms": {f"{stage}_ms": round(max(t.get(stage, 0.0) for t in timings) * 1000, 1)
                           for stage in STAGES},
        "curve": [{k: round(v, 2) if isinstance(v, float) else v for k, v in point.items()} for point in curve],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--generations", type=int, help="generations to apply (default 100)")
    parser.add_argument("--quick", action="store_true", help="10 generations (CI)")
    parser.add_argument("--dotnet-build", action="store_true",
                        help="rebuild with `dotnet build` on every save (no warm compiler), for comparison")
    parser.add_argument("--app-output", action="store_true", help="let the app print (its update handler's lines)")
    parser.add_argument("--every", type=int, default=10, help="sample RSS every this many generations (default 10)")
    args = parser.parse_args(argv)
    generations = args.generations or (10 if args.quick else 100)
    if generations < 2:
        parser.error("--generations must be at least 2 (growth is measured from generation 1)")

    info = start_runtime()
    if not info.supported:
        print("hot reload is not supported by this runtime", file=sys.stderr)
        return 2
    print(f".NET {info.version}; {generations} generations of sample_app/Greeting.fs", flush=True)
    with tempfile.TemporaryDirectory(prefix="hotreload-memory-") as tmp:
        result = run(generations, max(1, args.every), Path(tmp), args.dotnet_build, not args.app_output)
    result["run"] = provenance(info.version)
    worker = result["worker_rss_mb"]
    print(f"\nRSS after generation 1: {result['rss_after_1_mb']:.1f} MB; after {generations}: "
          f"{result['rss_after_n_mb']:.1f} MB; growth {result['growth_mb']:+.1f} MB "
          f"({result['growth_per_generation_kb']:+.1f} KB per generation)")
    print(f"managed heap: {result['managed_heap_after_1_mb']:.1f} -> {result['managed_heap_after_n_mb']:.1f} MB"
          + (f"; worker RSS {result['worker_rss_after_1_mb']} -> {worker:.1f} MB" if worker is not None
             else "; no child processes"))
    print("median per generation: " + ", ".join(f"{k[:-3]} {v:.0f} ms" for k, v in result["timings_median_ms"].items()))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
