"""Builds an F# project with the dotnet CLI into our own folder, with settings that keep it editable."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from . import processes
from .errors import HotReloadError
from .processes import Owner, StepTimedOut, Stopped

# Debug, no optimization, portable PDB, deterministic: what the runtime needs to accept deltas and what
# keeps two builds of the same source comparable.
BUILD_PROPERTIES = {
    "Configuration": "Debug",
    "Optimize": "false",
    "DebugType": "portable",
    "DebugSymbols": "true",
    "Deterministic": "true",
    "SatelliteResourceLanguages": "en",
    "GenerateDocumentationFile": "false",
    "TreatWarningsAsErrors": "false",
    # a library's build copies FSharp.Core and its packages beside it, as an app's does: the host resolves them
    # from there (the Python API loads libraries too)
    "CopyLocalLockFileAssemblies": "true",
}

BUILD_TIMEOUT_VARIABLE = "HOTRELOAD_BUILD_TIMEOUT"
BUILD_TIMEOUT = 600.0
"""Seconds a `dotnet build` (or `dotnet msbuild`) may take: a first build restores packages, which takes minutes
on a slow network; past it the build is stopped and counts as failed, rather than hanging the loop."""

_DIAGNOSTIC = re.compile(r"^(?P<loc>.*?)(?:\((?P<line>\d+),(?P<col>\d+)\))?\s*:\s*(?P<sev>error|warning)\s+"
                         r"(?P<code>[A-Z]+\d+)\s*:\s*(?P<msg>.*?)(?:\s+\[[^\]]*\])?$")


REUSE_VARIABLE = "HOTRELOAD_REUSE_BUILD"
"""Set by a restart for the process it execs: the fingerprint of the build it may start from (Builder.reuse)."""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ProjectError(HotReloadError):
    """The project cannot be used (missing, not F#, no SDK...): the message says what to do."""


@dataclass
class Diagnostic:
    file: str
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}({self.line},{self.column})" if self.line else self.file
        return f"{where}: error {self.code}: {self.message}"


@dataclass
class BuildResult:
    ok: bool
    dll: Path
    seconds: float
    errors: list[Diagnostic] = field(default_factory=list)
    output: str = ""
    how: str = "dotnet build"


def find_project(path: str | os.PathLike[str]) -> Path:
    """Accept a .fsproj, a .sln or .slnx with one F# app project, or a folder holding one of them; refuse anything
    else with a clear message."""
    from .solution import SolutionError, app_of_solution

    p = Path(path).resolve()
    if p.is_dir():
        found = sorted(p.glob("*.fsproj"))
        solutions = sorted([*p.glob("*.sln"), *p.glob("*.slnx")])
        if not found and len(solutions) == 1:
            p = solutions[0]
        elif not found and solutions:
            raise ProjectError(f"{p}: {len(solutions)} solutions in this folder "
                               f"({', '.join(q.name for q in solutions)}); pass the one to run, or its app's .fsproj")
        elif not found:
            others = sorted(q.name for q in p.glob("*.*proj")) + [q.name for q in solutions]
            seen = f" (only {', '.join(others)})" if others else ""
            raise ProjectError(f"{p}: no F# project (.fsproj) in this folder{seen}; "
                               "pass the path of an .fsproj, of a solution, or of the folder that holds it")
        elif len(found) > 1:
            raise ProjectError(f"{p}: {len(found)} F# projects in this folder ({', '.join(q.name for q in found)}); "
                               "pass the .fsproj to run")
        else:
            p = found[0]
    if not p.exists():
        raise ProjectError(f"{p}: no such project file or folder; check the path")
    if p.suffix in (".sln", ".slnx"):
        try:
            return app_of_solution(p)
        except SolutionError as exc:
            raise ProjectError(str(exc)) from None
    if p.suffix != ".fsproj":
        raise ProjectError(f"{p}: not an F# project: hotreload works on F# projects (.fsproj); "
                           "pass an .fsproj, a solution, or the folder that holds it")
    return p


def assembly_name(project: Path) -> str:
    """AssemblyName from the project file, else the file name (MSBuild's default)."""
    try:
        root = ET.parse(project).getroot()
    except ET.ParseError as exc:
        raise ProjectError(f"{project}: the project file is not valid XML ({exc}); fix it and save again") from None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "AssemblyName" and el.text and "$(" not in el.text:
            return el.text.strip()
    return project.stem


def check_sdk() -> str:
    """The dotnet SDK version; refuse when there is none or it is older than 10."""
    exe = shutil.which("dotnet")
    if exe is None:
        raise ProjectError("the .NET SDK was not found: install the .NET 10 SDK and put `dotnet` on PATH")
    proc = _query([exe, "--version"])
    version = proc.stdout.strip()
    major = version.split(".")[0]
    if proc.returncode != 0 or not major.isdigit():
        raise ProjectError(f"`{exe} --version` failed ({proc.stderr.strip() or version or 'no output'}); "
                           "install the .NET 10 SDK (or check a global.json that pins an SDK not installed)")
    if int(major) < 10:
        raise ProjectError(f"the .NET SDK that `dotnet` ({exe}) runs here is {version}, too old: hotreload needs the "
                           ".NET 10 SDK; install it and put it first on PATH (or check a global.json that pins "
                           "an older SDK)")
    return version


def setting(variable: str, default: float) -> float:
    """A deadline from the environment (ProjectError for a bad value, which the command line reports)."""
    try:
        return processes.seconds_from_env(variable, default)
    except HotReloadError as exc:
        raise ProjectError(str(exc)) from None


def _query(cmd: list[str]) -> processes.Completed:
    """A quick question to the dotnet CLI, with a deadline: a hung SDK is reported, not waited on forever."""
    try:
        return processes.run(cmd, f"`{' '.join(cmd)}`", processes.QUERY_TIMEOUT, None,
                             "hotreload cannot go on without its answer; check that `dotnet` runs in this shell")
    except (StepTimedOut, Stopped) as exc:
        raise ProjectError(str(exc)) from None


def sdk_fsharp_dir() -> Path:
    """The SDK's FSharp folder (fsc, its compiler service, FSharp.Core) for the SDK `dotnet` picks here."""
    exe = shutil.which("dotnet")
    if exe is None:
        raise ProjectError("the .NET SDK was not found: install the .NET 10 SDK and put `dotnet` on PATH")
    version = _query([exe, "--version"]).stdout.strip()
    folder = Path(os.path.realpath(exe)).parent / "sdk" / version / "FSharp"
    if not (folder / "FSharp.Compiler.Service.dll").exists():
        raise ProjectError(f"no FSharp.Compiler.Service.dll in {folder}: is the .NET {version} SDK complete?")
    return folder


def parse_diagnostics(output: str) -> list[Diagnostic]:
    seen: set[str] = set()
    out: list[Diagnostic] = []
    for raw in output.splitlines():
        m = _DIAGNOSTIC.match(raw.strip())
        if not m or m["sev"] != "error":
            continue
        d = Diagnostic(m["loc"].strip(), int(m["line"] or 0), int(m["col"] or 0), m["code"], m["msg"].strip())
        if str(d) not in seen:
            seen.add(str(d))
            out.append(d)
    return out


class Builder:
    """Runs `dotnet build` for one project into `<project dir>/.hotreload/` (never the user's bin/ or obj/).

    Each build has a deadline (`timeout`, default HOTRELOAD_BUILD_TIMEOUT or 600 s) and runs in a process group of
    its own; `close()` ends a build in progress (and its compiler) and refuses new ones.
    """

    def __init__(self, project: Path, work_dir: Path | None = None, timeout: float | None = None) -> None:
        self.project = project
        self.work_dir = work_dir or project.parent / ".hotreload"
        self.out_dir = self.work_dir / "bin"
        self.obj_dir = self.work_dir / "obj"
        self.dll = self.out_dir / f"{assembly_name(project)}.dll"
        self.timeout = timeout if timeout is not None else setting(BUILD_TIMEOUT_VARIABLE, BUILD_TIMEOUT)
        self.processes = Owner()
        self.succeeded = False

    def command(self) -> list[str]:
        props = dict(BUILD_PROPERTIES, IntermediateOutputPath=f"{self.obj_dir}/", OutDir=f"{self.out_dir}/")
        return ["dotnet", "build", str(self.project), "--nologo", "-v:q", "-clp:NoSummary", "-nodeReuse:false",
                "--disable-build-servers", *(f"-p:{k}={v}" for k, v in props.items())]

    def build(self) -> BuildResult:
        start = time.perf_counter()
        then = ("the app keeps running its last good code and the next save builds again" if self.succeeded
                else "hotreload cannot start without this first build")
        try:
            proc = self.processes.run(self.command(), "`dotnet build`", self.timeout, BUILD_TIMEOUT_VARIABLE, then,
                                      cwd=self.project.parent)
        except (StepTimedOut, Stopped) as exc:
            self.discard_intermediate()
            code = "TIMEOUT" if isinstance(exc, StepTimedOut) else "STOPPED"
            return BuildResult(False, self.dll, time.perf_counter() - start,
                               [Diagnostic(str(self.project), 0, 0, code, str(exc))], str(exc))
        except BaseException:  # Ctrl-C inside the build: what it was writing may be half-written
            self.discard_intermediate()
            raise
        output = proc.stdout + proc.stderr
        errors = parse_diagnostics(output)
        ok = proc.returncode == 0 and self.dll.exists()
        if not ok and not errors:
            errors = [Diagnostic(str(self.project), 0, 0, "BUILD", output.strip()[-2000:] or "dotnet build failed")]
        self.succeeded = self.succeeded or ok
        return BuildResult(ok, self.dll, time.perf_counter() - start, errors, output)

    def close(self) -> None:
        """End a build in progress with everything it started; later builds fail at once as stopped."""
        running = self.take_running()
        processes.stop_children(running)
        if running:
            self.discard_intermediate()

    def take_running(self) -> list[processes.Child]:
        """Refuse new builds and hand over the running one, to be stopped (with the compiler's processes)."""
        return self.processes.take_all()

    def discard_intermediate(self) -> None:
        """A build cut short may leave a half-written assembly in obj/ or bin/, newer than the sources: the next
        build would take it as up to date and copy (or keep) it. Deleting them makes that build compile again."""
        for folder in (self.obj_dir, self.out_dir):
            self._discard(folder / self.dll.name)

    @staticmethod
    def _discard(dll: Path) -> None:
        for path in (dll, dll.with_suffix(".pdb")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    # ---- a restart reuses the last build of the same sources ------------------------------------------
    @staticmethod
    def digests(sources: list[str]) -> dict[str, str]:
        """Each source's content digest: taken before a compile, so a save during it shows as a difference."""
        try:
            return {path: _digest(Path(path)) for path in sources}
        except OSError:
            return {}

    def fingerprint(self, sources: dict[str, str], inputs: str) -> str:
        """What the build just made in `out_dir` came from: the project's MSBuild inputs (`inputs`, a digest) and
        the sources' digests taken before it, with the assembly's; for the process a restart execs
        (REUSE_VARIABLE)."""
        return json.dumps({"project": str(self.project), "inputs": inputs, "dll": _digest(self.dll),
                           "sources": sources})

    def reuse(self, fingerprint: str | None, inputs: str) -> BuildResult | None:
        """The build in `out_dir`, when `fingerprint` says it was made from exactly the files there are now (the
        warm compile of the save that asked for the restart): a restart then starts at once instead of running
        `dotnet build` again. None on any difference."""
        start = time.perf_counter()
        try:
            made = json.loads(fingerprint or "null")
            if not isinstance(made, dict) or made.get("project") != str(self.project) or made.get("inputs") != inputs:
                return None
            if made.get("dll") != _digest(self.dll) or not made.get("sources"):
                return None
            if any(_digest(Path(path)) != digest for path, digest in made["sources"].items()):
                return None
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        self.succeeded = True
        return BuildResult(True, self.dll, time.perf_counter() - start, how="reused")

    def snapshot(self, name: str) -> Path:
        """Copy the build output aside, so the loaded files are never overwritten by the next build."""
        dest = self.work_dir / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(self.out_dir, dest)
        return dest / self.dll.name
