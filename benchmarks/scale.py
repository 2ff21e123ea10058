"""How the cost of one hot reload grows with the size of the project.

For each size (number of generated F# functions, see fsgen.py) this builds a fresh project, starts an in-process
`Session` on it (no entry point, no watcher), then makes a few single-function edits, each changing one
constant in one function body, and reloads after each. Every edit must come back `applied` and the function,
called in the running assembly, must return the value the edit implies; otherwise the benchmark fails.

Measured per size (median over the edits): the build, diff + delta (the part hotreload itself computes, which
should stay flat as the assembly grows: one edited method should cost the same in 10 or 5,000 functions),
ApplyUpdate, and the verification; plus the first build and the number of MethodDef rows in the assembly.

    .venv/bin/python benchmarks/scale.py --json scale.json [--sizes 10,100,1000,5000] [--edits 3] [--plot scale.png]
    .venv/bin/python benchmarks/scale.py --quick --json scale.json      # CI: sizes 10 and 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchutil import BuildLog, QuietReporter, make_session, memory_sample, provenance
from fsgen import ARITH, MATCH, PIPELINE, GeneratedProject

from hotreload.runtime import start_runtime
from hotreload.session import OutcomeKind

DEFAULT_SIZES = (10, 100, 1000, 5000)
QUICK_SIZES = (10, 100)
STAGES = ("build", "diff", "delta", "apply", "verify")
# Edit k changes a function of shape EDIT_SHAPES[k % 3] in the last, middle, then first file, so the median
# covers a plain method, a closure's Invoke (the lambda in a pipeline) and a match, and several places.
EDIT_SHAPES = (ARITH, PIPELINE, MATCH)


def method_count(dll: str) -> int:
    """MethodDef rows in the assembly, read with System.Reflection.Metadata (independent of hotreload's reader)."""
    import clr

    clr.AddReference("System.Reflection.Metadata")
    from System.IO import File  # type: ignore[import-not-found]
    from System.Reflection.Metadata import PEReaderExtensions  # type: ignore[import-not-found]
    from System.Reflection.PortableExecutable import PEReader  # type: ignore[import-not-found]

    pe = PEReader(File.OpenRead(dll))
    try:
        return int(PEReaderExtensions.GetMetadataReader(pe).MethodDefinitions.Count)
    finally:
        pe.Dispose()


def measure_size(functions: int, edits: int, root: Path, dotnet_build: bool = False) -> dict[str, Any]:
    """Generate, start and edit one project of `functions` functions; returns its point (medians) and raw edits."""
    project = GeneratedProject(root / f"gen{functions}", functions, name=f"Gen{functions}")
    project.write()
    reporter = QuietReporter()
    session = make_session(project.project, reporter, dotnet_build)
    builds = BuildLog(session)
    t = time.perf_counter()
    session.start()
    start_s = time.perf_counter() - t
    first_build = builds.since(0)
    app = session.app
    assert app is not None
    methods = method_count(app.path)
    # the generator's model and the compiled code agree before any edit
    for shape in EDIT_SHAPES:
        fn = project.pick(shape, project.file_count // 2)
        x = project.probe(fn)
        got, want = app.call(fn.qualified, x), project.expected(fn.index, x)
        assert got == want, f"{fn.qualified}({x}) = {got!r} before any edit, the model says {want!r}"

    files = [project.file_count - 1, project.file_count // 2, 0]
    records: list[dict[str, Any]] = []
    try:
        for k in range(edits):
            fn = project.pick(EDIT_SHAPES[k % len(EDIT_SHAPES)], files[k % len(files)])
            want = project.edit_constant(fn)
            mark = builds.mark()
            t = time.perf_counter()
            outcome = session.reload()
            wall = time.perf_counter() - t
            if outcome.kind != OutcomeKind.APPLIED:
                detail = [str(r) for r in outcome.refusals] + [str(e) for e in outcome.errors] + [outcome.message]
                raise AssertionError(f"{functions} functions, edit {k + 1} ({fn.qualified}): {outcome.kind} "
                                     f"{detail}\n" + "\n".join(reporter.lines[-10:]))
            x = project.probe(fn)
            got = app.call(fn.qualified, x)
            assert got == want, f"{fn.qualified}({x}) = {got!r} after generation {outcome.generation}, want {want!r}"
            records.append({"function": fn.qualified, "shape": fn.shape, "generation": outcome.generation,
                            "methods_changed": len(outcome.methods), "build_via": builds.via_since(mark),
                            "wall_s": wall,
                            **{f"{s}_s": outcome.timings.get(s, 0.0) for s in STAGES},
                            "timings_s": dict(outcome.timings)})
            print(f"  {functions:>5} functions, edit {k + 1}: {fn.qualified} ({fn.shape}) applied as generation "
                  f"{outcome.generation}: " + ", ".join(f"{s} {v * 1000:.0f} ms" for s, v in outcome.timings.items())
                  + f" (build via {records[-1]['build_via']})", flush=True)
        memory = memory_sample()
    finally:
        session.stop()

    def median(stage: str) -> float:
        return statistics.median(r[f"{stage}_s"] for r in records)

    return {
        "functions": functions,
        "files": project.file_count,
        "methods_in_assembly": methods,
        "initial_build_s": round(first_build[0].seconds if first_build else start_s, 3),
        "start_s": round(start_s, 3),
        "build_s": round(median("build"), 3),
        "diff_ms": round(median("diff") * 1000, 1),
        "delta_ms": round(median("delta") * 1000, 1),
        "diff_delta_ms": round(statistics.median(r["diff_s"] + r["delta_s"] for r in records) * 1000, 1),
        "apply_ms": round(median("apply") * 1000, 1),
        "verify_ms": round(median("verify") * 1000, 1),
        "reload_s": round(statistics.median(r["wall_s"] for r in records), 3),
        "build_via": sorted({r["build_via"] for r in records}),
        "rss_mb": round(memory["rss_mb"], 1),
        "worker_rss_mb": round(memory["children_rss_mb"], 1) if memory["children"] else None,
        "edits": records,
    }


def print_table(points: Sequence[dict[str, Any]]) -> None:
    head = (f"{'functions':>9} {'methods':>8} {'1st build':>10} {'build':>8} {'diff':>8} {'delta':>8} "
            f"{'diff+delta':>11} {'apply':>8} {'verify':>8}")
    print(head)
    print("-" * len(head))
    for p in points:
        print(f"{p['functions']:>9} {p['methods_in_assembly']:>8} {p['initial_build_s']:>9.1f}s {p['build_s']:>7.2f}s "
              f"{p['diff_ms']:>6.1f}ms {p['delta_ms']:>6.1f}ms {p['diff_delta_ms']:>9.1f}ms {p['apply_ms']:>6.1f}ms "
              f"{p['verify_ms']:>6.1f}ms")


def plot(points: Sequence[dict[str, Any]], path: Path) -> None:
    """Build time and hotreload's own time against size, on log-log axes (matplotlib, only when asked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["functions"] for p in points]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(xs, [p["build_s"] * 1000 for p in points], "o-", label="build (per edit)")
    ax.plot(xs, [p["diff_delta_ms"] for p in points], "s-", label="diff + delta")
    ax.plot(xs, [p["apply_ms"] for p in points], "^-", label="ApplyUpdate")
    ax.plot(xs, [p["verify_ms"] for p in points], "v-", label="verify")
    ax.axhline(100, color="grey", linestyle=":", label="100 ms target (diff + delta)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("functions in the project")
    ax.set_ylabel("milliseconds (median of edits)")
    ax.set_title("hotreload: one-function edit vs. project size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--sizes", help="comma-separated function counts (default 10,100,1000,5000)")
    parser.add_argument("--edits", type=int, default=3, help="single-function edits per size (default 3)")
    parser.add_argument("--quick", action="store_true", help="sizes 10 and 100 only (CI)")
    parser.add_argument("--plot", type=Path, help="also write a PNG plot here (needs matplotlib)")
    parser.add_argument("--dotnet-build", action="store_true",
                        help="rebuild with `dotnet build` on every save (no warm compiler), for comparison")
    parser.add_argument("--keep", type=Path, help="generate the projects here and keep them (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    else:
        sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.edits < 1:
        parser.error("--edits must be at least 1")

    info = start_runtime()  # once per process, so its cost is not charged to the first size
    if not info.supported:
        print("hot reload is not supported by this runtime", file=sys.stderr)
        return 2
    print(f".NET {info.version}; sizes {sizes}, {args.edits} edit(s) each", flush=True)
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hotreload-scale-") as tmp:
        root = args.keep or Path(tmp)
        for n in sizes:
            print(f"{n} functions: generating, building, starting...", flush=True)
            points.append(measure_size(n, args.edits, root, args.dotnet_build))
            p = points[-1]
            print(f"  started in {p['start_s']:.1f} s (first build {p['initial_build_s']:.1f} s), "
                  f"{p['methods_in_assembly']} methods in {p['files']} file(s)", flush=True)
    print()
    print_table(points)
    result = {"benchmark": "scale", "edits_per_size": args.edits, "median_of": args.edits,
              "run": provenance(info.version), "points": points}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    if args.plot:
        plot(points, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
