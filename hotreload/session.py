"""The hot reload loop for one project: build -> host -> (watch -> build -> diff -> delta -> apply -> verify)*."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self

from .app import AppExit, HostedApp
from .apply import ApplyFailed, Updater, Verification
from .build import Builder, Diagnostic, ProjectError, check_sdk, find_project
from .compiler import WarmCompiler
from .delta import Baseline, UnsupportedEdit, build_delta, load_build
from .diff import Build, Refusal, diff_builds
from .editable import editability_problem
from .names import display_name
from .pdb import Pdb
from .report import Reporter
from .runtime import start_runtime
from .watch import SerialWorker, SourceWatcher


@dataclass
class Outcome:
    """What one save led to; `kind` is applied, no-change, refused, compile-error or failed."""

    kind: str
    generation: int = 0
    methods: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[Diagnostic] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    verification: Verification | None = None
    message: str = ""


def locate(refusal: Refusal, builds: list[tuple[Build, Pdb | None]]) -> Refusal:
    """Add the file and line of the refused member (or of a method of the refused type) from the first build
    whose PDB knows it: the new build for added or changed members, the previous one for removed ones."""
    owner, _, last = refusal.member.rpartition(".")
    exact = {refusal.member, f"{owner}.get_{last}"}  # a module-level value is found through its getter
    for build, pdb in builds:
        if pdb is None:
            continue
        for key, rid in build.methods.items():
            name = display_name(key)
            if name not in exact and not name.startswith(refusal.member + "."):
                continue
            points = [p for p in pdb.method_info(rid).points if not p.hidden]
            if points:
                doc = Path(pdb.document_name(points[0].document)).name
                return replace(refusal, location=f"{doc}:{points[0].start_line}")
    return refusal


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


class EditError(Exception):
    """A save that was not applied; `outcome` says what happened (and the app keeps its last good code)."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class CompileFailed(EditError):
    """The edited sources do not compile: `outcome.errors` lists the compiler's errors."""


class EditRefused(EditError):
    """The edit compiles but cannot be applied to the running app (a rude edit): `outcome.refusals` says why."""


class UpdateFailed(EditError):
    """The runtime rejected an update: the process is in an unknown state and needs a restart."""


class Session:
    """Hosts one F# app in this process and keeps its code in step with the sources.

    As a Python API (`with hotreload.Session("App.fsproj") as s:`) it builds, hosts and loads the app without
    running its entry point or watching files: `s.call(...)` runs code, `s.edit(...)` saves and applies an edit.
    `hotreload watch` runs the entry point and watches the sources.
    """

    def __init__(self, project: str | Path, app_args: list[str] | None = None, reporter: Reporter | None = None,
                 run_entry_point: bool = False, watch: bool = False, warm_compiler: bool = True) -> None:
        self.project = find_project(project)
        self.app_args = list(app_args or [])
        self.report = reporter or Reporter()
        self.run_entry_point = run_entry_point
        self.watch = watch
        self.builder = Builder(self.project)
        self.compiler = WarmCompiler(self.builder, self._on_fallback) if warm_compiler else None
        self.outcomes: list[Outcome] = []
        self.changed = threading.Condition()
        self.app: HostedApp | None = None
        self.updater: Updater | None = None
        self._watcher: SourceWatcher | None = None
        self.app_exit: AppExit | None = None
        self.outcome_listeners: list[Callable[[Outcome], None]] = []  # called on the rebuild thread
        self.exit_listeners: list[Callable[[AppExit], None]] = []  # called on the app's thread
        self._worker: SerialWorker | None = None

    # ---- start and stop ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Build, host and load the app (and run and watch it, if asked); on failure nothing is left running."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Self:
        sdk = check_sdk()
        self.report.info(f"building {self.project.name} (Debug, .NET SDK {sdk})", "building", sdk=sdk,
                         project=str(self.project))
        result = self.builder.build()
        if not result.ok:
            raise ProjectError("the first build failed:\n" + "\n".join(str(e) for e in result.errors))
        dll = self.builder.snapshot("gen0")
        build, pdb = load_build(str(dll))
        problem = editability_problem(build.asm)
        if problem:
            raise ProjectError(f"{dll.name} cannot be hot reloaded: {problem}")
        if self.compiler is not None:
            self.compiler.warm_up_in_background()
        info = start_runtime()
        if not info.supported:
            raise ProjectError("the .NET runtime says hot reload is not supported here "
                               "(is a debugger attached, or DOTNET_HOTRELOAD_DISABLED set?)")
        self.report.info(f".NET {info.version}, hot reload supported; capabilities: {' '.join(info.capabilities)}",
                         "runtime", version=info.version, capabilities=list(info.capabilities))
        self.report.info(f"{dll.name} is editable (DebuggableAttribute: Default, DisableOptimizations); "
                         f"built in {_ms(result.seconds)}", "editable", dll=str(dll), ms=round(result.seconds * 1000))
        self.capabilities = list(info.capabilities)
        self.app = HostedApp(str(dll))
        self.updater = Updater(self.app, Baseline(build, pdb))
        self.previous, self.previous_pdb = build, pdb
        if self.watch:
            worker = SerialWorker(self._reload_quietly)
            watcher = SourceWatcher(self.project.parent, lambda paths: worker.request(),
                                    ignore=[self.builder.work_dir])
            watcher.start()
            self._worker, self._watcher = worker, watcher
            self.report.info(f"watching {self.project.parent} (*.fs, *.fsi, *.fsproj)", "watching",
                             folder=str(self.project.parent))
        if self.run_entry_point:
            self.app.start(self.app_args, self._on_exit)
        return self

    def _reload_quietly(self) -> None:
        self.reload()

    def _on_exit(self, exit: AppExit) -> None:
        self.app_exit = exit
        if exit.error:
            self.report.error(f"the app crashed with an unhandled exception:\n{exit.error}", "app-exit",
                              code=exit.code, exception=exit.error)
        else:
            self.report.info(f"the app exited with code {exit.code}", "app-exit", code=exit.code)
        for listener in self.exit_listeners:
            listener(exit)

    def _on_fallback(self, reason: str) -> None:
        self.report.info(f"{reason}: building with dotnet build", "fallback", reason=reason)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self._worker is not None:
            self._worker.stop(timeout=1.0)  # a rebuild in progress is abandoned: stopping takes at most seconds
        if self.compiler is not None:
            self.compiler.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the Python API --------------------------------------------------------------------------------
    def call(self, qualified: str, *args: object) -> object:
        """Invoke a static method of the app by name ("Namespace.Module.function"), with Python arguments."""
        if self.app is None:
            raise RuntimeError("the session is not started: use `with Session(...) as s:` or call start()")
        return self.app.call(qualified, *args)

    def edit(self, path: str | Path, old: str, new: str, timeout: float = 300.0) -> Outcome:
        """Replace `old` by `new` in a source file (relative to the project folder), save it, and bring the app up
        to date. Returns what was applied; raises CompileFailed, EditRefused or UpdateFailed when nothing was."""
        file = Path(path) if Path(path).is_absolute() else self.project.parent / path
        text = file.read_text(encoding="utf-8")
        count = text.count(old)
        if count != 1:
            raise ValueError(f"{file}: the text to replace occurs {count} times (it must occur once): {old!r}")
        seen = len(self.outcomes)
        file.write_text(text.replace(old, new), encoding="utf-8")
        if self._watcher is not None:
            outcome = self.wait_for_outcome(seen, timeout)
            if outcome is None:
                raise TimeoutError(f"{file}: no update within {timeout:.0f} s of the save")
        else:
            outcome = self.reload()
        return self._checked(file, outcome)

    @staticmethod
    def _checked(file: Path, outcome: Outcome) -> Outcome:
        if outcome.kind == "compile-error":
            raise CompileFailed(f"{file.name} does not compile:\n" + "\n".join(str(e) for e in outcome.errors),
                                outcome)
        if outcome.kind == "refused":
            raise EditRefused(f"the edit to {file.name} cannot be applied to the running app:\n"
                              + "\n".join(f"  - {r}" for r in outcome.refusals), outcome)
        if outcome.kind == "failed":
            raise UpdateFailed(f"the update from {file.name} failed: {outcome.message}", outcome)
        return outcome

    # ---- state --------------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self.updater.baseline.generation if self.updater else 0

    @property
    def update_count(self) -> int:
        return sum(1 for o in self.outcomes if o.kind == "applied")

    def wait_for_outcome(self, after: int, timeout: float) -> Outcome | None:
        """Block until more than `after` outcomes exist; return the newest (None on timeout)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.outcomes) <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)
            return self.outcomes[-1]

    def _record(self, outcome: Outcome) -> Outcome:
        with self.changed:
            self.outcomes.append(outcome)
            self.changed.notify_all()
        for listener in self.outcome_listeners:
            listener(outcome)
        return outcome

    # ---- one pass of the loop -----------------------------------------------------------------------
    def reload(self) -> Outcome:
        """Rebuild and bring the running app up to date with the sources, or say why not."""
        assert self.updater is not None
        if self.updater.failed:
            self.report.error(f"not applying: {self.updater.failed}; the app needs a restart", "failed",
                              reason=self.updater.failed)
            return self._record(Outcome("failed", message=f"an earlier update failed ({self.updater.failed}); "
                                                          "nothing more is applied: restart the app"))
        timings: dict[str, float] = {}
        result = self.compiler.build() if self.compiler is not None else self.builder.build()
        timings["build"] = result.seconds
        if not result.ok:
            self.report.error(f"compile error ({_ms(result.seconds)}); the app keeps running the last good code:\n"
                              + "\n".join(str(e) for e in result.errors), "compile-error",
                              errors=[str(e) for e in result.errors], ms=round(result.seconds * 1000))
            return self._record(Outcome("compile-error", errors=result.errors, timings=timings))
        t = time.perf_counter()
        new_build, new_pdb = load_build(str(result.dll))
        diff = diff_builds(self.previous, new_build, self.capabilities, (self.previous_pdb, new_pdb))
        assert diff.new is not None
        new_build = diff.new  # with running names for compiler-generated code that only moved
        timings["diff"] = time.perf_counter() - t
        if diff.refusals:
            return self._refuse([locate(r, [(new_build, new_pdb), (self.previous, self.previous_pdb)])
                                 for r in diff.refusals], timings)
        if diff.empty:
            self.previous, self.previous_pdb = new_build, new_pdb
            message = ""
            if diff.moved and new_pdb is not None:  # same code on new lines: stack traces follow, nothing to apply
                baseline = self.updater.baseline
                self.updater.lines.update_from(new_pdb, {baseline.defs[c.key] & 0xFFFFFF: c.new_rid
                                                         for c in diff.moved if c.key in baseline.defs})
                message = f"; line numbers updated for {len(diff.moved)} moved method(s)"
            self.report.info(f"built in {_ms(timings['build'])}; no code changes to apply{message}", "built",
                             ms=round(timings["build"] * 1000))
            return self._record(Outcome("no-change", timings=timings, message=message.lstrip("; ")))
        t = time.perf_counter()
        try:
            delta = build_delta(self.updater.baseline, new_build, new_pdb, diff)
        except UnsupportedEdit as exc:
            return self._refuse([locate(exc.refusal, [(new_build, new_pdb)])], timings)
        timings["delta"] = time.perf_counter() - t
        try:
            timings["apply"] = self.updater.apply(delta)
        except ApplyFailed as exc:
            self.report.error(f"{exc}", "failed", reason=str(exc))
            return self._record(Outcome("failed", message=str(exc), timings=timings))
        self.previous, self.previous_pdb = new_build, new_pdb
        t = time.perf_counter()
        verification = self.updater.verify(delta, new_build)
        timings["verify"] = time.perf_counter() - t
        names = delta.summary
        stages = ", ".join(f"{k} {_ms(v)}" for k, v in timings.items())
        self.report.ok(f"applied generation {delta.generation}: {', '.join(names)} ({stages})", "applied",
                       generation=delta.generation, methods=names,
                       ms={k: round(v * 1000, 1) for k, v in timings.items()})
        checked = f"verified: IL read back for {len(verification.il_matches)}/{len(delta.method_tokens)}, " \
                  f"JIT-compiled {len(verification.jitted)}"
        if verification.invoked:
            checked += "; ran " + ", ".join(f"{k} -> {v}" for k, v in verification.invoked.items())
        self.report.info(checked, "verified")
        for problem in verification.problems:
            self.report.warn(problem)
        return self._record(Outcome("applied", delta.generation, names, timings, verification=verification))

    def _refuse(self, refusals: list[Refusal], timings: dict[str, float]) -> Outcome:
        lines = "\n".join(f"  - {r}" for r in refusals)
        self.report.warn(f"edit not applied (nothing of it was applied; the app keeps running):\n{lines}", "refused",
                         refusals=[str(r) for r in refusals])
        return self._record(Outcome("refused", refusals=refusals, timings=timings))
