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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import processes
from .build import BUILD_PROPERTIES, BUILD_TIMEOUT_VARIABLE, Builder, BuildResult, Diagnostic, ProjectError, setting
from .errors import HotReloadError
from .processes import Child, Owner, StepTimedOut, Stopped

# fsc options whose value is a path (relative to the project folder in MSBuild's arguments)
_PATH_OPTIONS = ("-o:", "--out:", "--pdb:", "--doc:", "-r:", "--reference:", "--sourcelink:", "--keyfile:",
                 "--win32manifest:", "--win32res:", "--resource:", "--embed:", "--refout:")
_MSBUILD_FILES = ("Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props")
WORKER_START_TIMEOUT = 120.0
COMPILE_TIMEOUT_VARIABLE = "HOTRELOAD_COMPILE_TIMEOUT"
COMPILE_TIMEOUT = 120.0
"""Seconds the worker may take to start or to answer one compile (a warm compile takes well under a second for
thousands of functions); past it the worker is taken as hung, stopped, and replaced after a `dotnet build`."""
WARM_UP_COMPILES = 2
"""Compiles done at start-up, so the compiler's hot paths are jitted before the first save."""
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

    def compile(self, args: list[str], timeout: float | None = None) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"args": args}) + "\n")
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


class WarmCompiler:
    """Builds like `Builder.build()`, through the warm worker whenever MSBuild's inputs are as last seen.

    `warm_up()` (slow: MSBuild, worker start, one compile to a scratch folder) runs once in the background after
    the first `dotnet build`; `build()` waits for it. `on_fallback` hears why a save went through `dotnet build`.
    `compile_timeout` (default HOTRELOAD_COMPILE_TIMEOUT or 120 s) bounds the worker's start and each compile.
    `close()` ends the worker, MSBuild and any build of `builder` in progress, with everything they started.
    """

    def __init__(self, builder: Builder, on_fallback: Callable[[str], None] | None = None,
                 compile_timeout: float | None = None) -> None:
        self.builder = builder
        self.on_fallback = on_fallback or (lambda reason: None)
        self.compile_timeout = (compile_timeout if compile_timeout is not None
                                else setting(COMPILE_TIMEOUT_VARIABLE, COMPILE_TIMEOUT))
        self.processes = Owner()
        self.args: list[str] | None = None
        self._key = ""
        self.compiled_from: tuple[dict[str, str], str] = ({}, "")  # the last warm compile's source digests, inputs
        self._worker: Worker | None = None
        self._problem: str | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Lock()
        self._failures = 0
        self._compiling = False  # a save's compile is in the worker (writing the assembly in obj/)

    # ---- warm-up ----------------------------------------------------------------------------------
    def warm_up_in_background(self) -> None:
        threading.Thread(target=self.warm_up, name="hotreload-warm-up", daemon=True).start()

    def warm_up(self) -> None:
        """Ask MSBuild for the arguments, start the worker and compile once (output to a scratch folder)."""
        try:
            self._refresh_arguments()
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
            for _ in range(WARM_UP_COMPILES):
                worker.compile([f"-o:{scratch}" if a.startswith(("-o:", "--out:")) else a for a in self.args],
                               self.compile_timeout)
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

    def _refresh_arguments(self) -> None:
        key = inputs_key(self.builder.project)
        self.args = compiler_arguments(self.builder, self.processes)
        self._key = key

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
            if reason is None:
                # what this compile is made from, read before it starts (a save during it shows as a difference)
                self.compiled_from = self.builder.digests(self.sources()), self._key
                warm = self._compile()
                if warm is not None:
                    return warm
                reason = self._problem or "the warm compiler stopped"
            self.on_fallback(reason)
            result = self.builder.build()
            if result.ok and not self._closed and self._failures < MAX_WARM_UP_FAILURES:
                self._ready.clear()  # the next save waits for the new arguments (and a new worker if need be)
                self.warm_up_in_background()
            return result

    def _why_not_warm(self) -> str | None:
        if not self._ready.is_set():
            return "the warm compiler is still starting"
        if self._problem is not None:
            return f"the warm compiler is unavailable ({self._problem.splitlines()[0]})"
        if self._worker is None or self.args is None:
            return "the warm compiler is not running"
        try:
            if inputs_key(self.builder.project) != self._key:
                return f"{self.builder.project.name} (or an MSBuild file it imports) changed"
        except OSError as exc:
            return f"cannot read the project: {exc}"
        missing = [a for a in self.args if not a.startswith("-") and not os.path.exists(a)]
        if missing:
            return f"{Path(missing[0]).name} no longer exists"
        return None

    def _compile(self) -> BuildResult | None:
        """Compile with the worker; None when it is gone (it is then started again after a `dotnet build`)."""
        worker = self._worker
        assert self.args is not None and worker is not None
        start = time.perf_counter()
        output = output_of(self.args)
        try:
            self._compiling = True
            reply = worker.compile(self.args, self.compile_timeout)
        except ProjectError as exc:
            self._problem = str(exc) if isinstance(exc, WorkerTimedOut) else f"the warm compiler stopped ({exc})"
            worker.close()
            self.builder.discard_intermediate()  # it may have been writing the assembly
            with self._closing:
                if self._worker is worker:
                    self._worker = None
            return None
        finally:
            self._compiling = False
        errors = [Diagnostic(file, line, column, code, message) for file, line, column, code, message
                  in reply["errors"]]
        if reply["failure"] and not errors:
            errors = [Diagnostic(str(self.builder.project), 0, 0, "FSC", reply["failure"])]
        ok = bool(reply["ok"]) and output.exists()
        if ok:  # what dotnet build's copy step does for the compiled assembly and its symbols
            self.builder.out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(output, self.builder.dll)
            pdb = output.with_suffix(".pdb")
            if pdb.exists():
                shutil.copyfile(pdb, self.builder.dll.with_suffix(".pdb"))
        return BuildResult(ok, self.builder.dll, time.perf_counter() - start, errors, "", how="warm fsc")

    def sources(self) -> list[str]:
        """The source files of the compile the worker is armed with (none when it is not)."""
        return [a for a in self.args or [] if not a.startswith("-") and a.endswith((".fs", ".fsi", ".fsx"))]

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
        if building or compiling:  # cut short while writing the assembly, maybe
            self.builder.discard_intermediate()
