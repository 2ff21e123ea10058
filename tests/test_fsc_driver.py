"""The compile with kept imports (hotreload.fsc_driver) writes what the public FSharpChecker.Compile writes, byte for
byte, over a corpus of generated edits (tests/fsrandom.py: bodies, constants, added and removed functions, lines
inserted above closures, new types and members, literals, module-level values, rude edits), and reads the
references only once; a compile checks again only the changed files and the files that depend on them
(hotreload.fsc_checkpoints)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fsrandom import Program

from hotreload.build import Builder
from hotreload.compiler import Worker, compiler_arguments, output_of
from hotreload.fsc_driver import KEEP_OPTIMIZATION_FROM
from hotreload.processes import Owner

FSPROJ = """<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
  </PropertyGroup>
  <ItemGroup>
{items}
  </ItemGroup>
</Project>
"""


def _write(folder: Path, program: Program) -> None:
    for name, text in program.files().items():
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture(autouse=True)
def _keep_optimization_of_small_projects(monkeypatch: pytest.MonkeyPatch) -> None:
    """These projects are small: without this the compiler's own main3 optimizes them (KEEP_OPTIMIZATION_FROM)."""
    monkeypatch.setenv("HOTRELOAD_KEEP_OPTIMIZATION_FROM", "0")


@contextlib.contextmanager
def _warm_project(folder: Path, name: str, files: dict[str, str]) -> Iterator[tuple[Worker, list[str]]]:
    """A project of `files` in `folder`, built once by `dotnet build`, with a compiler worker and fsc's arguments."""
    items = "\n".join(f'    <Compile Include="{file}" />' for file in files)
    project = folder / f"{name}.fsproj"
    project.write_text(FSPROJ.format(items=items))
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    builder = Builder(project)
    assert builder.build().ok
    owner = Owner()
    worker = Worker(folder, folder / "worker.log", owner)
    try:
        yield worker, compiler_arguments(builder, owner)
    finally:
        worker.close()
        owner.close()


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[tuple[Program, Path, Worker, list[str]]]:
    program = Program(23)
    with _warm_project(tmp_path, "Gen", program.files()) as (worker, args):
        yield program, tmp_path, worker, args


@pytest.mark.runtime
def test_kept_imports_write_the_public_compiles_bytes_over_generated_edits(
        generated: tuple[Program, Path, Worker, list[str]]) -> None:
    program, folder, worker, args = generated
    assert worker.driver == "kept imports", worker.note
    first = worker.compile(args)
    assert first["ok"] and first["driver"] == "kept imports"
    saves = 0
    for _ in range(10):
        edit = program.random_edit()
        _write(folder, program)
        # verify: the worker compiles with the public entry, then with kept imports, and compares both outputs
        reply = worker.compile(args, verify=True)
        assert reply["ok"], (str(edit), reply["errors"], reply["failure"])
        assert reply["note"] is None, f"{edit}: {reply['note']}"
        assert reply["driver"] == "kept imports"
        assert reply["imports"] == "kept", "the references were read again for a source edit"
        saves += 1
    assert saves == 10


@pytest.mark.runtime
def test_an_edit_checks_again_only_from_the_changed_file_and_writes_the_public_compiles_bytes(
        generated: tuple[Program, Path, Worker, list[str]]) -> None:
    _program, folder, worker, args = generated
    first = worker.compile(args)
    assert first["ok"] and first["typecheck"] is not None
    files = first["typecheck"]["files"]  # the obj folder's two generated files, A, B, C, Program
    source = folder / "C.fs"
    source.write_text(source.read_text(encoding="utf-8")
                      + "\nlet addedForTheTest (x: int) = [x; 2] |> List.map (fun y -> y * x) |> List.sum\n",
                      encoding="utf-8")
    reply = worker.compile(args, verify=True)  # verify: the same bytes as the public compile, else a note
    assert reply["ok"] and reply["note"] is None and reply["driver"] == "kept imports"
    assert _counts(reply) == {"checked": 2, "files": files}, "C.fs and Program.fs, not the files before"
    assert reply["optimization"] == {"optimized": 2, "files": files}, "the files before C.fs not optimized again"
    source.write_text(source.read_text(encoding="utf-8") + "\nlet another (x: int) = x * 3\n", encoding="utf-8")
    reply = worker.compile(args)  # the first compile that checks only some files is compared with a full one
    assert reply["ok"] and reply.get("spot_checked") and reply["note"] is None
    source.write_text(source.read_text(encoding="utf-8") + "\nlet yetAnother (x: int) = x * 4\n", encoding="utf-8")
    reply = worker.compile(args)
    assert reply["ok"] and not reply.get("spot_checked") and reply["typecheck"]["checked"] == 2
    reply = worker.compile(args, verify=True)  # nothing changed: every file's check is reused
    assert reply["ok"] and reply["note"] is None and _counts(reply) == {"checked": 0, "files": files}
    assert reply["optimization"] == {"optimized": 0, "files": files}
    (folder / "A.fs").write_text((folder / "A.fs").read_text(encoding="utf-8") + "\nlet broken: int = \"no\"\n",
                                 encoding="utf-8")
    reply = worker.compile(args, verify=True)
    assert not reply["ok"] and reply["note"] is None
    source.write_text(source.read_text(encoding="utf-8") + "\nlet alsoAdded = 3\n", encoding="utf-8")
    reply = worker.compile(args, verify=True)  # the error is still there: nothing kept from a failed compile
    assert not reply["ok"] and [e[3] for e in reply["errors"]] == ["FS0001"]
    (folder / "A.fs").write_text((folder / "A.fs").read_text(encoding="utf-8").replace(
        "\nlet broken: int = \"no\"\n", ""), encoding="utf-8")
    reply = worker.compile(args, verify=True)
    assert reply["ok"] and reply["note"] is None and _counts(reply) == {"checked": files, "files": files}


def _counts(reply: dict[str, Any]) -> dict[str, int]:
    return {k: reply["typecheck"][k] for k in ("checked", "files")}


LAYERED = {  # B opens A, D opens B, C and Program depend on neither
    "A.fs": "module Proj.A\n\nlet a (x: int) = x + 1\n",
    "B.fs": "module Proj.B\n\nopen Proj.A\n\nlet b (x: int) = a x * 2\n",
    "C.fs": "module Proj.C\n\nlet c (x: int) = [x; 3] |> List.map (fun y -> y + x) |> List.sum\n",
    "D.fs": "module Proj.D\n\nopen Proj.B\n\nlet d (x: int) = b x + 5\n",
    "Program.fs": "module Proj.Program\n\nopen Proj.C\n\n[<EntryPoint>]\nlet main _ =\n    printfn \"%d\" (c 2)\n    0\n",
}


@pytest.fixture
def layered(tmp_path: Path) -> Iterator[tuple[Path, Worker, list[str]]]:
    with _warm_project(tmp_path, "Layered", LAYERED) as (worker, args):
        yield tmp_path, worker, args


@pytest.mark.runtime
def test_an_edit_checks_again_only_the_files_that_depend_on_it_and_writes_the_public_compiles_bytes(
        layered: tuple[Path, Worker, list[str]]) -> None:
    folder, worker, args = layered
    first = worker.compile(args, verify=True)
    assert first["ok"] and first["note"] is None and first["typecheck"]["checked"] == first["typecheck"]["files"]

    def edit(name: str, old: str, new: str, checked: list[str] | None, ok: bool = True) -> dict[str, Any]:
        """One edit, compiled; `checked`: the files it must type-check again (None: every file)."""
        source = folder / name
        text = source.read_text(encoding="utf-8")
        assert old in text
        source.write_text(text.replace(old, new), encoding="utf-8")
        reply = worker.compile(args, verify=True)  # verify: the public compile's bytes, else a note
        assert reply["ok"] == ok and reply["note"] is None and reply["driver"] == "kept imports", reply
        if ok and checked is None:
            assert reply["typecheck"]["checked"] == reply["typecheck"]["files"]
        elif ok:
            assert [Path(p).name for p in reply["typecheck"]["paths"]] == checked, (name, new)
            assert reply["typecheck"]["checked"] == len(checked)
        return reply

    edit("B.fs", "a x * 2", "a x * 3", ["B.fs", "D.fs"])  # not C.fs nor Program.fs
    edit("A.fs", "x + 1", "x + 2", ["A.fs", "B.fs", "D.fs"])
    edit("C.fs", "let c", "open Proj.A\n\nlet c", ["C.fs", "Program.fs"])  # C.fs now depends on A.fs
    edit("C.fs", "y + x)", "y + a x)", ["C.fs", "Program.fs"])
    edit("A.fs", "x + 2", "x + 4", ["A.fs", "B.fs", "C.fs", "D.fs", "Program.fs"])
    edit("C.fs", "open Proj.A\n\nlet c (x: int) = [x; 3] |> List.map (fun y -> y + a x)",
         "let c (x: int) = [x; 3] |> List.map (fun y -> y + x)", ["C.fs", "Program.fs"])  # and no longer
    edit("A.fs", "x + 4", "x + 5", ["A.fs", "B.fs", "D.fs"])
    reply = edit("B.fs", "a x * 3", "a \"no\" * 3", None, ok=False)
    assert [(Path(e[0]).name, e[3]) for e in reply["errors"]] == [("B.fs", "FS0001")]
    edit("B.fs", "a \"no\" * 3", "a x * 4", None)  # nothing was kept from the failed compile
    edit("D.fs", "b x + 5", "b x + 6", ["D.fs"])
    edit("B.fs", "let b", "let extra (s: string) = s.Length\n\nlet b", ["B.fs", "D.fs"])


@pytest.mark.runtime
def test_a_project_with_a_signature_file_checks_again_from_the_first_changed_file(
        layered: tuple[Path, Worker, list[str]]) -> None:
    """Graph mode with signature files has nodes of its own (the signature seen as an implementation): such a project
    is checked one file after the other from the first changed file, and from an edited implementation's signature
    (checked against the last version of it, the kept signature gave other bytes), with the public compile's bytes."""
    folder, worker, args = layered
    (folder / "A.fsi").write_text("module Proj.A\n\nval a: x: int -> int\n", encoding="utf-8")
    source = folder / "Layered.fsproj"
    source.write_text(source.read_text().replace('<Compile Include="A.fs" />',
                                                 '<Compile Include="A.fsi" />\n    <Compile Include="A.fs" />'))
    builder = Builder(source)
    assert builder.build().ok
    owner = Owner()
    try:
        args = compiler_arguments(builder, owner)
    finally:
        owner.close()
    first = worker.compile(args, verify=True)
    assert first["ok"] and first["note"] is None and first["typecheck"]["checked"] == first["typecheck"]["files"]
    for name, old, new, checked in (("B.fs", "a x * 2", "a x * 3", ["B.fs", "C.fs", "D.fs", "Program.fs"]),
                                    ("A.fs", "x + 1", "x + 2", ["A.fsi", "A.fs", "B.fs", "C.fs", "D.fs", "Program.fs"])):
        path = folder / name
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
        reply = worker.compile(args, verify=True)
        assert reply["ok"] and reply["note"] is None, reply
        assert [Path(p).name for p in reply["typecheck"]["paths"]] == checked


INLINE_FILES = {
    "Inline.fs": """module Gen.Inline

let inline twice (f: 'T -> 'T) (x: 'T) = f (f x)
let inline scale (k: int) (x: int) = k * x + 1
let mutable counter = 0
let bump () = counter <- counter + 1; counter
let quoted (xs: int list) = xs |> List.map (fun y -> y + 1) |> List.filter (fun y -> y > 2) |> List.sum
let piped (xs: int list) = xs |> List.map (fun y -> y * 2) |> List.sum
""",
    "Middle.fs": """module Gen.Middle

open Gen.Inline

let viaTwice (x: int) = twice (fun y -> y + 3) x
let viaScale (x: int) = scale 4 x |> twice (fun y -> y * 2)
let rec countdown (n: int) = if n <= 0 then 0 else countdown (n - 1)
""",
    "Later.fs": """module Gen.Later

open Gen.Inline
open Gen.Middle

let total (x: int) = viaTwice x + viaScale x + scale 2 x + countdown 3 + quoted [x; 4] + piped [x]
let words (s: string) = [ for c in s -> string c ] |> List.map (fun w -> w + "!") |> String.concat ","
""",
    "Program.fs": """module Gen.Program

[<EntryPoint>]
let main _ =
    printfn "%d %s %d" (Gen.Later.total 3) (Gen.Later.words "ab") (Gen.Inline.bump ())
    0
""",
}


@pytest.mark.runtime
def test_kept_optimization_of_earlier_files_writes_the_public_compiles_bytes(tmp_path: Path) -> None:
    """The optimization of the files before the first edited one is reused (hotreload.fsc_optimize), and the bytes
    stay the public compile's over edits in the first, middle and last files, an inline function's users and the
    inline function itself, and an error then its fix (with pipelines in every file: the optimizer numbers them)."""
    with _warm_project(tmp_path, "Gen", INLINE_FILES) as (worker, args):
        first = worker.compile(args)
        assert first["ok"] and first["driver"] == "kept imports", first
        files = first["optimization"]["files"]  # the obj folder's two generated files, then ours
        assert first["optimization"] == {"optimized": files, "files": files}

        def edit(name: str, old: str, new: str, optimized: int) -> None:
            source = tmp_path / name
            text = source.read_text(encoding="utf-8")
            assert old in text
            source.write_text(text.replace(old, new, 1), encoding="utf-8")
            reply = worker.compile(args, verify=True)  # the public compile's bytes, else a note
            assert reply["ok"] and reply["note"] is None and reply["driver"] == "kept imports", (name, reply)
            assert reply["optimization"] == {"optimized": optimized, "files": files}, (name, reply)

        edit("Later.fs", "countdown 3", "countdown 4", 2)  # the last file using the inline functions
        edit("Program.fs", "\"%d %s %d\"", "\"%d, %s, %d\"", 1)  # the last file
        edit("Middle.fs", "y + 3", "y + 5", 3)  # a middle file: it and the files after it
        edit("Inline.fs", "k * x + 1", "k * x + 2", 4)  # the inline function itself, inlined in later files
        edit("Later.fs", "w + \"!\"", "w + \"?\"", 2)
        (tmp_path / "Middle.fs").write_text((tmp_path / "Middle.fs").read_text(encoding="utf-8")
                                            + "\nlet broken: int = \"no\"\n", encoding="utf-8")
        reply = worker.compile(args, verify=True)
        assert not reply["ok"] and reply["note"] is None
        edit("Middle.fs", "\nlet broken: int = \"no\"\n", "\n", files)  # nothing kept from the failed compile
        edit("Later.fs", "countdown 4", "countdown 5", 2)
        edit("Inline.fs", "f (f x)", "f (f (f x))", 4)


@pytest.mark.runtime
def test_the_warm_up_checks_the_incremental_path_and_leaves_its_state_to_the_first_save(
        generated: tuple[Program, Path, Worker, list[str]]) -> None:
    _program, folder, worker, args = generated
    scratch = folder / "warm-up" / output_of(args).name
    scratch.parent.mkdir()
    reply = worker.compile([f"-o:{scratch}" if a.startswith("-o:") else a for a in args],
                           warm_up_for=str(output_of(args)))
    assert reply["ok"] and reply["note"] is None, reply
    files = reply["warm_up_typecheck"]["files"]
    assert 0 < reply["warm_up_typecheck"]["checked"] < files, "the later half checked again, as after an edit"
    source = folder / "C.fs"
    source.write_text(source.read_text(encoding="utf-8") + "\nlet addedAfterWarmUp (x: int) = x * 5\n",
                      encoding="utf-8")
    reply = worker.compile(args)  # the save's compile: from the warm-up's kept check, already compared
    assert reply["ok"] and _counts(reply) == {"checked": 2, "files": files}
    assert not reply.get("spot_checked") and reply["note"] is None
    source.write_text(source.read_text(encoding="utf-8") + "\nlet andAnother (x: int) = x * 6\n", encoding="utf-8")
    reply = worker.compile(args, verify=True)
    assert reply["ok"] and reply["note"] is None and reply["typecheck"]["checked"] == 2


@pytest.mark.runtime
def test_a_compile_error_is_reported_as_the_public_compile_reports_it(
        generated: tuple[Program, Path, Worker, list[str]]) -> None:
    _program, folder, worker, args = generated
    source = folder / "A.fs"
    good = source.read_text(encoding="utf-8")
    source.write_text(good + "\nlet broken: int = \"not an int\"\n", encoding="utf-8")
    line = good.count("\n") + 2
    reply = worker.compile(args, verify=True)  # both fail: the same verdict, no fallback
    assert not reply["ok"] and reply["note"] is None and reply["driver"] == "kept imports"
    assert [(Path(e[0]).name, e[1], e[3]) for e in reply["errors"]] == [("A.fs", line, "FS0001")]
    source.write_text(good, encoding="utf-8")
    assert worker.compile(args, verify=True)["ok"]


@pytest.mark.runtime
def test_keep_imports_off_uses_the_public_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTRELOAD_KEEP_IMPORTS", "0")
    owner = Owner()
    worker = Worker(tmp_path, tmp_path / "worker.log", owner)
    try:
        assert worker.driver == "public" and worker.note is None
    finally:
        worker.close()
        owner.close()


@pytest.mark.runtime
@pytest.mark.parametrize("variable, value", [("HOTRELOAD_KEEP_OPTIMIZATION", "0"),
                                             ("HOTRELOAD_KEEP_OPTIMIZATION_FROM", str(KEEP_OPTIMIZATION_FROM))])
def test_keep_optimization_off_runs_the_compilers_own_optimization_phase(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """`HOTRELOAD_KEEP_OPTIMIZATION=0` (as a missing internal of hotreload.fsc_optimize does), or a project smaller
    than KEEP_OPTIMIZATION_FROM (this one, as sample_app): the compiler's own main3, every file optimized, the
    same bytes."""
    monkeypatch.setenv(variable, value)
    program = Program(5)
    with _warm_project(tmp_path, "Gen", program.files()) as (worker, args):
        assert worker.driver == "kept imports" and worker.note is None
        for _ in range(2):
            reply = worker.compile(args, verify=True)
            assert reply["ok"] and reply["note"] is None and reply["optimization"] is None
            assert "interface data, optimization" in dict(reply["phases"])
            program.random_edit()
            _write(tmp_path, program)
