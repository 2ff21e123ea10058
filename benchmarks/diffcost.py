"""What a save costs after the compile: reading the new build, comparing it with the running one, writing the delta.

Generates a fsgen project of N functions, builds it three times with `dotnet build` (as it is, after a body-only
edit of one function in the last file, after a function added to the last file), then times in this process, for
each edit, `load_build` + `diff_builds` + `build_delta` (+ the module-value plan, counted in the session's "diff")
as a session makes its saves: the edit saved, undone, saved again, each compared with what the save before left
running (see `measure`). Printed: the medians over `--repeats` rounds (the first two dropped:
warm-up), per stage and in all (the issue's "diff+delta"); the function added twice: with the files before the
last carried, as a session's saves after its first are, and with nothing carried (its first save, or an edit of
the first file: every entity compared).

    .venv/bin/python benchmarks/diffcost.py --functions 5000 --json benchmarks/results/diffcost.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchutil import provenance
from fsgen import GeneratedProject

from hotreload.baseline import Baseline
from hotreload.delta import build_delta, load_build
from hotreload.diff import diff_builds
from hotreload.module_values import has_module_values, plan


def build(project: GeneratedProject, into: Path) -> Path:
    """`dotnet build`, with a TMPDIR of its own under the run's temporary folder: the SDK leaves two empty
    folders in its temp folder on every build."""
    tmp = into.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    subprocess.run(["dotnet", "build", "-c", "Debug", "-nologo", "-v:q", str(project.project)], check=True,
                   capture_output=True, env=dict(os.environ, TMPDIR=str(tmp)))
    out = next((project.folder / "bin" / "Debug").rglob(f"{project.name}.dll"))
    into.mkdir()
    shutil.copy(out, into)
    shutil.copy(out.with_suffix(".pdb"), into)
    return into / out.name


def measure(running: Path, edited: Path, repeats: int, prefix: list[str] | None = None) -> dict[str, float]:
    """`repeats` saves of the edit, as a session makes them: the user saves the edit, then undoes it, again and
    again; each save is compared with what the one before left running (`Diff.new`, with the indexes, names and
    normalized bodies the session keeps between saves) and each delta advances the baseline. Only the saves of
    the edit (running -> edited) are timed; the undo saves keep the session's state as it would be. `prefix`: the
    files the session vouches both compiles compiled alike (hotreload.carry; None: none, as on the first save
    after a start or an edit in the first file)."""
    old, old_pdb = load_build(str(running))
    baseline = Baseline(old, old_pdb)
    rows = []
    for _ in range(repeats):
        for target, timed in ((edited, True), (running, False)):
            t0 = time.perf_counter()
            new, new_pdb = load_build(str(target))  # a new build object each save: nothing of it is memoized yet
            t1 = time.perf_counter()
            diff = diff_builds(old, new, None, (old_pdb, new_pdb), prefix or ())
            t2 = time.perf_counter()
            assert diff.new is not None and not diff.refusals, diff.refusals
            delta = build_delta(baseline, diff.new, new_pdb, diff)
            t3 = time.perf_counter()
            if has_module_values(diff.new):
                plan(old, old_pdb, diff.new, new_pdb, [c.key for c in diff.changed], diff.initializer_code, set())
            t4 = time.perf_counter()
            if timed:
                rows.append({"load": t1 - t0, "diff": t2 - t1, "delta": t3 - t2, "plan": t4 - t3, "all": t4 - t0})
            baseline = baseline.advanced(delta)
            old, old_pdb = diff.new, new_pdb
    kept = rows[2:] if len(rows) > 3 else rows
    return {k: round(1000 * statistics.median(r[k] for r in kept), 1) for k in rows[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hotreload-diffcost-") as tmp:
        root = Path(tmp)
        project = GeneratedProject(root / "src", opts.functions)
        project.write()
        running = build(project, root / "running")
        last = [fn for fn in project.fns if fn.file == project.file_count - 1]
        project.edit_constant(last[len(last) // 2])
        body = build(project, root / "body")
        source = project.folder / project.file_name(project.file_count - 1)
        source.write_text(source.read_text() + "\nlet addedByTheBenchmark (x: int) = x * 7 + 1\n")
        added = build(project, root / "added")
        # what a session vouches for when the last file is edited: every source compiled before it (hotreload.carry)
        before = [str(p) for p in (project.folder / "obj").rglob("*.fs")] + \
            [str(project.folder / project.file_name(i)) for i in range(project.file_count - 1)]
        result = {"functions": opts.functions, "body_only_ms": measure(running, body, opts.repeats, before),
                  "function_added_ms": measure(running, added, opts.repeats, before),
                  "function_added_nothing_carried_ms": measure(running, added, opts.repeats)}
    for name in ("body_only_ms", "function_added_ms", "function_added_nothing_carried_ms"):
        print(f"{opts.functions} functions, {name[:-3].replace('_', ' ')}: " +
              ", ".join(f"{k} {v} ms" for k, v in result[name].items()), flush=True)
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"provenance": provenance("dotnet"), **result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
