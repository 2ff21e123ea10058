"""The hot reload loop for one project: build -> host -> (watch -> build -> diff -> delta -> apply -> verify)*."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Self

from .app import AppExit, HostedApp
from .apply import ApplyFailed, Updater, Verification
from .baseline import Baseline
from .build import REUSE_VARIABLE, Builder, BuildResult, Diagnostic, ProjectError, check_sdk, find_project
from .compile_inputs import CompileInputs
from .compiler import WarmCompiler, inputs_key, msbuild_inputs
from .delta import Delta, UnsupportedEdit, build_delta, load_build
from .diff import Build, Diff, Refusal, diff_builds
from .editable import editability_problem
from .errors import HotReloadError
from .holders import holders
from .launch import LaunchProfile, apply_environment, read_profile
from .lines import stack_lines_mode
from .metadata.il import instructions
from .metadata.schema import T, split_token
from .module_values import Plan, has_module_values, plan
from .names import display_name
from .pdb import Pdb
from .reevaluate import reevaluate
from .refusal import RefusalKind
from .report import Reporter
from .runtime import RuntimeInfo, app_frameworks, framework_folder, start_runtime
from .solution import ProjectNode, SolutionError, referenced_projects
from .startup import startup_only
from .traces import format_exception
from .watch import CSHARP_SUFFIXES, SOURCE_SUFFIXES, SerialWorker, SourceWatcher


class OutcomeKind(StrEnum):
    """How a save ended; the value is the `event` of its status line."""

    APPLIED = "applied"
    NO_CHANGE = "no-change"
    REFUSED = "refused"
    COMPILE_ERROR = "compile-error"
    FAILED = "failed"


@dataclass
class Outcome:
    """What one save led to. `next_call` names applied methods that run only at startup and have already run (the
    entry point, and what only it calls once; see hotreload.startup): their new code runs after a restart."""

    kind: OutcomeKind
    generation: int = 0
    methods: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[Diagnostic] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    verification: Verification | None = None
    message: str = ""
    next_call: list[str] = field(default_factory=list)
    assemblies: dict[str, int] = field(default_factory=dict)  # assembly updated -> its generation now
    holders: list[str] = field(default_factory=list)  # running code that still reaches a deleted or replaced method
    reevaluated: list[str] = field(default_factory=list)  # module-level values computed again, in order
    record_fields: list[str] = field(default_factory=list)  # fields added to running records (old values: default)
    values_kept: list[str] = field(default_factory=list)  # edited values that keep their running value: why
    startup_code: list[str] = field(default_factory=list)  # applied: values that could not be computed again, and
    # top-level code (`do`) that ran once at startup and will not run again: a restart runs them

    @property
    def needs_restart(self) -> bool:
        """The app cannot run this save's code (or the last good one) without a fresh process."""
        return self.kind in (OutcomeKind.REFUSED, OutcomeKind.FAILED) or bool(self.next_call) \
            or bool(self.startup_code)


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
    if refusal.kind is RefusalKind.CAPABILITY:  # a module-level value the runtime cannot add
        for build, pdb in builds:  # a module value's getter has no lines: the initializer's store of it has
            where = _stored_at(build, pdb, last) if pdb is not None else None
            if where:
                return replace(refusal, location=where)
    return refusal


def _stored_at(build: Build, pdb: Pdb, value: str) -> str | None:
    """'File.fs:line' of the statement that stores module value `value` (its field is `value` or `value@line`)."""
    fields = {rid for rid in range(1, len(build.asm.md.rows(T.Field)) + 1)
              if build.names.own_name(T.Field, rid).split("@")[0] == value}
    if not fields:
        return None
    for rid in build.methods.values():
        body = build.body(rid)
        if body is None:
            continue
        for ins in instructions(body.code):
            if ins.opcode != 0x80:  # stsfld
                continue
            table, row = split_token(int.from_bytes(body.code[ins.operand_offset:ins.operand_offset + 4], "little"))
            if table != T.Field or row not in fields:
                continue
            points = [p for p in pdb.method_info(rid).points if not p.hidden and p.il_offset <= ins.offset]
            if points:
                return f"{Path(pdb.document_name(points[-1].document)).name}:{points[-1].start_line}"
    return None


def _startup_name(name: str) -> str:
    """'<StartupCode$App>.$Demo.Top.main@' (a top-level program's code) -> 'the top-level code of Demo.Top'."""
    if name.startswith("<StartupCode$") and name.endswith(".main@") and ".$" in name:
        return f"the top-level code of {name.split('.$', 1)[1][:-len('.main@')]}"
    return name


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


class EditError(HotReloadError):
    """A save that was not applied; `outcome` says what happened (and the app keeps its last good code)."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class CompileFailed(EditError):
    """The edited sources do not compile: `outcome.errors` lists the compiler's errors."""


class EditRefused(EditError):
    """The edit compiles but cannot be applied to the running app (a rude edit): `outcome.refusals` says why."""


class UpdateFailed(EditError):
    """The update could not be applied or proven (the runtime rejected it, a check failed, or hotreload hit a fault):
    `outcome.message` says which; the process may need a restart."""


class SessionError(HotReloadError):
    """The session was used wrongly (not started, no such file or text, no update in time): the message says how."""


@dataclass(eq=False)
class Part:
    """One F# assembly of the running app: the app's own, or a library of its closure. `dll` is where builds put
    it; `previous` is the build that runs (the next save is diffed against it), `seen` the digest of the file it
    was read from (an unchanged file is not read again); `updater` owns its baseline."""

    name: str
    dll: Path
    updater: Updater
    previous: Build
    previous_pdb: Pdb | None
    seen: str
    inputs: CompileInputs | None = None  # what the compile of `previous` read, when a warm compile made it


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Session:
    """Hosts one F# app in this process and keeps its code in step with the sources.

    As a Python API (`with hotreload.Session("App.fsproj") as s:`) it builds, hosts and loads the app without
    running its entry point or watching files: `s.call(...)` runs code, `s.edit(...)` saves and applies an edit.
    `hotreload watch` runs the entry point and watches the sources.
    """

    def __init__(self, project: str | Path, app_args: list[str] | None = None, reporter: Reporter | None = None,
                 run_entry_point: bool = False, watch: bool = False, warm_compiler: bool = True,
                 stack_lines: str | None = None, launch_profile: str | None = None,
                 launch_settings: bool = True) -> None:
        self.project = find_project(project)
        self.app_args = list(app_args or [])
        self.launch_profile = launch_profile  # --launch-profile NAME
        self.launch_settings = launch_settings  # False: --no-launch-profile
        self.report = reporter or Reporter()
        self.run_entry_point = run_entry_point
        self.stack_lines = stack_lines_mode(stack_lines)  # auto, on or off (--stack-lines, HOTRELOAD_STACK_LINES)
        self.watch = watch
        self.builder = Builder(self.project)
        self.warm_compiler = warm_compiler
        self.compiler: WarmCompiler | None = None  # made after the first build, which tells the projects
        self.libraries: list[ProjectNode] = []  # the projects the app references, in build order
        self.parts: list[Part] = []  # the F# assemblies hot reloaded: libraries in build order, the app last
        self.outcomes: list[Outcome] = []
        self.changed = threading.Condition()
        self.app: HostedApp | None = None
        self._watchers: list[SourceWatcher] = []
        self._csharp_edits: set[Path] = set()  # saved C# sources not yet reported
        self._edits_lock = threading.Lock()
        self.app_exit: AppExit | None = None
        self.outcome_listeners: list[Callable[[Outcome], None]] = []  # called on the rebuild thread
        self.exit_listeners: list[Callable[[AppExit], None]] = []  # called on the app's thread
        self.start_listeners: list[Callable[[HostedApp], None]] = []  # loaded, entry point not yet run
        self.stop_listeners: list[Callable[[], None]] = []  # called first in stop()
        self._worker: SerialWorker | None = None
        self.launch: LaunchProfile | None = None
        self._built_from: tuple[dict[str, str], str] | None = None  # sources' digests, inputs (restart_fingerprint)
        self._entry_key: str | None = None  # the entry point's identity in the running module

    # ---- start and stop ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Build, host and load the app (and run and watch it, if asked); on failure nothing is left running."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Self:
        if self.run_entry_point and self.launch_settings:  # a bad settings file or profile name: said before building
            self.launch = read_profile(self.project, self.launch_profile)
        sdk = check_sdk()
        self.report.info(f"building {self.project.name} (Debug, .NET SDK {sdk})", "building", sdk=sdk,
                         project=str(self.project))
        result = self._first_build()
        if not result.ok:
            raise ProjectError("the first build failed:\n" + "\n".join(str(e) for e in result.errors))
        dll = self.builder.snapshot("gen0")
        build, pdb = load_build(str(dll))
        problem = editability_problem(build.asm)
        if problem:
            raise ProjectError(f"{dll.name} cannot be hot reloaded: {problem}")
        if self.run_entry_point and not build.asm.pe.entry_point_token:
            raise ProjectError(f"{self.project.name} is a library: it has no entry point to run. Run the app that "
                               "references it (`hotreload watch App.fsproj`), or load the library from Python with "
                               f"`hotreload.Session(\"{self.project.name}\")` and call its functions (README, "
                               "\"Smoke tests from Python\")")
        self._find_projects()
        if self.warm_compiler:
            self.compiler = WarmCompiler(
                self.builder, self._on_fallback,
                libraries=[(Builder(node.project, self.builder.work_dir, self.builder.timeout),
                            frozenset(r for r in node.references if r.suffix == ".fsproj"))
                           for node in self.libraries if node.fsharp],
                on_note=lambda note, kind: self.report.info(note, kind))
            self.compiler.remember_sources()  # before watching: a save from now on is a change
            self.compiler.warm_up_in_background()
        if self.run_entry_point:
            self._launch_as_dotnet_run()
        config = dll.with_suffix(".runtimeconfig.json")
        info = start_runtime(config)
        if self.run_entry_point and self.launch is not None:
            apply_environment(self.launch.variables())  # a runtime already up keeps its own copy of the environment
        frameworks = self._framework_dirs(info, config)
        if not info.supported:
            raise ProjectError("the .NET runtime says hot reload is not supported here "
                               "(is a debugger attached, or DOTNET_HOTRELOAD_DISABLED set?)")
        self.report.info(f".NET {info.version}, hot reload supported; capabilities: {' '.join(info.capabilities)}",
                         "runtime", version=info.version, capabilities=list(info.capabilities))
        self.report.info(f"{dll.name} is editable (DebuggableAttribute: Default, DisableOptimizations); "
                         f"built in {_ms(result.seconds)}", "editable", dll=str(dll), ms=round(result.seconds * 1000))
        self.capabilities = list(info.capabilities)
        self.app = HostedApp(str(dll), framework_dirs=frameworks)
        updater = Updater(self.app, Baseline(build, pdb), self.stack_lines)
        entry = self.app.assembly.EntryPoint  # its identity, found once: startup code is found from it on saves
        self._entry_key = next((k for k, tok in updater.baseline.defs.items()
                                if entry is not None and tok == int(entry.MetadataToken)), None)
        if updater.lines.status:
            self.report.info(updater.lines.status, "stack-lines", mode=self.stack_lines,
                             runtime_writes=updater.lines.writes)
        self.parts = [*self._load_libraries(dll.parent),
                      Part(dll.name, self.builder.dll, updater, build, pdb, _file_digest(dll))]
        if self.watch:
            self._start_watching()
        for listener in self.start_listeners:
            listener(self.app)
        if self.run_entry_point:
            self.app.start(self.app_args, self._on_exit)
        return self

    def _find_projects(self) -> None:
        """The projects the app references (read from what the first build's restore wrote)."""
        try:
            self.libraries = referenced_projects(self.project)
        except SolutionError as exc:
            self.report.warn(f"{exc}; only {self.project.name} is hot reloaded", "warning")
            self.libraries = []
        others = [n for n in self.libraries if not n.fsharp]
        if self.libraries:
            self.report.info(f"{self.project.name} references {', '.join(n.name for n in self.libraries)}: "
                             + ("each F# one is hot reloaded" if not others else
                                f"F# ones are hot reloaded; edits to {', '.join(n.name for n in others)} need a "
                                "restart"), "projects", projects=[str(n.project) for n in self.libraries])

    def _load_libraries(self, folder: Path) -> list[Part]:
        """Load each F# library of the closure from the started build's folder into the app's context now (loading
        runs no code), so each has a baseline that is exactly what runs."""
        assert self.app is not None
        parts = []
        for node in self.libraries:
            dll = folder / f"{node.assembly}.dll"
            if not node.fsharp or not dll.exists():
                continue
            build, pdb = load_build(str(dll))
            problem = editability_problem(build.asm)
            if problem:
                raise ProjectError(f"{dll.name} (from {node.name}) cannot be hot reloaded: {problem}")
            assembly = self.app.load(str(dll))
            updater = Updater(self.app, Baseline(build, pdb), self.stack_lines, assembly, str(dll))
            parts.append(Part(dll.name, self.builder.out_dir / dll.name, updater, build, pdb, _file_digest(dll)))
        return parts

    def _start_watching(self) -> None:
        """Watch every project's folder (C# ones for their own sources), the MSBuild files imported from above
        them, and the sources the compiler reads from elsewhere (linked files)."""
        worker = SerialWorker(self._reload_quietly)
        self._worker = worker
        folders = [(self.project, False), *((n.project, not n.fsharp) for n in self.libraries)]
        outside: set[Path] = set()
        for project, csharp in folders:
            watcher = SourceWatcher(project.parent, self._on_saved, ignore=[self.builder.work_dir],
                                    suffixes=CSHARP_SUFFIXES if csharp else SOURCE_SUFFIXES)
            self._watchers.append(watcher)
            outside.update(msbuild_inputs(project))
        for watcher in self._watchers:
            watcher.start()
        roots = [w.root for w in self._watchers]
        self._watchers[0].watch_files(p for p in outside if not any(p.is_relative_to(r) for r in roots))
        if self.compiler is not None:
            self.compiler.on_arguments = self._watch_linked_files
            self._watch_linked_files()
        listed = ", ".join(str(p.parent) for p, _ in folders)
        self.report.info(f"watching {listed} (*.fs, *.fsi, *.fsproj)", "watching", folder=str(self.project.parent),
                         folders=[str(p.parent) for p, _ in folders])

    def _watch_linked_files(self) -> None:
        """Sources compiled from outside the project folders (`<Compile Include="../Shared/X.fs" />`)."""
        if self.compiler is None or not self._watchers:
            return
        roots = [w.root for w in self._watchers]
        self._watchers[0].watch_files(
            path for unit in self.compiler.units for path in map(Path, unit.user_sources())
            if not any(Path(os.path.abspath(path)).is_relative_to(root) for root in roots))  # already watched

    def _on_saved(self, paths: set[Path]) -> None:
        csharp = {p for p in paths if p.suffix in CSHARP_SUFFIXES}
        if csharp:
            with self._edits_lock:
                self._csharp_edits |= csharp
        if self._worker is not None:
            self._worker.request()

    def _first_build(self) -> BuildResult:
        """`dotnet build`, unless this process is a restart whose sources are exactly those the last save compiled
        (the build in bin/ is then theirs, byte for byte: see Builder.reuse)."""
        fingerprint = os.environ.pop(REUSE_VARIABLE, None)
        if fingerprint:
            try:
                reused = self.builder.reuse(fingerprint, inputs_key(self.project))
            except OSError:
                reused = None
            if reused is not None:
                self.report.info("restarting from the build of the last save (same sources, same project): "
                                 "no dotnet build", "reused-build")
                return reused
        return self.builder.build()

    def restart_fingerprint(self) -> str | None:
        """For a restart: what the build in bin/ was compiled from (None when unknown). The assembly is read here,
        once, not on every save."""
        if self._built_from is None or not all(self._built_from):
            return None
        try:
            return self.builder.fingerprint(*self._built_from)
        except OSError:
            return None

    def _launch_as_dotnet_run(self) -> None:
        """Working directory, launch profile and arguments as `dotnet run` sets them (see hotreload.launch): set
        just before the runtime starts, so neither the builds nor the compiler see the app's environment."""
        if self.launch is not None:
            apply_environment(self.launch.variables())
            self.app_args = self.launch.args(self.app_args)
            url = f", {self.launch.application_url}" if self.launch.application_url else ""
            self.report.info(f"using launch settings from {self.launch.file} (profile {self.launch.name}{url})",
                             "launch-profile", profile=self.launch.name, file=str(self.launch.file),
                             url=self.launch.application_url)
        os.chdir(self.project.parent)  # the app's working directory, and its content root

    def _framework_dirs(self, info: RuntimeInfo, config: Path) -> list[str]:
        """Folders of the shared frameworks the app names that the running runtime was not started with (a web app
        in a process whose runtime was already up): their assemblies load into the app's context instead."""
        folders = []
        for name, version in app_frameworks(config):
            if name in info.framework_names():
                continue
            folder = framework_folder(info.dotnet_root, name, version)
            if folder is None:
                raise ProjectError(f"{self.project.name} needs the shared framework {name} {version}, which is not "
                                   f"installed under {info.dotnet_root}; install it (`dotnet --list-runtimes` shows "
                                   "what is there)")
            folders.append(folder)
        return folders

    def _reload_quietly(self) -> None:
        self.reload()

    def _on_exit(self, exit: AppExit) -> None:
        if exit.exception is not None and self.app is not None:
            with contextlib.suppress(Exception):  # the runtime's own text is the report then
                exit = replace(exit, error=format_exception(exit.exception, self.app.module,
                                                            self.updater.lines if self.updater else None))
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
        for listener in self.stop_listeners:
            with contextlib.suppress(Exception):  # stopping goes on whatever a listener does
                listener()
        for watcher in self._watchers:
            watcher.stop()
        if self._worker is not None:
            self._worker.stop(timeout=1.0)  # a rebuild in progress is abandoned: stopping takes at most seconds
        if self.compiler is not None:
            self.compiler.close()
        self.builder.close()  # a dotnet build still running (a fallback, or warm_compiler=False) ends with its tree
        if self.app is not None:
            self.app.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the Python API --------------------------------------------------------------------------------
    def call(self, qualified: str, *args: object,
             type_args: list[object] | tuple[object, ...] | None = None) -> object:
        """Invoke a function of the app by name ("Namespace.Module.function"). Python arguments become the F# types
        the parameters want (list -> F# list, tuple -> tuple, None/x -> an option, dict -> Map or record) and the
        result comes back as Python values (see hotreload.fsharp_values). A generic function's type arguments are
        inferred from the arguments, or given one per type parameter: `type_args=[int, "System.Int64"]`."""
        if self.app is None:
            raise SessionError("the session is not started: use `with Session(...) as s:` or call start()")
        return self.app.call(qualified, *args, type_args=type_args)

    def edit(self, path: str | Path, old: str, new: str, timeout: float = 300.0) -> Outcome:
        """Replace `old` by `new` in a source file (relative to the project folder), save it, and bring the app up
        to date. Returns what was applied; raises CompileFailed, EditRefused or UpdateFailed when nothing was.

        Only the replaced text changes: the file's encoding, byte-order mark and line endings stay as they were
        (a `\\n` in `old` or `new` stands for the file's line ending)."""
        file = Path(path) if Path(path).is_absolute() else self.project.parent / path
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise SessionError(f"{file}: cannot read it ({exc.strerror}); give a path relative to "
                               f"{self.project.parent} or an absolute one") from None
        updated = replace_in_source(raw, old, new, file)
        if updated == raw:  # nothing to save: a watcher would not even see a change
            self.report.info(f"{file.name} is unchanged by the edit; nothing to build", "built")
            return self._record(Outcome(OutcomeKind.NO_CHANGE, message=f"{file.name} is unchanged by the edit"))
        seen = len(self.outcomes)
        file.write_bytes(updated)
        if self._watchers:
            outcome = self.wait_for_outcome(seen, timeout)
            if outcome is None:
                raise SessionError(f"{file}: no update within {timeout:.0f} s of the save")
        else:
            outcome = self.reload()
        return self._checked(file, outcome)

    @staticmethod
    def _checked(file: Path, outcome: Outcome) -> Outcome:
        if outcome.kind == OutcomeKind.COMPILE_ERROR:
            raise CompileFailed(f"{file.name} does not compile:\n" + "\n".join(str(e) for e in outcome.errors),
                                outcome)
        if outcome.kind == OutcomeKind.REFUSED:
            raise EditRefused(f"the edit to {file.name} cannot be applied to the running app:\n"
                              + "\n".join(f"  - {r}" for r in outcome.refusals), outcome)
        if outcome.kind == OutcomeKind.FAILED:
            raise UpdateFailed(f"the update from {file.name} failed: {outcome.message}", outcome)
        return outcome

    # ---- state --------------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self.updater.baseline.generation if self.updater else 0

    @property
    def update_count(self) -> int:
        return sum(1 for o in self.outcomes if o.kind == OutcomeKind.APPLIED)

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
        """Rebuild and bring the running app up to date with the sources, or say why not. Always records and
        returns an outcome: a fault of hotreload's own is a `failed` outcome, never an exception."""
        assert self.updater is not None
        stage = ["building"]
        try:
            return self._reload(stage)
        except Exception as exc:  # noqa: BLE001 - every save must end in an outcome (Session.edit waits for one)
            applied = stage[0] == "verifying"
            if applied and not self.updater.failed:
                self.updater.failed = f"hotreload failed while {stage[0]} generation {self.updater.baseline.generation}"
            first = (str(exc).splitlines() or [""])[0]
            message = f"hotreload failed while {stage[0]} ({type(exc).__name__}: {first}); " + (
                "the update reached the app but could not be checked: nothing more is applied, restart the app"
                if applied else "nothing of this save was applied; the app keeps running the last good code")
            self.report.error(message, "failed", reason=message, stage=stage[0],
                              traceback=traceback.format_exc())
            return self._record(Outcome(OutcomeKind.FAILED, message=message))

    @property
    def updater(self) -> Updater | None:
        """The app's own assembly's updater (None before start)."""
        return self.parts[-1].updater if self.parts else None

    @property
    def previous(self) -> Build:
        """The app's build that runs (the next save is compared with it)."""
        return self.parts[-1].previous

    @property
    def previous_pdb(self) -> Pdb | None:
        return self.parts[-1].previous_pdb

    def _reload(self, stage: list[str]) -> Outcome:
        assert self.updater is not None and self.app is not None
        failed = next((p.updater.failed for p in self.parts if p.updater.failed), None)
        if failed:
            self.report.error(f"not applying: {failed}; the app needs a restart", "failed", reason=failed)
            return self._record(Outcome(OutcomeKind.FAILED, message=f"an earlier update failed "
                                        f"({failed}); nothing more is applied: restart the app"))
        with self._edits_lock:
            csharp, self._csharp_edits = sorted(self._csharp_edits), set()
        if csharp:
            return self._refuse([Refusal(RefusalKind.CSHARP, path.parent.name, "hotreload applies F# code only",
                                         location=path.name) for path in csharp], {})
        timings: dict[str, float] = {}
        result = self.compiler.build() if self.compiler is not None else self.builder.build()
        timings["build"] = result.seconds
        if result.how != "warm fsc" or self.libraries:  # `dotnet build` may have rewritten bin/, whatever its result
            self._built_from = None
        elif result.ok and self.compiler is not None:  # a failed warm compile leaves bin/ as it was
            self._built_from = self.compiler.compiled_from
        if not result.ok:
            self.report.error(f"compile error ({_ms(result.seconds)}); the app keeps running the last good code:\n"
                              + "\n".join(str(e) for e in result.errors), "compile-error",
                              errors=[str(e) for e in result.errors], ms=round(result.seconds * 1000))
            return self._record(Outcome(OutcomeKind.COMPILE_ERROR, errors=result.errors, timings=timings))
        stage[0] = "comparing the builds"
        t = time.perf_counter()
        changes: list[tuple[Part, Build, Pdb | None, str, Diff]] = []
        refusals: list[Refusal] = []
        inputs: dict[str, CompileInputs | None] = {}  # part -> what its new build's compile read
        for part in self.parts:  # libraries first: a save that adds to one and uses it from the app is one update
            try:
                digest = _file_digest(part.dll)
            except OSError:
                continue
            if digest == part.seen:  # not rebuilt by this save: nothing to read or compare
                continue
            new_build, new_pdb = load_build(str(part.dll))
            read = inputs[part.name] = self.compiler.inputs_of(part.dll) \
                if self.compiler is not None and result.how == "warm fsc" else None
            # the files both builds' compiles compiled alike: their entities are not compared (hotreload.carry)
            prefix = read.unchanged_prefix(part.inputs) if read is not None else frozenset()
            diff = diff_builds(part.previous, new_build, self.capabilities, (part.previous_pdb, new_pdb), prefix)
            assert diff.new is not None
            refusals += [locate(r, [(diff.new, new_pdb), (part.previous, part.previous_pdb)]) for r in diff.refusals]
            changes.append((part, diff.new, new_pdb, digest, diff))  # with running names for moved generated code
        timings["diff"] = time.perf_counter() - t
        if refusals:
            return self._refuse(refusals, timings)
        if all(diff.empty for *_rest, diff in changes):
            moved = 0
            for part, new_build, new_pdb, digest, diff in changes:
                part.previous, part.previous_pdb, part.seen = new_build, new_pdb, digest
                part.inputs = inputs[part.name]
                if diff.moved and new_pdb is not None:  # same code on new lines: stack traces follow
                    baseline = part.updater.baseline
                    part.updater.lines.update_from(new_pdb, {baseline.defs[c.key] & 0xFFFFFF: c.new_rid
                                                             for c in diff.moved if c.key in baseline.defs})
                    moved += len(diff.moved)
            message = f"; line numbers updated for {moved} moved method(s)" if moved else ""
            self.report.info(f"built in {_ms(timings['build'])}; no code changes to apply{message}", "built",
                             ms=round(timings["build"] * 1000))
            return self._record(Outcome(OutcomeKind.NO_CHANGE, timings=timings, message=message.lstrip("; ")))
        stage[0] = "writing the delta"
        t = time.perf_counter()
        deltas: list[tuple[Part, Delta, Build, Pdb | None, str]] = []
        for part, new_build, new_pdb, digest, diff in changes:
            if diff.empty:
                part.previous, part.previous_pdb, part.seen = new_build, new_pdb, digest
                part.inputs = inputs[part.name]
                continue
            try:
                deltas.append((part, build_delta(part.updater.baseline, new_build, new_pdb, diff), new_build,
                               new_pdb, digest))
            except UnsupportedEdit as exc:
                return self._refuse([locate(exc.refusal, [(new_build, new_pdb)])], timings)
        timings["delta"] = time.perf_counter() - t
        self.app.add_dependencies(self.builder.out_dir, self.builder.snapshot)  # a package added since the start
        t = time.perf_counter()
        plans: dict[str, Plan] = {}  # module-level values to compute again, per assembly, in build order
        recomputed: set[str] = set()
        for part in self.parts:  # an assembly this save did not change may read a value another one computes again
            entry = next(((new_build, new_pdb) for p, _delta, new_build, new_pdb, _digest in deltas if p is part),
                         None)
            part_diff = next((d for p, *_x, d in changes if p is part), None)
            # a build with module-level values: any code the save changes may be what one of them computes
            if entry is not None and part_diff is not None and (recomputed or has_module_values(entry[0])):
                plans[part.name] = plan(part.previous, part.previous_pdb, *entry, [c.key for c in part_diff.changed],
                                        part_diff.initializer_code, recomputed)
            elif entry is None and recomputed:
                plans[part.name] = plan(part.previous, part.previous_pdb, part.previous, part.previous_pdb,
                                        read_elsewhere=recomputed)
            if part.name in plans:
                recomputed |= {v.name for v in plans[part.name].run}
        timings["diff"] += time.perf_counter() - t  # which module-level values the save changes: comparing too
        held: list[str] = []  # read from the running code before it changes (and while its frames run)
        for part, _delta, new_build, *_more in deltas:
            diff = next(d for p, *_x, d in changes if p is part)
            if diff.deleted:
                running = self._entry_key if part is self.parts[-1] and self.app.running else None
                held += holders(part.previous, new_build, diff.deleted, running)
        stage[0] = "applying"
        timings["apply"] = 0.0
        applied: list[str] = []
        for part, delta, new_build, new_pdb, digest in deltas:  # in build order: what the app's new code uses is there
            try:
                timings["apply"] += part.updater.apply(delta)
            except ApplyFailed as exc:
                message = str(exc) + (f" ({', '.join(applied)} already applied)" if applied else "")
                self.report.error(message, "failed", reason=message)
                return self._record(Outcome(OutcomeKind.FAILED, message=message, timings=timings))
            part.previous, part.previous_pdb, part.seen = new_build, new_pdb, digest
            part.inputs = inputs[part.name]
            applied.append(f"{part.name} generation {delta.generation}")
        stage[0] = "verifying"
        t = time.perf_counter()
        verification = Verification()
        for part, delta, *_rest in deltas:
            checked = part.updater.verify(delta)
            for name in ("il_matches", "jitted", "visible", "problems", "warnings"):
                getattr(verification, name).extend(getattr(checked, name))
        timings["verify"] = time.perf_counter() - t
        names = [name for _part, delta, *_rest in deltas for name in delta.summary]
        generations = {part.name: delta.generation for part, delta, *_rest in deltas}
        app_delta = next((delta for part, delta, *_rest in deltas if part is self.parts[-1]), None)
        generation = app_delta.generation if app_delta is not None else deltas[-1][1].generation
        stages = ", ".join(f"{k} {_ms(v)}" for k, v in timings.items())
        for warning in verification.warnings:
            self.report.warn(warning, "warning")
        if verification.problems:
            for part, delta, *_rest in deltas:
                part.updater.failed = f"{part.name} generation {delta.generation} did not verify"
            message = (f"{', '.join(applied)} reached the app but did not verify: "
                       + "; ".join(verification.problems) + "; nothing more is applied: restart the app")
            if applied == [f"{self.parts[-1].name} generation {generation}"]:
                message = (f"generation {generation} reached the app but did not verify: "
                           + "; ".join(verification.problems) + "; nothing more is applied: restart the app")
            self.report.error(message, "failed", reason=message, generation=generation,
                              problems=verification.problems)
            return self._record(Outcome(OutcomeKind.FAILED, generation, names, timings,
                                        verification=verification, message=message, assemblies=generations))
        which = (f"generation {generation}" if list(generations) == [self.parts[-1].name]
                 else ", ".join(applied))
        self.report.ok(f"applied {which}: {', '.join(names)} ({stages})", "applied",
                       generation=generation, methods=names, assemblies=generations,
                       ms={k: round(v * 1000, 1) for k, v in timings.items()})
        count = sum(len(delta.method_tokens) for _part, delta, *_rest in deltas)
        checked_text = f"verified without running app code: IL read back for {len(verification.il_matches)}/" \
                       f"{count}, JIT-compiled {len(verification.jitted)}"
        if verification.visible:
            checked_text += f", {len(verification.visible)} added member(s) visible through reflection"
        self.report.info(checked_text, "verified", il=len(verification.il_matches),
                         jitted=len(verification.jitted), visible=len(verification.visible))
        for sentence in held:
            self.report.warn(sentence, "holders")
        added_fields = [name for *_x, diff in changes for name in diff.record_fields]
        if added_fields:
            self.report.info(f"record field(s) added: {', '.join(added_fields)}; records built before this save hold "
                             "the field's default value (null, 0, false)", "record-fields", fields=added_fields)
        done, kept, startup_code = self._module_values(plans, timings)
        next_call = self._startup_edits(app_delta, self.parts[-1].previous) if app_delta is not None else []
        if next_call:
            self.report.warn(f"{', '.join(next_call)} runs at startup and has already run: restart to pick it up "
                             "(r restarts the app; its state is lost)", "startup-code", methods=next_call)
        return self._record(Outcome(OutcomeKind.APPLIED, generation, names, timings, verification=verification,
                                    next_call=next_call, assemblies=generations, holders=held, reevaluated=done,
                                    values_kept=kept, startup_code=startup_code, record_fields=added_fields))

    def _module_values(self, plans: dict[str, Plan], timings: dict[str, float]) -> tuple[list[str], list[str],
                                                                                         list[str]]:
        """Compute the edited module-level values again (hotreload.module_values, hotreload.reevaluate), libraries
        first, and say what was computed, what keeps its value and what only a restart picks up."""
        done: list[str] = []
        kept: list[str] = []
        startup_code: list[str] = []
        t = time.perf_counter()
        for part in self.parts:
            values = plans.get(part.name)
            if values is None:
                continue
            result = reevaluate(part.updater.assembly, values.run) if values.run else None
            if result is not None:
                done += [name for name in result.done if "@" not in name]  # not a compiler's (`let a, b = ...`)
                startup_code += result.failed
            kept += [f"{v.name} keeps its value: {why}" for v, why in values.kept]
            startup_code += [f"{v.name}: its new initializer cannot be run on its own ({why}); restart to pick it "
                             "up" for v, why in values.unsafe]
            startup_code += [f"{what} runs at startup and has already run: restart to pick it up"
                             for what in values.statements]
        if done or startup_code:
            timings["values"] = time.perf_counter() - t
        if done:
            self.report.ok(f"re-evaluated {', '.join(done)}", "reevaluated", values=done)
        for sentence in kept:
            self.report.info(sentence, "value-kept")
        for sentence in startup_code:
            self.report.warn(sentence + " (r restarts the app; its state is lost)", "startup-code")
        return done, kept, startup_code

    def _startup_edits(self, delta: Delta, build: Build) -> list[str]:
        """Updated methods that run only while the app starts (hotreload.startup): the entry point and what only it
        calls once. While the app runs they have already run and will not run again: the edit takes effect only
        after a restart (a web app's routes and services, a console app's `main` loop)."""
        if self.app is None or not self.app.running or self._entry_key is None:
            return []
        entry = build.methods.get(self._entry_key)
        if entry is None:
            return []
        updated = {build.methods[k]: k for k in delta.method_tokens if k in build.methods}
        return [_startup_name(display_name(updated[rid])) for rid in sorted(startup_only(build, entry, set(updated)))]

    def _refuse(self, refusals: list[Refusal], timings: dict[str, float]) -> Outcome:
        lines = "\n".join(f"  - {r}" for r in refusals)
        self.report.warn(f"edit not applied (nothing of it was applied; the app keeps running):\n{lines}", "refused",
                         refusals=[str(r) for r in refusals], kinds=[r.kind.value for r in refusals])
        return self._record(Outcome(OutcomeKind.REFUSED, refusals=refusals, timings=timings))


def replace_in_source(raw: bytes, old: str, new: str, file: Path) -> bytes:
    """`raw` with the one occurrence of `old` replaced by `new`, every other byte kept (BOM, encoding, CRLF)."""
    boms = {b"\xef\xbb\xbf": "utf-8", b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
    bom = next((b for b in boms if raw.startswith(b)), b"")
    codec = boms.get(bom, "utf-8")
    try:
        text = raw[len(bom):].decode(codec)
    except UnicodeDecodeError as exc:
        raise SessionError(f"{file}: not UTF-8 or UTF-16 text ({exc.reason} at byte {exc.start})") from None
    if "\r\n" in text:  # the edit is written with \n; a CRLF file gets CRLF where the converted text matches
        crlf_old, crlf_new = (re.sub(r"(?<!\r)\n", "\r\n", x) for x in (old, new))
        if text.count(crlf_old) == 1:
            old, new = crlf_old, crlf_new
    count = text.count(old)
    if count != 1:
        raise SessionError(f"{file}: the text to replace occurs {count} times (it must occur once): {old!r}")
    return bom + text.replace(old, new).encode(codec)
