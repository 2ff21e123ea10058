"""The projects an app is made of: its ProjectReference closure, in the order they build, and the solution files
that name an app.

The closure is read from what restore wrote (`obj/project.assets.json`): the SDK's own resolution of every project
the app references, directly or through another, with each one's references. No MSBuild run is needed for it, so
the watch list is known as soon as the first build ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .errors import HotReloadError
from .metadata.reader import Assembly

PROJECT_SUFFIXES = (".fsproj", ".csproj", ".vbproj")
INTERFACE_RESOURCES = ("FSharpSignature", "FSharpOptimization")
"""Managed resources F# dependents compile against: the signature data (every entity and type, for type checking)
and the optimization data (bodies of `inline` functions). A library edit that leaves them as they were cannot change
what its dependents compile to; one that changes them rebuilds its dependents."""


class SolutionError(HotReloadError):
    """A solution or project closure that hotreload cannot use; the message says what to pass instead."""


@dataclass(frozen=True)
class ProjectNode:
    """One project of the app's closure. `references` are all the projects it compiles against (the SDK passes
    transitive project references to the compiler too), as absolute project paths."""

    project: Path
    assembly: str
    references: frozenset[Path]

    @property
    def fsharp(self) -> bool:
        return self.project.suffix == ".fsproj"

    @property
    def name(self) -> str:
        return self.project.name


def assets_file(project: Path) -> Path:
    """Where restore writes the project's assets (MSBuildProjectExtensionsPath; hotreload's builds keep it)."""
    return project.parent / "obj" / "project.assets.json"


def referenced_projects(app: Path, assets: Path | None = None) -> list[ProjectNode]:
    """Every project the app references, directly or not, each after the projects it references (the app itself
    would come last). Raises SolutionError when the assets file cannot be read (the first build writes it)."""
    path = assets or assets_file(app)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        libraries: dict[str, dict[str, object]] = data["libraries"]
        targets: dict[str, dict[str, dict[str, object]]] = data["targets"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SolutionError(f"{path}: cannot read the projects {app.name} references ({exc}); "
                            "does `dotnet build` of it work?") from None
    target = next((t for name, t in targets.items() if "/" not in name), {})  # not a runtime-specific one
    projects: dict[str, Path] = {}
    for key, library in libraries.items():
        if library.get("type") == "project" and isinstance(library.get("path"), str):
            projects[key.split("/", 1)[0]] = (app.parent / str(library["path"])).resolve()
    direct: dict[str, set[str]] = {}
    assemblies: dict[str, str] = {}
    for key, entry in target.items():
        name = key.split("/", 1)[0]
        if name not in projects:
            continue
        deps = entry.get("dependencies") or {}
        direct[name] = {d for d in (deps if isinstance(deps, dict) else {}) if d in projects}
        runtime = entry.get("runtime") or {}
        dlls = [Path(p).stem for p in (runtime if isinstance(runtime, dict) else {}) if p.endswith(".dll")]
        assemblies[name] = dlls[0] if dlls else projects[name].stem

    def closure(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name in seen:
            raise SolutionError(f"{projects[name].name} references itself through {', '.join(sorted(seen))}")
        out: set[str] = set()
        for dep in direct.get(name, set()):
            out |= {dep} | closure(dep, seen | {name})
        return out

    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in sorted(direct.get(name, set())):
            visit(dep)
        order.append(name)

    for name in sorted(projects):
        visit(name)
    return [ProjectNode(projects[n], assemblies.get(n, projects[n].stem), frozenset(projects[d] for d in closure(n)))
            for n in order]


def interface_digest(dll: Path) -> str:
    """What F# dependents of this assembly compile against (INTERFACE_RESOURCES), as one digest."""
    resources = Assembly.from_file(str(dll)).resources()
    digest = hashlib.sha256()
    for name in sorted(resources):
        if name.startswith(INTERFACE_RESOURCES):
            digest.update(name.encode() + b"\0" + resources[name] + b"\0")
    return digest.hexdigest()


def sources_root(project: Path) -> Path:
    """The folder that holds the project and every project it references (read from the project files, before any
    build): what a copy of the app must take for its references to resolve."""
    seen: set[Path] = set()
    linked: set[Path] = set()
    todo = [project.resolve()]
    while todo:
        current = todo.pop()
        if current in seen or not current.exists():
            continue
        seen.add(current)
        try:
            root = ET.parse(current).getroot()
        except (OSError, ET.ParseError):
            continue
        for el in root.iter():
            include = el.get("Include", "").replace("\\", "/")
            if not include or "$(" in include:
                continue
            if el.tag.rsplit("}", 1)[-1] == "ProjectReference":
                todo.append((current.parent / include).resolve())
            elif el.tag.rsplit("}", 1)[-1] == "Compile" and include.startswith(".."):  # a linked source
                linked.add((current.parent / include).resolve().parent)
    return Path(os.path.commonpath([str(p.parent) for p in seen] + [str(f) for f in linked]))


# ---- solutions --------------------------------------------------------------------------------------------------
_SLN_PROJECT = re.compile(r'^Project\("\{[^}]*\}"\)\s*=\s*"[^"]*",\s*"(?P<path>[^"]+)"', re.MULTILINE)


def solution_projects(solution: Path) -> list[Path]:
    """The project files a .sln or .slnx names (solution folders and other entries left out)."""
    try:
        text = solution.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SolutionError(f"{solution}: cannot read it ({exc.strerror})") from None
    if solution.suffix == ".slnx":
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise SolutionError(f"{solution}: not valid XML ({exc})") from None
        paths = [el.get("Path", "") for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Project"]
    else:
        paths = [m["path"] for m in _SLN_PROJECT.finditer(text)]
    found = [(solution.parent / p.replace("\\", "/")).resolve() for p in paths]
    return [p for p in found if p.suffix in PROJECT_SUFFIXES]


def is_executable(project: Path) -> bool:
    """Whether the project builds an app (OutputType Exe or WinExe, read from the project file itself)."""
    try:
        root = ET.parse(project).getroot()
    except (OSError, ET.ParseError):
        return False
    kinds = [el.text.strip().lower() for el in root.iter()
             if el.tag.rsplit("}", 1)[-1] == "OutputType" and el.text]
    sdk = (root.get("Sdk") or "").lower()
    return any(k in ("exe", "winexe") for k in kinds) or sdk.startswith("microsoft.net.sdk.web")


def app_of_solution(solution: Path) -> Path:
    """The one F# app project a solution names; SolutionError when there is none or more than one."""
    projects = solution_projects(solution)
    apps = [p for p in projects if p.suffix == ".fsproj" and is_executable(p)]
    if len(apps) == 1:
        return apps[0]
    if not apps:
        listed = ", ".join(p.name for p in projects) or "no projects"
        raise SolutionError(f"{solution}: no F# app project in it ({listed}); pass the .fsproj of the app to run")
    raise SolutionError(f"{solution}: {len(apps)} F# app projects in it ({', '.join(p.name for p in apps)}); "
                        "pass the .fsproj of the one to run")
