"""The warm compiler gives the assembly `dotnet build` gives, and falls back to `dotnet build` when it must."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from live_project import FSPROJ

from hotreload.build import Builder
from hotreload.compiler import WarmCompiler, output_of

pytestmark = pytest.mark.runtime
ROOT = Path(__file__).resolve().parents[1]

SOURCE = """module Demo.Lib

let f (x: int) = [1; 2; 3] |> List.map (fun y -> y + x) |> List.sum
type R = { A: int; B: string }
let g () = sprintf "%A" { A = 1; B = "b" }
"""


def _project(folder: Path, items: str = '    <Compile Include="Lib.fs" />') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Lib.fs").write_text(SOURCE)
    project = folder / "Live.fsproj"
    project.write_text(FSPROJ.format(output="Library", name="Live", items=items))
    return project


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[tuple[WarmCompiler, list[str]]]:
    builder = Builder(_project(tmp_path / "p"))
    first = builder.build()
    assert first.ok, first.errors
    reasons: list[str] = []
    compiler = WarmCompiler(builder, reasons.append)
    compiler.warm_up()
    assert compiler.ready, compiler._problem
    yield compiler, reasons
    compiler.close()


def _app_with_library(folder: Path) -> Path:
    """An Exe that uses an F# library project of its own (a ProjectReference), as solutions are laid out."""
    lib, app = folder / "Core", folder / "App"
    lib.mkdir(parents=True)
    app.mkdir(parents=True)
    (lib / "Core.fs").write_text("module Demo.Core\n\nlet twice (x: int) = x * 2\n")
    (lib / "Core.fsproj").write_text(FSPROJ.format(output="Library", name="Core",
                                                   items='    <Compile Include="Core.fs" />'))
    (app / "Program.fs").write_text("module Demo.App\n\n[<EntryPoint>]\nlet main _ = Demo.Core.twice 21 - 42\n")
    (app / "App.fsproj").write_text(FSPROJ.format(
        output="Exe", name="App",
        items='    <Compile Include="Program.fs" />\n    <ProjectReference Include="../Core/Core.fsproj" />'))
    return app / "App.fsproj"


@pytest.fixture(params=["library", "sample_app", "project_reference"])
def any_warm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[WarmCompiler, list[str]]]:
    """A warm compiler for the small library, a copy of sample_app (an Exe with several files) and an Exe with a
    library project of its own."""
    if request.param == "library":
        project = _project(tmp_path / "p")
    elif request.param == "project_reference":
        project = _app_with_library(tmp_path)
    else:
        shutil.copytree(ROOT / "sample_app", tmp_path / "app", ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
        project = tmp_path / "app" / "SampleApp.fsproj"
    builder = Builder(project)
    assert builder.build().ok
    compiler = WarmCompiler(builder)
    compiler.warm_up()
    assert compiler.ready, compiler._problem
    yield compiler, []
    compiler.close()


def test_warm_compile_is_byte_identical_to_dotnet_build(any_warm: tuple[WarmCompiler, list[str]]) -> None:
    compiler, reasons = any_warm
    assert compiler.args is not None
    obj = output_of(compiler.args)
    expected = {path: path.read_bytes() for path in (obj, obj.with_suffix(".pdb"))}
    for path in expected:
        path.unlink()
    compiler.builder.dll.unlink()
    result = compiler.build()
    assert result.ok and result.how == "warm fsc", result.errors
    for path, data in expected.items():
        assert path.read_bytes() == data, f"{path.name} differs from dotnet build's"
    assert compiler.builder.dll.read_bytes() == expected[obj]  # copied to the output folder as dotnet build does
    assert reasons == []


def test_edits_and_compile_errors_through_the_warm_worker(warm: tuple[WarmCompiler, list[str]]) -> None:
    compiler, reasons = warm
    source = compiler.builder.project.parent / "Lib.fs"
    before = compiler.builder.dll.read_bytes()
    source.write_text(SOURCE.replace("y + x", "y * x"))
    edited = compiler.build()
    assert edited.ok and edited.how == "warm fsc"
    assert compiler.builder.dll.read_bytes() != before
    source.write_text(SOURCE.replace("y + x", "y + undefinedName"))
    failed = compiler.build()
    assert not failed.ok
    assert [(e.line, e.code) for e in failed.errors] == [(3, "FS0039")]
    assert failed.errors[0].file == str(source) and "undefinedName" in failed.errors[0].message
    assert reasons == []


def test_project_file_edit_goes_through_dotnet_build_then_warm_again(warm: tuple[WarmCompiler, list[str]]) -> None:
    compiler, reasons = warm
    folder = compiler.builder.project.parent
    (folder / "Extra.fs").write_text("module Demo.Extra\n\nlet extra () = 42\n")
    compiler.builder.project.write_text(FSPROJ.format(
        output="Library", name="Live", items='    <Compile Include="Extra.fs" />\n    <Compile Include="Lib.fs" />'))
    result = compiler.build()
    assert result.ok and result.how == "dotnet build"
    assert reasons == ["Live.fsproj (or an MSBuild file it imports) changed"]
    (folder / "Extra.fs").write_text("module Demo.Extra\n\nlet extra () = 43\n")
    again = compiler.build()
    assert again.ok and again.how == "warm fsc", reasons
    assert compiler.args is not None and str(folder / "Extra.fs") in compiler.args


def test_a_dead_worker_falls_back_to_dotnet_build(warm: tuple[WarmCompiler, list[str]]) -> None:
    compiler, reasons = warm
    pid = compiler.worker_pid
    assert pid is not None and psutil.pid_exists(pid)
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(5)
    (compiler.builder.project.parent / "Lib.fs").write_text(SOURCE.replace("y + x", "y - x"))
    result = compiler.build()
    assert result.ok and result.how == "dotnet build"
    assert len(reasons) == 1 and "the warm compiler stopped" in reasons[0]
    (compiler.builder.project.parent / "Lib.fs").write_text(SOURCE.replace("y + x", "y - x - 1"))
    again = compiler.build()  # a new worker was started after the fallback build
    assert again.ok and again.how == "warm fsc", reasons
    assert compiler.worker_pid not in (None, pid)


def test_close_leaves_no_worker(tmp_path: Path) -> None:
    builder = Builder(_project(tmp_path / "p"))
    assert builder.build().ok
    compiler = WarmCompiler(builder)
    compiler.warm_up()
    pid = compiler.worker_pid
    assert pid is not None
    compiler.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_hung_worker_is_stopped_and_replaced(tmp_path: Path) -> None:
    """A worker that stops answering (here: SIGSTOP) costs one compile deadline, not the session: it is killed,
    that save is built with `dotnet build`, and the next one is warm again with a new worker."""
    builder = Builder(_project(tmp_path / "p"))
    assert builder.build().ok
    reasons: list[str] = []

    def fallback(reason: str) -> None:
        reasons.append(reason)
        compiler.compile_timeout = 120.0  # the short deadline is for the hung compile; a new worker starts cold

    compiler = WarmCompiler(builder, fallback)
    try:
        compiler.warm_up()
        assert compiler.ready, compiler._problem
        pid = compiler.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        compiler.compile_timeout = 3.0
        (builder.project.parent / "Lib.fs").write_text(SOURCE.replace("y + x", "y - x"))
        result = compiler.build()
        assert result.ok and result.how == "dotnet build", result.errors
        assert len(reasons) == 1 and reasons[0].startswith(
            "the compiler worker did not answer within 3 s; it was stopped with every process it started; "
            "it is started again after this save's build"), reasons
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        (builder.project.parent / "Lib.fs").write_text(SOURCE.replace("y + x", "y - x - 1"))
        again = compiler.build()
        assert again.ok and again.how == "warm fsc", reasons
        assert compiler.worker_pid not in (None, pid)
    finally:
        compiler.close()
