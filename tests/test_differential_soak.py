"""Differential soak: random edit sequences on generated multi-file F# apps, each save applied live through
`hotreload.Session`, and after each save the live app's results compared with a fresh process's.

The generator (`fsrandom.Program`) writes an F# app whose entry point prints the result of every function the
sources define (fixed arguments, `id<TAB>json` lines). After each save the live side calls the same functions through
the session; the fresh side is the session's own build of the same sources (byte-identical to `dotnet build`,
`test_compiler.py`) copied to a folder of its own and run with `dotnet exec`: no second compile. Any difference is a
divergence, reported with the seed, the edit's index, what the edit did and the source diff; the session is then
restarted so later comparisons stay meaningful.

A save hotreload refuses is recorded and taken back (the previous sources are saved again, which must be no change).
Refusals of the generator's rude edit (an added union case), of lambdas added and edited at once where pairing is ambiguous, and of array data or constants
(union case tags) added past the runtime's 25-row limits are what the README says; any other refusal of an edit the README calls applicable is a
finding, and so is an update the runtime rejects.

- `test_differential_soak_20_edits`: 20 saves, seed `CI_SEED`, part of the normal suite (about a minute).
- `test_differential_soak`: 300 saves (marked `soak`), opt-in: it runs when `-m` names `soak` (`pytest -m soak`) or
  `HOTRELOAD_SOAK_EDITS` is set (`HOTRELOAD_SOAK_EDITS=1000` for more saves), else it is skipped, so the README's
  plain `pytest` stays within its time. `HOTRELOAD_SOAK_SEED` picks the seed (default 1).

Reproduce a reported divergence with its seed and `HOTRELOAD_SOAK_EDITS=<index + 1>` (`-s` shows every save).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fsrandom import Edit, Program
from live_project import FSPROJ

from hotreload.delta import MAX_CONSTANTS, MAX_DATA_FIELDS
from hotreload.report import Reporter
from hotreload.runtime import RuntimeInfo
from hotreload.session import Outcome, OutcomeKind, Session

pytestmark = pytest.mark.runtime

CI_SEED = 7
CI_EDITS = 20
SOAK_EDITS = 300
NAME = "Gen"
AMBIGUOUS = "ambiguous change to compiler-generated code"
CAPABILITY = "not supported by this runtime"
MIN_APPLIED = 0.6
"""Share of saves that must apply (or be no change): a generator drifting into refusals proves little."""


class TailReporter(Reporter):
    """Keeps the session's last status lines (shown with a finding) instead of printing them all."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=12)

    def _write(self, text: str, color: str = "") -> None:
        self.lines.extend(text.splitlines())


@dataclass
class SoakReport:
    seed: int
    edits: int = 0
    applied: int = 0
    no_change: int = 0
    rude_refused: int = 0
    rude_applied: int = 0
    ambiguous_refused: int = 0
    limit_refused: int = 0  # data fields or constants past the runtime's limits (hotreload.delta.MAX_*)
    comparisons: int = 0
    restarts: int = 0
    seconds: float = 0.0
    refusal_kinds: Counter[str] = field(default_factory=Counter)
    divergences: list[str] = field(default_factory=list)
    unexpected_refusals: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    compile_errors: list[str] = field(default_factory=list)
    generator_bugs: list[str] = field(default_factory=list)  # generated code that throws in the fresh process

    @property
    def findings(self) -> list[str]:
        return self.divergences + self.unexpected_refusals + self.failures + self.compile_errors + self.generator_bugs

    def summary(self) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.refusal_kinds.items())) or "none"
        return (f"differential soak, seed {self.seed}: {self.edits} saves in {self.seconds:.0f} s; "
                f"{self.applied} applied, {self.no_change} no change, {self.rude_refused} rude edits refused, "
                f"{self.rude_applied} rude edits applied (compared), {self.ambiguous_refused} refused as ambiguous "
                f"closure pairing, {self.limit_refused} refused at the runtime's 25-row limits; {self.comparisons} comparisons with a fresh process, {len(self.divergences)} "
                f"divergences, {len(self.unexpected_refusals)} unexpected refusals, {len(self.failures)} failed "
                f"updates, {len(self.compile_errors)} generator compile errors, {len(self.generator_bugs)} "
                f"generator probes that threw; {self.restarts} restarts; "
                f"refusal kinds: {kinds}")


def _exception(message: str) -> str:
    found = re.search(r" threw (\S+?):", message)
    return "!" + (found.group(1) if found else f"error {message.splitlines()[0]}")


class DifferentialSoak:
    """One generated app in `folder`, hosted by a live session and compared with fresh processes."""

    def __init__(self, root: Path, seed: int, verbose: bool = False) -> None:
        self.root = root
        self.seed = seed
        self.verbose = verbose
        self.program = Program(seed)
        self.report = SoakReport(seed)
        self.files = self.program.files()
        self.fresh_dir = root / "fresh"
        self.thrown: set[str] = set()
        self.reporter = TailReporter()
        self.folder = root
        self.session = self._start()

    def _start(self) -> Session:
        """A session on a copy of the current sources in a folder of its own: the runtime caches assembly images
        by path, so a session started again in this process must not load its build from the same path."""
        self.folder = self.root / f"run{self.report.restarts}"
        self.folder.mkdir(parents=True)
        items = "\n".join(f'    <Compile Include="{f}" />' for f in self.files)
        project = self.folder / f"{NAME}.fsproj"
        project.write_text(FSPROJ.format(output="Exe", name=NAME, items=items))
        for name, text in self.files.items():
            (self.folder / name).write_text(text, encoding="utf-8")
        return Session(project, reporter=self.reporter).start()

    def restart(self) -> None:
        self.session.stop()
        self.report.restarts += 1
        self.session = self._start()

    def close(self) -> None:
        self.session.stop()

    # ---- the two sides ---------------------------------------------------------------------------------------
    def live(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pid, qualified, args in self.program.probes():
            try:
                out[pid] = self.session.call(qualified, *args)
            except Exception as exc:  # noqa: BLE001 - the app's exception, compared with the fresh process's
                out[pid] = _exception(str(exc))
        return out

    def fresh(self) -> dict[str, Any]:
        """Run the session's latest build (the current sources, compiled once) as a fresh process."""
        shutil.copytree(self.session.builder.out_dir, self.fresh_dir, dirs_exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "DOTNET_MODIFIABLE_ASSEMBLIES"}
        proc = subprocess.run(["dotnet", "exec", str(self.fresh_dir / f"{NAME}.dll")], capture_output=True,
                              text=True, encoding="utf-8", env=env, timeout=120, check=False)
        assert proc.returncode == 0, f"the fresh process failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        out: dict[str, Any] = {}
        for line in proc.stdout.splitlines():
            pid, _, value = line.partition("\t")
            out[pid] = json.loads(value)
        return out

    # ---- one save --------------------------------------------------------------------------------------------
    def write(self, files: dict[str, str]) -> str:
        """Save the files that changed; returns the source diff."""
        diff: list[str] = []
        for name, text in files.items():
            old = self.files.get(name, "")
            if old != text:
                (self.folder / name).write_text(text, encoding="utf-8")
                diff += difflib.unified_diff(old.splitlines(), text.splitlines(), name, name, lineterm="", n=2)
        self.files = dict(files)
        return "\n".join(diff)

    def finding(self, index: int, edit: Edit, what: str, diff: str, detail: str = "") -> str:
        text = (f"seed {self.seed}, edit {index} ({edit}): {what}\n"
                f"  reproduce: HOTRELOAD_SOAK_SEED={self.seed} HOTRELOAD_SOAK_EDITS={index + 1} "
                f"pytest tests/test_differential_soak.py::test_differential_soak -s\n"
                + (f"{detail}\n" if detail else "") + f"source diff:\n{diff}\nsession:\n  "
                + "\n  ".join(self.reporter.lines))
        print(text)
        return text

    def compare(self, index: int, edit: Edit, diff: str) -> None:
        live, fresh = self.live(), self.fresh()
        self.report.comparisons += 1
        differing = [pid for pid in sorted(live.keys() | fresh.keys()) if live.get(pid, "?") != fresh.get(pid, "?")]
        thrown = [pid for pid, value in sorted(fresh.items())  # generated code never throws: a generator bug
                  if isinstance(value, str) and value.startswith("!") and pid not in self.thrown]
        if thrown:
            self.thrown.update(thrown)
            self.report.generator_bugs.append(self.finding(index, edit, f"{len(thrown)} probe(s) threw", diff,
                                                           "\n".join(f"  {pid}: {fresh[pid]}" for pid in thrown)))
        if differing:
            detail = "\n".join(f"  {pid}: live {live.get(pid, '(none)')!r}, fresh {fresh.get(pid, '(none)')!r}"
                               for pid in differing[:12])
            self.report.divergences.append(self.finding(index, edit, f"{len(differing)} result(s) differ", diff,
                                                        detail))
            self.restart()

    def take_back(self, before: Program, index: int, edit: Edit) -> None:
        before.rng = self.program.rng  # the sources go back, the random draws go on
        self.program = before
        diff = self.write(before.files())
        outcome = self.session.reload()
        if outcome.kind != "no-change":
            self.report.failures.append(self.finding(index, edit, f"saving the previous sources again gave "
                                                     f"{outcome.kind}, not no-change", diff))
            self.restart()

    def step(self, index: int) -> None:
        before = self.program.snapshot()
        edit = self.program.random_edit()
        diff = self.write(self.program.files())
        outcome = self.session.reload()
        self.report.edits += 1
        if self.verbose:
            print(f"edit {index}: {edit} -> {outcome.kind} {[str(r) for r in outcome.refusals]}")
        if outcome.kind in ("applied", "no-change"):
            if outcome.kind == "applied":
                self.report.applied += 1
            else:
                self.report.no_change += 1
            self.report.rude_applied += bool(edit.rude)
            self.compare(index, edit, diff)
        elif outcome.kind == "refused":
            kinds = {r.kind.value if hasattr(r.kind, "value") else str(r.kind) for r in outcome.refusals}
            self.report.refusal_kinds.update(kinds)
            if edit.rude and kinds & edit.rude:
                self.report.rude_refused += 1
            elif kinds == {AMBIGUOUS}:
                self.report.ambiguous_refused += 1
            elif kinds == {CAPABILITY} and all(f"past {MAX_DATA_FIELDS}" in r.detail or f"past {MAX_CONSTANTS}"
                                               in r.detail for r in outcome.refusals):
                self.report.limit_refused += 1
            else:
                self.report.unexpected_refusals.append(self.finding(
                    index, edit, "refused", diff, "\n".join(f"  - {r}" for r in outcome.refusals)))
            self.take_back(before, index, edit)
        elif outcome.kind == "compile-error":
            self.report.compile_errors.append(self.finding(
                index, edit, "the generated sources do not compile", diff,
                "\n".join(f"  {e}" for e in outcome.errors[:10])))
            self.take_back(before, index, edit)
        else:
            self.report.failures.append(self.finding(index, edit, f"update {outcome.kind}: {outcome.message}", diff))
            self.restart()
            self.compare(index, edit, diff)

    def run(self, edits: int) -> SoakReport:
        start = time.perf_counter()
        self.compare(-1, Edit(["the first build"]), "")
        for index in range(edits):
            self.step(index)
        self.report.seconds = time.perf_counter() - start
        print(self.report.summary())
        return self.report


def soak(folder: Path, seed: int, edits: int, verbose: bool = False) -> SoakReport:
    run = DifferentialSoak(folder, seed, verbose)
    try:
        return run.run(edits)
    finally:
        run.close()


def check(report: SoakReport, edits: int) -> None:
    assert not report.findings, f"{len(report.findings)} finding(s); the first:\n{report.findings[0]}\n" \
        f"{report.summary()}"
    assert report.edits == edits
    assert report.comparisons >= report.applied + report.no_change + 1
    assert report.applied + report.no_change >= MIN_APPLIED * edits, report.summary()


@pytest.mark.timeout(900)
def test_differential_soak_20_edits(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> None:
    report = soak(tmp_path / "app", CI_SEED, CI_EDITS, verbose=True)
    check(report, CI_EDITS)


@pytest.mark.timeout(900)
def test_a_save_that_never_reaches_the_app_is_a_divergence(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> None:
    """The comparison can fail: saves compiled but never applied leave the live app behind the fresh process."""
    run = DifferentialSoak(tmp_path / "app", CI_SEED)
    session = run.session

    def compile_only() -> Outcome:
        assert session.compiler is not None
        session.compiler.build()  # the fresh side runs this build; the live app keeps its code
        return Outcome(OutcomeKind.APPLIED)

    session.reload = compile_only  # type: ignore[method-assign]
    try:
        for index in range(10):
            run.step(index)
            if run.report.divergences:
                break
    finally:
        run.close()
    assert run.report.divergences, run.report.summary()
    found = run.report.divergences[0]
    assert f"seed {CI_SEED}, edit {index} (" in found and "result(s) differ" in found and "live " in found
    assert f"HOTRELOAD_SOAK_SEED={CI_SEED} HOTRELOAD_SOAK_EDITS={index + 1}" in found
    assert "source diff:\n---" in found
    assert run.report.restarts == 1  # and the comparison goes on from a fresh session


def _requested(config: pytest.Config) -> bool:
    return "soak" in (config.getoption("-m") or "") or bool(os.environ.get("HOTRELOAD_SOAK_EDITS"))


@pytest.mark.soak
@pytest.mark.timeout(4 * 3600)
def test_differential_soak(tmp_path: Path, dotnet_runtime: RuntimeInfo, request: pytest.FixtureRequest) -> None:
    if not _requested(request.config):
        pytest.skip("opt-in: run with `-m soak` or HOTRELOAD_SOAK_EDITS=<saves>")
    edits = int(os.environ.get("HOTRELOAD_SOAK_EDITS") or SOAK_EDITS)
    seed = int(os.environ.get("HOTRELOAD_SOAK_SEED") or 1)
    report = soak(tmp_path / "app", seed, edits, verbose=True)
    check(report, edits)
