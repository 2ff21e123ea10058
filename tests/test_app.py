"""The hosted app's load context: a package added while the app runs is loaded from the build that brought it."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_project import FSPROJ, QuietReporter

from hotreload.runtime import RuntimeInfo
from hotreload.session import OutcomeKind, Session

pytestmark = pytest.mark.runtime

LIB = """module Demo.Lib

let probe () = 1
"""

USES_PACKAGE = """module Demo.Lib

open FsToolkit.ErrorHandling

let probe () = 1
let checkedSum (xs: int list) =
    xs |> List.traverseResultM (fun x -> if x >= 0 then Ok x else Error $"negative: {x}") |> Result.map List.sum
let sumOrZero () = match checkedSum [1; 2; 3] with Ok s -> s | Error _ -> 0
let firstError () = match checkedSum [1; -2; -3] with Ok _ -> "" | Error e -> e
"""


def test_package_added_while_running_is_used_by_the_next_update(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    project = folder / "Live.fsproj"
    project.write_text(FSPROJ.format(output="Exe", name="PkgApp", items='    <Compile Include="Lib.fs" />'))
    (folder / "Lib.fs").write_text(LIB + "\n[<EntryPoint>]\nlet main _ = 0\n")
    reporter = QuietReporter()
    with Session(project, reporter=reporter) as session:
        project.write_text(project.read_text().replace(
            "  </ItemGroup>",
            '    <PackageReference Include="FsToolkit.ErrorHandling" Version="4.3.0" />\n  </ItemGroup>'))
        (folder / "Lib.fs").write_text(USES_PACKAGE + "\n[<EntryPoint>]\nlet main _ = 0\n")
        outcome = session.reload()
        assert outcome.kind == OutcomeKind.APPLIED, (outcome.kind, outcome.message, reporter.lines[-5:])
        assert session.call("Demo.Lib.sumOrZero") == 6
        assert session.call("Demo.Lib.firstError") == "negative: -2"
        # and the session goes on: a later save applies as usual, no repeated failure
        (folder / "Lib.fs").write_text(USES_PACKAGE.replace("[1; 2; 3]", "[4; 5]") + "\n[<EntryPoint>]\nlet main _ = 0\n")
        assert session.reload().kind == OutcomeKind.APPLIED
        assert session.call("Demo.Lib.sumOrZero") == 9


def test_a_web_app_in_a_process_whose_runtime_is_already_up(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> None:
    """The runtime of this test process started with Microsoft.NETCore.App alone; a web app's other shared framework
    (Microsoft.AspNetCore.App, named in its runtimeconfig) then loads into the app's own context from its folder,
    and the app is the entry assembly with its build folder as base directory, as under `dotnet run`."""
    import shutil

    from System import AppContext  # type: ignore[import-not-found]
    from System.Reflection import Assembly, AssemblyName  # type: ignore[import-not-found]

    assert "Microsoft.AspNetCore.App" not in dotnet_runtime.framework_names()
    shutil.copytree(Path(__file__).parent / "web_app", tmp_path / "web", ignore=shutil.ignore_patterns(".hotreload"))
    with Session(tmp_path / "web" / "WebApp.fsproj", reporter=QuietReporter()) as session:
        assert session.app is not None
        folders = session.app.framework_dirs
        assert len(folders) == 1 and "/shared/Microsoft.AspNetCore.App/10." in folders[0]
        aspnet = session.app.context.LoadFromAssemblyName(AssemblyName("Microsoft.AspNetCore.Http.Results"))
        assert str(aspnet.Location).startswith(folders[0])
        assert str(Assembly.GetEntryAssembly().GetName().Name) == "WebApp"
        assert str(AppContext.BaseDirectory) == str(session.app.path).rsplit("/", 1)[0] + "/"
        assert session.call("WebApp.Handlers.hello") == "Hello from F#"
        session.edit("Handlers.fs", '"Hello from F#"', '"Hello, edited"')
        assert session.call("WebApp.Handlers.hello") == "Hello, edited"


def test_a_library_project_as_it_is_loads_and_takes_edits(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> None:
    """A plain F# library project (no CopyLocalLockFileAssemblies of its own): its build does not copy FSharp.Core
    beside it unless hotreload asks, and every call of F# code would fail to load FSharp.Core."""
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "Algorithms.fsproj").write_text("""<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net10.0</TargetFramework>
  </PropertyGroup>
  <ItemGroup>
    <Compile Include="Text.fs" />
  </ItemGroup>
</Project>
""")
    (folder / "Text.fs").write_text("module Lib.Text\n\nlet shout (s: string) = s.ToUpper() + \"!\"\n"
                                    "let words (s: string) = s.Split(' ') |> List.ofArray |> List.map shout "
                                    "|> String.concat \" \"\n")
    with Session(folder / "Algorithms.fsproj", reporter=QuietReporter()) as session:
        assert session.call("Lib.Text.words", "hot reload") == "HOT! RELOAD!"  # F# list and string functions
        session.edit("Text.fs", '+ "!"', '+ "?"')
        assert session.call("Lib.Text.words", "hot reload") == "HOT? RELOAD?"
        assert session.generation == 1
