"""Rebuilds with a warm compiler: fsc's arguments asked of MSBuild once, the compiler kept loaded in a worker.

The result is the assembly `dotnet build` gives (same compiler, same arguments, same working directory): only
MSBuild's start-up and the compiler's cold start are skipped. MSBuild is asked again whenever its inputs change
(the project file, Directory.Build.props/targets, a listed source file that disappeared); that save, and any save
while the worker is unavailable, goes through `dotnet build` as before.

Every request to the worker has a deadline (HOTRELOAD_COMPILE_TIMEOUT, 120 s): a worker that does not answer is
stopped, that save is built with `dotnet build` and a new worker is started after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import processes
from .build import BUILD_PROPERTIES, BUILD_TIMEOUT_VARIABLE, Builder, BuildResult, Diagnostic, ProjectError, setting
from .compile_inputs import CompileInputs
from .errors import HotReloadError
from .processes import Child, Owner, StepTimedOut, Stopped
from .solution import interface_digest

# fsc options whose value is a path (relative to the project folder in MSBuild's arguments)
_PATH_OPTIONS = ("-o:", "--out:", "--pdb:", "--doc:", "-r:", "--reference:", "--sourcelink:", "--keyfile:",
                 "--win32manifest:", "--win32res:", "--resource:", "--embed:", "--refout:")
_MSBUILD_FILES = ("Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "global.json")
WORKER_START_TIMEOUT = 120.0
COMPILE_TIMEOUT_VARIABLE = "HOTRELOAD_COMPILE_TIMEOUT"
COMPILE_TIMEOUT = 120.0
"""Seconds the worker may take to start or to answer one compile (a warm compile takes well under a second for
thousands of functions); past it the worker is taken as hung, stopped, and replaced after a `dotnet build`."""
WARM_UP_COMPILES = 3
"""The warm-up compiles three times (public, kept imports, incremental check), which also JIT-compiles the compiler's
hot paths before the first save: its deadline is three compiles'."""
WORKER_RUNTIME_SETTINGS = {
    "DOTNET_TieredPGO": "0",  # a few hundred compiles never pay back instrumented code
    "DOTNET_GCgen0size": "0x4000000",  # 64 MB gen0: a compile allocates a few hundred MB in short-lived objects
    "DOTNET_gcConcurrent": "0",  # no background GC thread competing for the 2 cores during a compile
}
"""Measured on sample_app with 2 cores: median warm compile 0.46 s with the defaults, 0.23-0.26 s with these."""
MAX_WARM_UP_FAILURES = 3
"""After this many failed warm-ups every save goes through `dotnet build` (each said so) without more tries."""


def msbuild_inputs(project: Path) -> list[Path]:
    """Files whose change changes fsc's arguments: the project and the MSBuild files imported from above it."""
    found = [project]
    for folder in [project.parent, *project.parent.parents]:
        found += [folder / name for name in _MSBUILD_FILES if (folder / name).exists()]
    return found


def inputs_key(project: Path) -> str:
    digest = hashlib.sha256()
    for path in msbuild_inputs(project):
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _absolute(arg: str, base: Path) -> str:
    for option in _PATH_OPTIONS:
        if arg.startswith(option):
            value = arg[len(option):]
            return option + (value if os.path.isabs(value) else str(base / value))
    if not arg.startswith("-") and not os.path.isabs(arg):
        return str(base / arg)
    return arg


def compiler_arguments(builder: Builder, owner: Owner | None = None) -> list[str]:
    """fsc's arguments as MSBuild computes them for `builder`'s build, with absolute paths.

    MSBuild runs the compile target with the compiler switched off, in an obj folder of its own: in the real one an
    up-to-date compile step is skipped and gives no arguments. That folder's name is then put back to the real one.
    It has the build's deadline; `owner` (default: one of its own) can end it early.
    """
    probe = builder.work_dir / "args-obj"
    props = dict(BUILD_PROPERTIES, IntermediateOutputPath=f"{probe}/", OutDir=f"{builder.out_dir}/",
                 ProvideCommandLineArgs="true", SkipCompilerExecution="true",
                 BuildProjectReferences="false")  # built by the first build; building them again here, with the
    # compiler off and our obj folder global, would fail to copy their missing output and give no arguments
    cmd = ["dotnet", "msbuild", str(builder.project), "-t:Compile", "-nologo", "-nodeReuse:false",
           "-getItem:FscCommandLineArgs", *(f"-p:{k}={v}" for k, v in props.items())]
    try:
        proc = (owner or Owner()).run(
            cmd, "`dotnet msbuild` (asked for the compiler's arguments)", builder.timeout, BUILD_TIMEOUT_VARIABLE,
            "saves are built with `dotnet build`, and MSBuild is asked again after the next one",
            cwd=builder.project.parent)
    except (StepTimedOut, Stopped) as exc:
        raise ProjectError(str(exc)) from None
    try:
        items = json.loads(proc.stdout)["Items"]["FscCommandLineArgs"]
    except (ValueError, KeyError) as exc:
        raise ProjectError(f"{builder.project}: MSBuild did not give the compiler's arguments "
                           f"(does `dotnet build` work?):\n{(proc.stdout + proc.stderr)[-1500:]}") from exc
    if not items:
        raise ProjectError(f"{builder.project}: MSBuild gave no compiler arguments")
    return [_absolute(item["Identity"], builder.project.parent).replace(str(probe), str(builder.obj_dir))
            for item in items]


def output_of(args: list[str]) -> Path:
    for arg in args:
        if arg.startswith(("-o:", "--out:")):
            return Path(arg.split(":", 1)[1])
    raise ProjectError("the compiler's arguments name no output assembly")


class WorkerTimedOut(ProjectError):
    """The worker did not start or answer in time; it has been stopped (the message says what happens next)."""


class Worker:
    """One compiler worker process (hotreload.compile_worker), spoken to over its stdin and stdout.

    Its replies are read by a thread of their own, so each one is awaited with a deadline (`timeout` seconds, or
    the compile's own): a worker that does not answer in time is stopped with everything it started and
    WorkerTimedOut is raised.
    """

    def __init__(self, folder: Path, log: Path, owner: Owner, timeout: float = COMPILE_TIMEOUT,
                 command: list[str] | None = None) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.timeout = timeout
        self._log = open(log, "ab")  # noqa: SIM115 - the worker writes to it for as long as it lives
        self._owner = owner
        env = processes.child_env(None, **{k: v for k, v in WORKER_RUNTIME_SETTINGS.items() if k not in os.environ})
        try:
            self.child: Child = owner.start(
                command or [sys.executable, "-m", "hotreload.compile_worker", str(folder)], "the compiler worker",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env)
        except BaseException:
            self._log.close()
            raise
        self.proc = self.child.proc
        self._replies: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        processes.reading_thread(self.proc.stdout, self._replies)
        self._lock = threading.Lock()
        try:
            hello = self._read(self.timeout, "start",
                               "saves are built with `dotnet build`, and it is started again after the next one")
        except BaseException:
            self.close()
            raise
        if not hello.get("ready"):
            self.close()
            raise ProjectError(f"the compiler worker did not start: {hello}; see {log}")
        self.driver: str = hello.get("driver", "public")  # "kept imports" (hotreload.fsc_driver) or "public"
        self.note: str | None = hello.get("note")  # why it is not "kept imports", when it could have been

    def _read(self, timeout: float, verb: str, then: str) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise WorkerTimedOut(str(StepTimedOut("the compiler worker", timeout, COMPILE_TIMEOUT_VARIABLE, then,
                                                  verb=verb))) from None
        if line is None:
            code = self.proc.poll()
            raise ProjectError(f"the compiler worker stopped (exit code {code}); see {self._log.name}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def compile(self, args: list[str], timeout: float | None = None, cwd: Path | None = None,
                verify: bool = False, warm_up_for: str | None = None) -> dict[str, Any]:
        """Compile with fsc's `args` in `cwd` (the project folder: fsc records paths relative to it; default: the
        folder the worker started in). `verify`: also compile with the public compiler entry and compare (see
        hotreload.compile_worker); `warm_up_for`: this is the warm-up (to a scratch output) of the compiles of this
        real output, which find its state (`FscService.warm_up`)."""
        with self._lock:
            assert self.proc.stdin is not None
            try:
                request: dict[str, Any] = {"args": args, "cwd": str(cwd or self.folder), "verify": verify}
                if warm_up_for is not None:
                    request.update(warm_up=True, state_as=warm_up_for)
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError) as exc:
                raise ProjectError(f"the compiler worker is gone ({exc}); see {self._log.name}") from exc
            return self._read(self.timeout if timeout is None else timeout, "answer",
                              "it is started again after this save's build")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def end_input(self) -> None:
        """End of input: the worker ends by itself once idle."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass

    def close(self) -> None:
        """End of input ends the worker at once; if it does not (busy, hung), its tree is stopped."""
        self.end_input()
        try:
            self.proc.wait(timeout=processes.STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
        self.child.stop()
        self._owner.release(self.child)
        self._log.close()


@dataclass(eq=False)
class Unit:
    """One F# project the warm compiler builds: the app, or a library of its closure (hotreload.solution).

    `compiled` holds its sources' digests as of its last good compile (or as the first build read them), so a save
    recompiles only the projects whose sources changed, and the ones built against a library whose interface did
    (`interface`, see hotreload.solution.interface_digest)."""

    builder: Builder
    references: frozenset[Path] = frozenset()  # the closure's projects it compiles against
    args: list[str] | None = None
    key: str = ""
    files: frozenset[str] = frozenset()  # F# files in its folder when MSBuild gave `args` (a glob may take more)
    compiled: dict[str, str] = field(default_factory=dict)
    interface: str = ""
    stale: bool = True  # its last compile failed, or a library it compiles against changed shape since
    built_key: str | None = None  # its MSBuild inputs as the last `dotnet build` read them (see _refresh_arguments)
    inputs: CompileInputs | None = None  # what its last warm compile read, if it succeeded (hotreload.compile_inputs)

    @property
    def project(self) -> Path:
        return self.builder.project

    def sources(self) -> list[str]:
        return [a for a in self.args or [] if not a.startswith("-") and a.endswith((".fs", ".fsi", ".fsx"))]

    def user_sources(self) -> list[str]:
        """Its sources but those MSBuild writes into obj/ (assembly attributes: they change with the project)."""
        obj = str(self.builder.obj_dir) + os.sep
        return [a for a in self.sources() if not a.startswith(obj)]


def _inputs_key_or_none(project: Path) -> str | None:
    try:
        return inputs_key(project)
    except OSError:
        return None


def folder_sources(folder: Path) -> frozenset[str]:
    """The F# source files under a project folder (build output and tool folders left out)."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in ("bin", "obj", ".hotreload", ".git", "node_modules")]
        found.update(os.path.join(dirpath, n) for n in filenames if n.endswith((".fs", ".fsi")))
    return frozenset(found)


class WarmCompiler:
    """Builds like `Builder.build()`, through the warm worker whenever MSBuild's inputs are as last seen.

    `libraries` are the F# projects the app references, directly or not, in build order, each with the projects it
    compiles against (hotreload.solution.referenced_projects): each is a `Unit` with its own arguments, compiled by
    the same worker only when its sources changed or a library it uses changed shape, and the app last. The
    libraries are compiled against each other's freshly compiled assemblies (obj/Name.dll), not the reference
    assemblies MSBuild made at the first build, which the warm compile does not rewrite.

    `warm_up()` (slow: MSBuild, worker start, compiles to a scratch folder) runs once in the background after
    the first `dotnet build`; `build()` waits for it. `on_fallback` hears why a save went through `dotnet build`;
    `on_note(note, kind)` hears what else a save did first (kind "compile-list": MSBuild asked again for a changed
    compile list) and what the compiler says of itself (kind "compiler": it compiles without kept imports, and why).
    `compile_timeout` (default HOTRELOAD_COMPILE_TIMEOUT or 120 s) bounds the worker's start and each compile.
    `close()` ends the worker, MSBuild and any build of `builder` in progress, with everything they started.
    """

    def __init__(self, builder: Builder, on_fallback: Callable[[str], None] | None = None,
                 compile_timeout: float | None = None,
                 libraries: Sequence[tuple[Builder, frozenset[Path]]] = (),
                 on_note: Callable[[str, str], None] | None = None) -> None:
        self.builder = builder
        self.on_fallback = on_fallback or (lambda reason: None)
        self.on_note = on_note or (lambda note, kind: None)
        self.compile_timeout = (compile_timeout if compile_timeout is not None
                                else setting(COMPILE_TIMEOUT_VARIABLE, COMPILE_TIMEOUT))
        self.processes = Owner()
        self.units = [*(Unit(b, refs) for b, refs in libraries),
                      Unit(builder, frozenset(b.project for b, _refs in libraries))]
        self.app = self.units[-1]
        self.compiled_from: tuple[dict[str, str], str] = ({}, "")  # the last warm compile's source digests, inputs
        self.compiled: list[str] = []  # the projects the last build compiled (their file names)
        self._worker: Worker | None = None
        self._problem: str | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Lock()
        self._failures = 0
        self._compiling: Unit | None = None  # a save's compile is in the worker (writing the assembly in obj/)
        self.on_arguments: Callable[[], None] = lambda: None  # after MSBuild gave the arguments (new sources)

    @property
    def args(self) -> list[str] | None:
        """The app's compiler arguments (None until MSBuild gave them)."""
        return self.app.args

    @property
    def _key(self) -> str:
        return self.app.key

    def remember_sources(self) -> None:
        """Take the sources as they are now as what the first build compiled (call right after it, before
        watching): a later save recompiles only the projects it touched."""
        for unit in self.units:
            unit.compiled = self.builder.digests(sorted(folder_sources(unit.project.parent)))
            unit.stale = False
            unit.built_key = _inputs_key_or_none(unit.project)

    # ---- warm-up ----------------------------------------------------------------------------------
    def warm_up_in_background(self) -> None:
        threading.Thread(target=self.warm_up, name="hotreload-warm-up", daemon=True).start()

    def warm_up(self) -> None:
        """Ask MSBuild for the arguments, start the worker and compile once (output to a scratch folder)."""
        try:
            self._refresh_arguments()
            self.on_arguments()
            for unit in self.units[:-1]:
                if not unit.interface and unit.builder.dll.exists():
                    unit.interface = interface_digest(unit.builder.dll)
            if self._worker is None:
                worker = Worker(self.builder.project.parent, self.builder.work_dir / "compiler.log", self.processes,
                                self.compile_timeout)
                with self._closing:
                    if self._closed:  # closed while it started: it must not outlive the session
                        worker.close()
                        return
                    self._worker = worker
            worker = self._worker
            assert self.args is not None and worker is not None
            scratch = self.builder.work_dir / "warm-up" / output_of(self.args).name
            scratch.parent.mkdir(parents=True, exist_ok=True)
            if worker.note:
                self.on_note(worker.note, "compiler")
            scratch_args = [f"-o:{scratch}" if a.startswith(("-o:", "--out:")) else
                            f"--pdb:{scratch.with_suffix('.pdb')}" if a.startswith("--pdb:") else a for a in self.args]
            # compares the kept-imports compile and its incremental type check with the public compile; what it
            # keeps serves the first save (hotreload.compile_worker)
            reply = worker.compile(scratch_args, WARM_UP_COMPILES * self.compile_timeout, self.builder.project.parent,
                                   warm_up_for=str(output_of(self.args)))
            if reply.get("note"):
                self.on_note(reply["note"], "compiler")
            self._problem = None
        except (HotReloadError, OSError, ValueError) as exc:
            self._problem = str(exc)
            self._failures += 1
            self._forget_dead_worker()
        finally:
            self._ready.set()

    def _forget_dead_worker(self) -> None:
        """A worker that stopped or was stopped (hung) is not used again: the next warm-up starts a new one."""
        with self._closing:
            worker = self._worker
            if worker is not None and worker.proc.poll() is not None:
                self._worker = None
        if worker is not None and self._worker is None:
            worker.close()

    def _refresh_arguments(self) -> list[Unit]:
        """Ask MSBuild for every project's arguments; a library's compile reads the other libraries' assemblies as
        the warm compile writes them. Returns the projects whose list of sources changed."""
        changed = []
        fresh = {unit.builder.dll.name: str(unit.builder.obj_dir / unit.builder.dll.name) for unit in self.units[:-1]}
        refs = {str(self.builder.obj_dir / "ref"), str(self.builder.obj_dir / "refint")}
        for unit in self.units:
            first, before = unit.args is None, unit.sources()
            # the inputs the last build read, not those of now: a project file saved since is a change next save
            key = unit.built_key if unit.built_key is not None else inputs_key(unit.project)
            unit.built_key = None
            files = folder_sources(unit.project.parent)
            args = compiler_arguments(unit.builder, self.processes)
            for i, arg in enumerate(args):
                if arg.startswith(("-r:", "--reference:")):
                    path = arg.split(":", 1)[1]
                    if os.path.dirname(path) in refs and os.path.basename(path) in fresh:
                        args[i] = f"-r:{fresh[os.path.basename(path)]}"
            unit.args, unit.key, unit.files = args, key, files
            if first and unit.compiled:  # a linked file outside the folder: as it is now, from the first build on
                unseen = [p for p in unit.user_sources() if p not in unit.compiled]
                unit.compiled.update(self.builder.digests(unseen))
            elif unit.sources() != before:
                changed.append(unit)
        return changed

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._problem is None

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    # ---- builds -------------------------------------------------------------------------------------
    def build(self) -> BuildResult:
        """One rebuild: the warm worker when it can, else `dotnet build`, after which the worker is re-armed."""
        with self._lock:
            self._ready.wait(WORKER_START_TIMEOUT)
            reason = self._why_not_warm()
            if reason is None and self._compile_list_changed():
                try:
                    for unit in self._refresh_arguments():
                        unit.stale = True  # compiled with its new list of files
                    self.on_arguments()
                    self.on_note("a source file was added or removed: MSBuild gave the compile list again", "compile-list")
                except (HotReloadError, OSError) as exc:
                    reason = f"MSBuild could not give the new compile list ({str(exc).splitlines()[0]})"
            if reason is None:
                warm = self._compile_changed()
                if warm is not None:
                    return warm
                reason = self._problem or "the warm compiler stopped"
            self.on_fallback(reason)
            before = {unit: self.builder.digests(self._sources_of(unit)) for unit in self.units}
            keys = {unit: _inputs_key_or_none(unit.project) for unit in self.units}
            result = self.builder.build()
            self.compiled = [unit.project.name for unit in self.units]
            if result.ok:  # dotnet build compiled every project whose sources changed
                for unit, digests in before.items():
                    unit.compiled, unit.stale, unit.built_key = digests, False, keys[unit]
                    if unit is not self.app and unit.builder.dll.exists():
                        unit.interface = interface_digest(unit.builder.dll)
            if result.ok and not self._closed and self._failures < MAX_WARM_UP_FAILURES:
                self._ready.clear()  # the next save waits for the new arguments (and a new worker if need be)
                self.warm_up_in_background()
            return result

    def _sources_of(self, unit: Unit) -> list[str]:
        return sorted(set(unit.user_sources()) | folder_sources(unit.project.parent))

    def _why_not_warm(self) -> str | None:
        if not self._ready.is_set():
            return "the warm compiler is still starting"
        if self._problem is not None:
            return f"the warm compiler is unavailable ({self._problem.splitlines()[0]})"
        if self._worker is None or any(unit.args is None for unit in self.units):
            return "the warm compiler is not running"
        for unit in self.units:
            try:
                if inputs_key(unit.project) != unit.key:
                    return f"{unit.project.name} (or an MSBuild file it imports) changed"
            except OSError as exc:
                return f"cannot read the project: {exc}"
            missing = [a for a in unit.args or [] if not a.startswith("-") and not os.path.exists(a)]
            if missing and Path(missing[0]).suffix not in (".fs", ".fsi"):
                return f"{Path(missing[0]).name} no longer exists"
        return None

    def _compile_list_changed(self) -> bool:
        """An F# file appeared in or left a project folder, or a listed one is gone: a glob may now match
        differently, so MSBuild is asked for the compile list again (no `dotnet build` needed)."""
        for unit in self.units:
            if folder_sources(unit.project.parent) != unit.files:
                return True
            if any(not os.path.exists(a) for a in unit.sources()):
                return True
        return False

    def _compile_changed(self) -> BuildResult | None:
        """Compile, in build order, the projects whose sources changed and those built against a library whose
        interface changed; None when the worker is gone (it is then started again after a `dotnet build`)."""
        start = time.perf_counter()
        self.compiled = []
        for unit in self.units:
            digests = self.builder.digests(unit.user_sources())
            output = output_of(unit.args or [])
            changed = not digests or any(unit.compiled.get(p) != d for p, d in digests.items())
            if not unit.stale and not changed and output.exists() and unit.builder.dll.exists():
                continue
            reply = self._compile(unit, digests)
            if reply is None:
                return None
            self.compiled.append(unit.project.name)
            if not reply.ok:
                unit.stale = True
                return replace(reply, seconds=time.perf_counter() - start)
            unit.compiled, unit.stale = {**unit.compiled, **digests}, False
            if unit is self.app:
                self.compiled_from = digests, unit.key  # what the app was compiled from (a save during it differs)
            else:
                interface = interface_digest(unit.builder.dll)
                if interface != unit.interface:
                    unit.interface = interface
                    for other in self.units:
                        if unit.project in other.references:
                            other.stale = True
        return BuildResult(True, self.builder.dll, time.perf_counter() - start, how="warm fsc")

    def _compile(self, unit: Unit, digests: dict[str, str]) -> BuildResult | None:
        """Compile one project with the worker (`digests`: its sources' as read just before); None when it is
        gone."""
        worker = self._worker
        assert unit.args is not None and worker is not None
        start = time.perf_counter()
        output = output_of(unit.args)
        inputs = CompileInputs.of(unit.args, str(unit.project.parent), digests)
        try:
            self._compiling = unit
            reply = worker.compile(unit.args, self.compile_timeout, unit.project.parent)
        except ProjectError as exc:
            self._problem = str(exc) if isinstance(exc, WorkerTimedOut) else f"the warm compiler stopped ({exc})"
            worker.close()
            unit.builder.discard_intermediate()  # it may have been writing the assembly
            with self._closing:
                if self._worker is worker:
                    self._worker = None
            return None
        finally:
            self._compiling = None
        if reply.get("note"):
            self.on_note(reply["note"], "compiler")
        errors = [Diagnostic(file, line, column, code, message) for file, line, column, code, message
                  in reply["errors"]]
        if reply["failure"] and not errors:
            errors = [Diagnostic(str(unit.project), 0, 0, "FSC", reply["failure"])]
        ok = bool(reply["ok"]) and output.exists()
        # what it compiled, when no file changed during the compile (a file saved meanwhile: unknown, so None)
        unit.inputs = inputs if ok and inputs is not None \
            and inputs == CompileInputs.of(unit.args, str(unit.project.parent)) else None
        if ok:  # what dotnet build's copy step does for the compiled assembly and its symbols
            unit.builder.out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(output, unit.builder.dll)
            pdb = output.with_suffix(".pdb")
            if pdb.exists():
                shutil.copyfile(pdb, unit.builder.dll.with_suffix(".pdb"))
        return BuildResult(ok, self.builder.dll, time.perf_counter() - start, errors, "", how="warm fsc")

    def inputs_of(self, dll: Path) -> CompileInputs | None:
        """What the last warm compile of the project whose assembly is `dll` read (None: unknown)."""
        return next((unit.inputs for unit in self.units if unit.builder.dll.name == dll.name), None)

    def sources(self) -> list[str]:
        """The app's source files in the compile the worker is armed with (none when it is not)."""
        return self.app.sources()

    def close(self) -> None:
        """Stop the worker, a warm-up's MSBuild and the builder's build in progress, all at once (Ctrl-C must end
        everything within 2 s)."""
        with self._closing:
            self._closed = True
            worker, self._worker = self._worker, None
            compiling = self._compiling
        if worker is not None:
            worker.end_input()
        building = self.builder.take_running()
        processes.stop_children(self.processes.take_all() + building)
        if worker is not None:
            worker.close()
        if building:  # cut short while writing the assembly, maybe
            for unit in self.units:
                unit.builder.discard_intermediate()
        elif compiling is not None:
            compiling.builder.discard_intermediate()
