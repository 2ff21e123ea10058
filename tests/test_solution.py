"""Solutions: an F# app with F# libraries (tests/solution_app: Core <- Left, Right <- App, a diamond, plus a C#
library, a linked file and a glob), hot reloaded as one app through `hotreload.Session` on the real runtime.

Each library is its own hot-reloaded assembly: a save compiles only the projects it touched (and those built
against a library whose F# interface changed), and a save that spans assemblies is applied libraries first, or
refused as a whole."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from live_project import QuietReporter

from hotreload.build import ProjectError, find_project
from hotreload.session import EditRefused, OutcomeKind, Session
from hotreload.solution import interface_digest, referenced_projects

SOLUTION = Path(__file__).resolve().parent / "solution_app"
REPORT = "App.Program.report"


def _report(solution: Session, tick: int) -> str:
    """The app's report line for `tick`, called through the session (a string, or the test fails here)."""
    line = solution.call(REPORT, tick)
    assert isinstance(line, str), line
    return line


def _copy(dest: Path) -> Path:
    shutil.copytree(SOLUTION, dest, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    return dest


# ---- finding the app ---------------------------------------------------------------------------------------------
def test_a_solution_or_its_folder_names_its_one_fsharp_app(tmp_path: Path) -> None:
    root = _copy(tmp_path / "s")
    app = root / "App" / "App.fsproj"
    assert find_project(root / "Solution.slnx") == app
    assert find_project(root) == app  # a folder with one solution and no project
    (root / "Solution.sln").write_text(
        'Microsoft Visual Studio Solution File, Format Version 12.00\n'
        'Project("{F2A71F9B-5D33-465A-A702-920D77279786}") = "App", "App\\App.fsproj", "{1}"\nEndProject\n'
        'Project("{F2A71F9B-5D33-465A-A702-920D77279786}") = "Core", "Core\\Core.fsproj", "{2}"\nEndProject\n')
    assert find_project(root / "Solution.sln") == app
    with pytest.raises(ProjectError, match="2 solutions in this folder"):
        find_project(root)  # two solutions now: which one is not guessed
    (root / "Libs.slnx").write_text('<Solution><Project Path="Core/Core.fsproj" /></Solution>')
    with pytest.raises(ProjectError, match=r"no F# app project in it \(Core.fsproj\)"):
        find_project(root / "Libs.slnx")


# ---- one app, four assemblies ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def solution(tmp_path_factory: pytest.TempPathFactory, dotnet_runtime: object) -> Iterator[Session]:
    root = _copy(tmp_path_factory.mktemp("solution") / "s")
    session = Session(root / "Solution.slnx", reporter=QuietReporter())
    session.start()
    assert session.compiler is not None
    session.compiler._ready.wait(180)
    assert session.compiler.ready, session.compiler._problem
    yield session
    session.stop()


def _write(session: Session, relative: str, old: str, new: str) -> None:
    path = session.project.parent.parent / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {relative}"
    path.write_text(text.replace(old, new))


pytestmark = pytest.mark.runtime


def test_the_closure_is_loaded_in_build_order(solution: Session) -> None:
    nodes = referenced_projects(solution.project)
    names = [n.name for n in nodes]
    assert names.index("Core.fsproj") < names.index("Left.fsproj") and names.index("Core.fsproj") < names.index(
        "Right.fsproj")
    assert {n.name: sorted(r.name for r in n.references) for n in nodes}["Left.fsproj"] == ["Core.fsproj"]
    assert [p.name for p in solution.parts][-1] == "App.dll"
    assert sorted(p.name for p in solution.parts) == ["App.dll", "Core.dll", "Left.dll", "Right.dll"]  # not C#
    assert _report(solution, 1) == "tick 1 | core:left 2 | core:right 2 | home 1 | == shapes == | hello f#"
    assert solution.call("Shapes.Core.twice", 4) == 8  # a library's function, by its name


def test_a_library_body_edit_compiles_and_updates_only_that_library(solution: Session) -> None:
    assert solution.compiler is not None
    outcome = solution.edit("../Core/Core.fs", "x * 2", "x * 3")
    assert outcome.kind == OutcomeKind.APPLIED and list(outcome.assemblies) == ["Core.dll"]
    assert outcome.methods == ["Shapes.Core.twice"]
    assert solution.compiler.compiled == ["Core.fsproj"]  # its interface is as it was: nothing else compiled
    assert _report(solution, 1).startswith("tick 1 | core:left 3 | core:right 2")  # Left's code calls the new one
    assert solution.generation == 0  # the app's own assembly is untouched


def test_adding_to_a_library_and_using_it_from_the_app_is_one_update(solution: Session) -> None:
    """The case that crashed the app with MissingMethodException when only the app was reloaded."""
    assert solution.compiler is not None
    _write(solution, "Core/Core.fs", "    let twice", '    let shout (s: string) = s.ToUpper() + "!"\n\n    let twice')
    _write(solution, "App/Program.fs", "(Banner.banner ())", "(Core.shout (Banner.banner ()))")
    outcome = solution.reload()
    assert outcome.kind == OutcomeKind.APPLIED, outcome
    assert list(outcome.assemblies) == ["Core.dll", "App.dll"]  # the library's first
    assert "+Shapes.Core.shout" in outcome.methods and "App.Program.report" in outcome.methods
    # Core's interface changed: every project built against it was compiled again, each after what it uses
    assert solution.compiler.compiled == ["Core.fsproj", "Left.fsproj", "Right.fsproj", "App.fsproj"]
    assert "| == SHAPES ==! |" in _report(solution, 2)


def test_a_diamond_edit_through_both_sides(solution: Session) -> None:
    _write(solution, "Core/Core.fs", 'let label (name: string) = "core:" + name',
           'let label (name: string) = "core:" + name\n\n    let wrap (s: string) = "<" + s + ">"')
    _write(solution, "Left/Left.fs", "Core.label (", "Core.wrap <| Core.label (")
    _write(solution, "Right/Right.fs", "Core.label (", "Core.wrap <| Core.label (")
    outcome = solution.reload()
    assert outcome.kind == OutcomeKind.APPLIED, outcome
    assert list(outcome.assemblies) == ["Core.dll", "Left.dll", "Right.dll"]
    assert _report(solution, 1).startswith("tick 1 | <core:left 3> | <core:right 2> |")


def test_a_library_that_does_not_compile_leaves_everything_running(solution: Session) -> None:
    before = _report(solution, 5)
    _write(solution, "Right/Right.fs", "(x + 1)", "(x + nope)")
    outcome = solution.reload()
    assert outcome.kind == OutcomeKind.COMPILE_ERROR
    assert [(Path(e.file).name, e.code) for e in outcome.errors] == [("Right.fs", "FS0039")]
    assert _report(solution, 5) == before
    _write(solution, "Right/Right.fs", "(x + nope)", "(x + 10)")
    fixed = solution.reload()
    assert fixed.kind == OutcomeKind.APPLIED and list(fixed.assemblies) == ["Right.dll"]
    assert "<core:right 15>" in _report(solution, 5)


INTERFACE = "        interface System.IDisposable with\n            member _.Dispose() = ()\n"


def test_a_refused_library_edit_refuses_the_whole_save(solution: Session) -> None:
    before = _report(solution, 7)
    _write(solution, "Core/Core.fs", "        member _.Name", INTERFACE + "        member _.Name")
    _write(solution, "App/Program.fs", "tick %d", "TICK %d")
    with pytest.raises(EditRefused) as refused:
        solution.edit("../Left/Left.fs", "module Left =", "module Left =\n")  # any save: the refusal is the others'
    assert "interface change in Shapes.Core.Named" in str(refused.value) and "Core.fs:" in str(refused.value)
    assert _report(solution, 7) == before  # not even the app's part of it was applied
    _write(solution, "Core/Core.fs", INTERFACE, "")
    outcome = solution.reload()
    assert outcome.kind == OutcomeKind.APPLIED and "App.dll" in outcome.assemblies
    assert _report(solution, 7).startswith("TICK 7")


def test_a_file_added_to_a_glob_is_compiled_without_dotnet_build(solution: Session) -> None:
    assert solution.compiler is not None
    pages = solution.project.parent / "Pages"
    (pages / "About.fs").write_text('module App.Pages.About\n\nlet render () = "about"\n')
    _write(solution, "App/Program.fs", "(Pages.Home.render tick)", "(Pages.Home.render tick + Pages.About.render ())")
    outcome = solution.reload()
    assert outcome.kind == OutcomeKind.APPLIED, outcome
    assert "| home 3about |" in _report(solution, 3)
    lines = solution.report.lines  # type: ignore[attr-defined]
    assert any("MSBuild gave the compile list again" in line for line in lines)
    assert not any("building with dotnet build" in line for line in lines)


def test_interface_digest_ignores_bodies_but_not_new_members(solution: Session) -> None:
    out = solution.builder.out_dir
    before = interface_digest(out / "Right.dll")
    _write(solution, "Right/Right.fs", "(x + 10)", "(x + 11)")
    assert solution.reload().kind == OutcomeKind.APPLIED
    assert interface_digest(out / "Right.dll") == before
    _write(solution, "Right/Right.fs", "module Right =", "module Right =\n    let extra () = 1\n")
    assert solution.reload().kind == OutcomeKind.APPLIED
    assert interface_digest(out / "Right.dll") != before


def test_a_package_added_to_a_library_is_restored_and_used(solution: Session) -> None:
    """A PackageReference saved with the code that uses it: `dotnet build` restores it (the project file changed),
    its assembly becomes loadable in the app's context, and the library's update that calls it applies."""
    _write(solution, "Core/Core.fsproj", "  <ItemGroup>",
           '  <ItemGroup>\n    <PackageReference Include="FsToolkit.ErrorHandling" Version="4.3.0" />')
    _write(solution, "Core/Core.fs", "    let twice", """    let checkedSum (xs: int list) =
        xs
        |> FsToolkit.ErrorHandling.List.traverseResultM (fun x -> if x >= 0 then Ok x else Error $"negative {x}")
        |> Result.map List.sum

    let twice""")
    outcome = solution.reload()
    assert outcome.kind == OutcomeKind.APPLIED, outcome
    assert "Core.dll" in outcome.assemblies
    assert solution.call("Shapes.Core.checkedSum", [1, 2, 3]) == ("Ok", 6)
    assert solution.call("Shapes.Core.checkedSum", [1, -2]) == ("Error", "negative -2")


def test_a_package_that_cannot_be_restored_is_a_build_error_and_the_session_goes_on(solution: Session) -> None:
    _write(solution, "Left/Left.fsproj", '<Compile Include="Left.fs" />',
           '<Compile Include="Left.fs" />\n    <PackageReference Include="Hotreload.NoSuch.Package" Version="9.9.9" />')
    failed = solution.reload()
    assert failed.kind == OutcomeKind.COMPILE_ERROR
    assert any(e.code == "NU1101" and "Hotreload.NoSuch.Package" in e.message for e in failed.errors), failed.errors
    before = _report(solution, 2)
    _write(solution, "Left/Left.fsproj", '\n    <PackageReference Include="Hotreload.NoSuch.Package" Version="9.9.9" />',
           "")
    _write(solution, "Left/Left.fs", '("left "', '("LEFT "')
    fixed = solution.reload()
    assert fixed.kind == OutcomeKind.APPLIED and "Left.dll" in fixed.assemblies, fixed
    assert _report(solution, 2) == before.replace("core:left", "core:LEFT")


def test_the_pytest_fixture_copies_the_whole_solution(hotreload_session: Callable[..., Session]) -> None:
    s = hotreload_session(SOLUTION / "App" / "App.fsproj")  # the app's project: its references come along
    assert s.project.parent.parent != SOLUTION and (s.project.parent.parent / "Core" / "Core.fs").exists()
    assert (s.project.parent.parent / "Shared" / "Banner.fs").exists()  # the linked file too
    s.edit("../Right/Right.fs", "(x + 1)", "(x + 100)")
    assert "core:right 101" in _report(s, 1)
    assert "(x + 1)" in (SOLUTION / "Right" / "Right.fs").read_text()  # the repository's copy is untouched


def test_an_edit_that_changes_nothing_returns_at_once(solution: Session) -> None:
    outcome = solution.edit("../Core/Core.fs", "let label", "let label")  # no save reaches a watcher: not waited for
    assert outcome.kind == OutcomeKind.NO_CHANGE and "unchanged" in outcome.message


def test_a_function_defined_as_a_value_is_called_with_its_arguments(solution: Session) -> None:
    assert solution.call("Shapes.Core.shouted", "x") == "CORE:X"  # `let f = g >> h`: an FSharpFunc property
