"""Where a warm compile's time goes: fsc's own phase table (`--times`) for one-function edits, per project size.

`HOTRELOAD_KEEP_OPTIMIZATION=0` measures hotreload's compile with the compiler's own optimization phase (main3) instead
of the one that keeps each file's optimization (hotreload.fsc_optimize).

For each project this runs one `dotnet build` (its time is the project's first build), asks MSBuild for fsc's
arguments, starts hotreload's compiler worker, compiles twice to warm it, then makes body-only edits in the first,
a middle and the last file, compiling after each with `--times`. Printed: per project and edit place, the median
seconds of each phase (import of references, parse, type check, optimization, IL generation, writing) and of the
whole compile as the worker saw it.

Projects: sample_app; fsgen's flat projects of 1,000 and 5,000 functions; fslayered's 100 files with cross-file
types and opens (a real project's shape): one chain of files (every file opens the one before it), and feature
groups of 10 files over a core group (an edit is seen by the rest of its feature only).

    .venv/bin/python benchmarks/phases.py --json phases.json [--edits 3] [--only sample,layered100]
    .venv/bin/python benchmarks/phases.py --quick --json phases.json    # CI: sample_app and 20 layered files
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchutil import provenance
from fsgen import ARITH, GeneratedProject
from fslayered import LayeredProject

from hotreload.build import Builder
from hotreload.compiler import Worker, compiler_arguments
from hotreload.processes import Owner

ROOT = Path(__file__).resolve().parent.parent
# The phases of both compile paths, grouped into the stages the issue names: fsc's own `--times` table (the public
# FSharpChecker.Compile) and hotreload.fsc_driver's steps (imports kept)
STAGES = {
    "flags": ("flags",),
    "import": ("Import mscorlib+FSharp.Core", "Import non-system references", "import framework",
               "import references"),
    "parse": ("Parse inputs", "parse"),
    "typecheck": ("Typecheck", "typecheck"),
    "interface+opt": ("Typechecked", "Write Interface File", "Write XML doc signatures", "Write XML docs",
                      "Encode Interface Data", "Optimizations", "Ending Optimizations", "Encoding OptData",
                      "TailCall Checks", "attributes", "interface data, optimization", "signature data",
                      "optimization", "optimization data"),
    # of which the optimizer's fold over the files alone (fsc's "Optimizations" step; hotreload.fsc_optimize's
    # "optimization", which optimizes only from the first file type-checked again)
    "optimize": ("Optimizations", "optimization"),
    "ilgen": ("TAST -> IL", "Ilx -> IL", "IL"),
    "write": ("Write .NET Binary", "static linking", "write"),
}


class Target:
    """A project to measure and how to make its edits: `edit(place, n)` changes one function body in the first,
    middle or last file (place 0, 1, 2), the n-th time."""

    def __init__(self, label: str, project: Path, files: int, edit: Callable[[int, int], object]) -> None:
        self.label, self.project, self.files, self.edit = label, project, files, edit


def sample_target(root: Path) -> Target:
    folder = root / "sample_app"
    shutil.copytree(ROOT / "sample_app", folder, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    greeting = folder / "Greeting.fs"
    original = greeting.read_text()

    def edit(place: int, n: int) -> None:
        greeting.write_text(original.replace("tick * multiplier ()", f"tick * multiplier () + {n + 1}"))

    return Target("sample_app", folder / "SampleApp.fsproj", 3, edit)


def flat_target(root: Path, functions: int) -> Target:
    gen = GeneratedProject(root / f"gen{functions}", functions, name=f"Gen{functions}")
    gen.write()
    files = [0, gen.file_count // 2, gen.file_count - 1]
    return Target(f"fsgen {functions} functions", gen.project, gen.file_count,
                  lambda place, n: gen.edit_constant(gen.pick(ARITH, files[place])))


def layered_target(root: Path, files: int, group: int = 0) -> Target:
    gen = LayeredProject(root / f"layered{files}{'g' if group else ''}", files, group=group)
    gen.write()
    where = [0, files // 2, files - 1]
    label = f"{files} layered files" + (f", features of {group}" if group else "")
    return Target(label, gen.project, files, lambda place, n: gen.edit_score(where[place]))


PATHS = ("public", "kept imports")
"""The public FSharpChecker.Compile (HOTRELOAD_KEEP_IMPORTS=0, phases from fsc's `--times`) and hotreload's
compile with the imports kept (hotreload.fsc_driver, phases from its own steps)."""


def measure(target: Target, edits: int, paths: Sequence[str] = PATHS) -> dict[str, Any]:
    builder = Builder(target.project)
    result = builder.build()
    if not result.ok:
        raise SystemExit(f"{target.label}: the first build failed: {result.errors[:3]}")
    row: dict[str, Any] = {"project": target.label, "files": target.files, "first_build_s": round(result.seconds, 2)}
    owner = Owner()
    try:
        args = compiler_arguments(builder, owner)
        for path in paths:
            os.environ["HOTRELOAD_KEEP_IMPORTS"] = "0" if path == "public" else "1"
            worker = Worker(target.project.parent, builder.work_dir / "worker.log", owner)
            try:
                if worker.driver != path:
                    raise SystemExit(f"asked for the {path} compile, the worker has {worker.driver}: {worker.note}")
                row[path] = _edits(target, worker, [*args, "--times"] if path == "public" else args, edits, path)
            finally:
                worker.close()
    finally:
        os.environ.pop("HOTRELOAD_KEEP_IMPORTS", None)
        owner.close()
    return row


def _edits(target: Target, worker: Worker, args: list[str], edits: int, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in range(3):  # warm: what a session's warm-up does, then one save (a project's first compile that
        # type-checks only some files is also compared with a full compile: hotreload.compile_worker's spot check)
        if n == 2:
            target.edit(2, 5000 + 1000 * (path == "public"))
        reply = worker.compile(args)
        assert reply["ok"], reply
    for place, name in enumerate(("first", "middle", "last")):
        samples: list[dict[str, float]] = []
        for n in range(edits):
            target.edit(place, 1000 * (path == "public") + 10 * place + 100 * n + 1)
            t = time.perf_counter()
            reply = worker.compile(args)
            wall = time.perf_counter() - t
            if not reply["ok"]:
                raise SystemExit(f"{target.label}: compile failed: {reply['errors'][:3]} {reply['failure']}")
            phases: dict[str, float] = {}
            for phase, seconds in reply["phases"]:
                phases[phase] = phases.get(phase, 0.0) + seconds
            sample = {stage: sum(phases.get(p, 0.0) for p in names) for stage, names in STAGES.items()}
            sample["compile"] = wall
            optimized = reply.get("optimization")  # files optimized (hotreload.fsc_optimize), else every file
            sample["optimized_files"] = float(optimized["optimized"]) if optimized else -1.0  # -1: the compiler's own
            sample["spot_checked"] = float(bool(reply.get("spot_checked")))
            sample["files_checked"] = float((reply.get("typecheck") or {}).get("checked", target.files))
            samples.append(sample)
        out[name] = {k: round(statistics.median(s[k] for s in samples), 3) for k in samples[0]}
        print(f"  {target.label}, {path}, edit in the {name} file: "
              + ", ".join(f"{k} {v:.3f}" for k, v in out[name].items()), flush=True)
    return out


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    cols = [*STAGES, "compile", "optimized_files"]
    print(f"\n{'project':<22} {'compile path':<13} {'edit in':<7} {'build':>6} " + " ".join(f"{c:>13}" for c in cols))
    for row in rows:
        for path in PATHS:
            for place in ("first", "middle", "last"):
                if path in row:
                    print(f"{row['project']:<22} {path:<13} {place:<7} {row['first_build_s']:>6.2f} "
                          + " ".join(f"{row[path][place][c]:>13.3f}" for c in cols))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--edits", type=int, default=3, help="edits per place (default 3)")
    parser.add_argument("--quick", action="store_true", help="sample_app and 20 layered files, 1 edit each (CI)")
    parser.add_argument("--only", help="comma-separated: sample, gen1000, gen5000, layered100, features100")
    parser.add_argument("--keep", type=Path, help="generate the projects here and keep them")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated compile paths (default {','.join(PATHS)})")
    opts = parser.parse_args(argv)
    root = opts.keep or Path(tempfile.mkdtemp(prefix="hotreload-phases-"))
    root.mkdir(parents=True, exist_ok=True)
    makers: dict[str, Callable[[], Target]] = {
        "sample": lambda: sample_target(root),
        "gen1000": lambda: flat_target(root, 1000),
        "gen5000": lambda: flat_target(root, 5000),
        "layered100": lambda: layered_target(root, 100),
        "features100": lambda: layered_target(root, 100, group=10),
    }
    if opts.quick:
        makers = {"sample": makers["sample"], "layered20": lambda: layered_target(root, 20)}
        opts.edits = 1
    elif opts.only:
        makers = {k: makers[k] for k in opts.only.split(",")}
    rows: list[dict[str, Any]] = []
    try:
        for key, make in makers.items():
            print(f"{key}:", flush=True)
            rows.append(measure(make(), opts.edits, opts.paths.split(",")))
    finally:
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    opts.json.write_text(json.dumps({"provenance": provenance("dotnet"), "stages": STAGES, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
