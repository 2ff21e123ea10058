"""`hotreload watch` and `hotreload delta` on bad input and broken set-ups, through the real command line.

Each case runs `python -m hotreload ...` as a subprocess and must end by itself, with a non-zero exit code and a
message that names the file (or the thing) at fault and says what to do: never a traceback, never a hang, and
nothing of it left running afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from fsharp_testkit import BuildFarm

from hotreload.build import Builder
from hotreload.editable import DISABLE_OPTIMIZATIONS, debugging_modes
from hotreload.metadata.reader import Assembly, MetadataImage
from hotreload.metadata.schema import HasCustomAttribute, T

TIMEOUT = 180.0
"""Seconds a failing command may take (a first build included) before it counts as hung."""

FSPROJ = """<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>{extra}
  </PropertyGroup>
  <ItemGroup>
    <Compile Include="Program.fs" />
  </ItemGroup>
</Project>
"""

PROGRAM = """module Program

[<EntryPoint>]
let main _ =
    printfn "%d" {value}
    0
"""


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Status lines go to stdout (`[hotreload] ...`), argparse's and `delta`'s errors to stderr."""
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"`hotreload {' '.join(self.args)}` exited with {self.code}:\n{self.output}"


def _quiet_env(**changes: str | None) -> dict[str, str]:
    """This environment, without MSBuild nodes or build servers that would outlive the command (they are not ours
    to find among leftovers), with `changes` applied (None removes a variable)."""
    env = dict(os.environ, MSBUILDDISABLENODEREUSE="1", DOTNET_CLI_USE_MSBUILD_SERVER="0", DOTNET_NOLOGO="1",
               DOTNET_CLI_TELEMETRY_OPTOUT="1")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def hotreload(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run the CLI in its own process group; fail (after killing the group) if it does not exit by itself, or if
    anything it started is still running once it has."""
    proc = subprocess.Popen([sys.executable, "-m", "hotreload", *args], cwd=cwd, env=env or _quiet_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"`hotreload {' '.join(args)}` did not exit within {TIMEOUT:.0f} s (a hang):\n{stdout}{stderr}")
    run = Run(args, proc.returncode, stdout, stderr)
    left = _still_running(proc.pid)
    if left:
        for p in left:
            p.kill()
        pytest.fail(f"{run}\nleft running: " + "; ".join(" ".join(p.info["cmdline"] or []) for p in left))
    return run


def _still_running(group: int) -> list[psutil.Process]:
    """Processes still in the process group the command led (its compiler worker, builds, the app...)."""
    psutil.wait_procs([p for p in psutil.process_iter() if _group_of(p) == group], timeout=5)
    return [p for p in psutil.process_iter(["cmdline"]) if _group_of(p) == group]


def _group_of(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid) if p.status() != psutil.STATUS_ZOMBIE else None
    except (ProcessLookupError, psutil.Error):
        return None


def assert_refused(run: Run, *says: str) -> None:
    """A non-zero exit, no traceback, and a message holding each of `says` (the thing at fault, what to do)."""
    assert run.code != 0, run
    assert "Traceback (most recent call last)" not in run.output, run
    for text in says:
        assert text in run.output, f"{text!r} not in the message of {run}"


def fsharp_app(folder: Path, value: str = "42", extra: str = "", name: str = "App") -> Path:
    """A console app: `printfn "%d" <value>` (a compile error when `value` is not defined)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.fsproj").write_text(FSPROJ.format(extra=extra))
    (folder / "Program.fs").write_text(PROGRAM.format(value=value))
    return folder / f"{name}.fsproj"


# ---- (a) no such project, (b) not an F# project ------------------------------------------------------------

@pytest.mark.parametrize("path", ["missing/App.fsproj", "missing"])
def test_watch_names_a_path_that_does_not_exist(tmp_path: Path, path: str) -> None:
    run = hotreload("watch", path, cwd=tmp_path)
    assert_refused(run, str(tmp_path / path), "no such project file or folder", "check the path")


def test_watch_refuses_a_csproj(tmp_path: Path) -> None:
    project = tmp_path / "App.csproj"
    project.write_text('<Project Sdk="Microsoft.NET.Sdk" />\n')
    run = hotreload("watch", str(project), cwd=tmp_path)
    assert_refused(run, str(project), "not an F# project", "pass an .fsproj")


def test_watch_refuses_a_folder_without_an_fsproj(tmp_path: Path) -> None:
    (tmp_path / "App.csproj").write_text('<Project Sdk="Microsoft.NET.Sdk" />\n')
    run = hotreload("watch", str(tmp_path), cwd=tmp_path)
    assert_refused(run, str(tmp_path), "no F# project (.fsproj) in this folder (only App.csproj)",
                   "pass the path of an .fsproj")


def test_watch_refuses_a_folder_with_two_fsprojs(tmp_path: Path) -> None:
    fsharp_app(tmp_path, name="One")
    fsharp_app(tmp_path, name="Two")
    run = hotreload("watch", ".", cwd=tmp_path)
    assert_refused(run, str(tmp_path), "2 F# projects in this folder (One.fsproj, Two.fsproj)", "pass the .fsproj")


def test_watch_refuses_a_project_file_that_is_not_xml(tmp_path: Path) -> None:
    project = tmp_path / "App.fsproj"
    project.write_text("<Project Sdk=\"Microsoft.NET.Sdk\">\n  <PropertyGroup>\n</Project>\n")
    run = hotreload("watch", str(project), cwd=tmp_path)
    assert_refused(run, str(project), "not valid XML", "fix it")


# ---- (c) no .NET SDK, (d) an SDK too old --------------------------------------------------------------------

def _fake_dotnet(folder: Path, script: str) -> Path:
    folder.mkdir()
    exe = folder / "dotnet"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_watch_without_dotnet_says_to_install_the_sdk(tmp_path: Path) -> None:
    project = fsharp_app(tmp_path / "app")
    empty = tmp_path / "bin"
    empty.mkdir()
    run = hotreload("watch", str(project), cwd=tmp_path, env=_quiet_env(PATH=str(empty), DOTNET_ROOT=None))
    assert_refused(run, ".NET SDK was not found", "install the .NET 10 SDK", "`dotnet` on PATH")


def test_watch_with_an_old_sdk_names_it_and_says_what_to_install(tmp_path: Path) -> None:
    project = fsharp_app(tmp_path / "app")
    exe = _fake_dotnet(tmp_path / "old-sdk", 'if [ "$1" = "--version" ]; then echo 8.0.100; exit 0; fi\nexit 1\n')
    env = _quiet_env(PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    run = hotreload("watch", str(project), cwd=tmp_path, env=env)
    assert_refused(run, "8.0.100", "too old", str(exe), "install it", ".NET 10 SDK")


def test_watch_with_a_broken_sdk_passes_on_its_complaint(tmp_path: Path) -> None:
    """`dotnet --version` fails when a global.json pins an SDK that is not installed."""
    project = fsharp_app(tmp_path / "app")
    exe = _fake_dotnet(tmp_path / "pinned-sdk", "echo 'A compatible .NET SDK was not found.' >&2\nexit 145\n")
    env = _quiet_env(PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    run = hotreload("watch", str(project), cwd=tmp_path, env=env)
    assert_refused(run, str(exe), "A compatible .NET SDK was not found", "install the .NET 10 SDK", "global.json")


# ---- (e) an optimized build, (g) a first build that does not compile ------------------------------------------

@pytest.mark.runtime
def test_watch_refuses_an_optimized_assembly_and_says_how_to_fix_it(tmp_path: Path) -> None:
    """hotreload builds with -p:Optimize=false (which a project cannot override); --optimize+ in OtherFlags can."""
    project = fsharp_app(tmp_path / "opt", extra="\n    <OtherFlags>$(OtherFlags) --optimize+</OtherFlags>",
                         name="Opt")
    run = hotreload("watch", str(project), cwd=tmp_path)
    dll = Builder(project).dll
    modes = debugging_modes(Assembly.from_file(str(dll)))
    assert modes is not None and not modes & DISABLE_OPTIMIZATIONS, f"{dll} is not optimized (modes {modes})"
    assert_refused(run, "Opt.dll cannot be hot reloaded", "built optimized", "--optimize+", "<OtherFlags>")


@pytest.mark.runtime
def test_watch_on_a_library_says_it_has_no_entry_point_and_what_to_use(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "Lib.fsproj").write_text(FSPROJ.replace("<OutputType>Exe</OutputType>", "").format(extra=""))
    (folder / "Program.fs").write_text("module Lib.Text\n\nlet shout (s: string) = s.ToUpper()\n")
    run = hotreload("watch", str(folder / "Lib.fsproj"), cwd=tmp_path)
    assert run.code == 2, run
    assert_refused(run, "Lib.fsproj is a library: it has no entry point to run", "hotreload watch App.fsproj",
                   'hotreload.Session("Lib.fsproj")')
    assert "runtime" not in run.stdout.split("is a library")[0], run  # said before the runtime is started


@pytest.mark.runtime
@pytest.mark.parametrize("output", ["text", "json"])
def test_watch_reports_the_first_build_s_compile_error_with_its_location(tmp_path: Path, output: str) -> None:
    project = fsharp_app(tmp_path / "broken", value="undefinedThing")
    run = hotreload("watch", *(["--json"] if output == "json" else []), str(project), cwd=tmp_path)
    where = f"{project.parent / 'Program.fs'}(5,18): error FS0039"
    assert_refused(run, "the first build failed", where, "'undefinedThing' is not defined")
    if output == "json":
        events = [json.loads(line) for line in run.stdout.splitlines()]
        assert any(e["level"] == "error" and where in e["message"] for e in events), run


# ---- (f) `hotreload delta` on corrupt and truncated assemblies ----------------------------------------------

def _corrupted(data: bytes, how: str) -> bytes:
    asm = Assembly(data)
    root = data.index(asm.md.raw)
    out = bytearray(data)
    if how == "text file":
        return b"this is not an assembly\n" * 40
    if how == "no CLI header":
        pe, = struct.unpack_from("<I", data, 0x3C)
        magic, = struct.unpack_from("<H", data, pe + 24)
        cli = pe + 24 + (96 if magic == 0x10B else 112) + 14 * 8  # data directory 14 of a PE32 / PE32+ header
        out[cli:cli + 8] = bytes(8)
    elif how == "no metadata signature":
        out[root:root + 4] = b"XXXX"
    elif how == "stream past the end":
        header = root + 16 + struct.unpack_from("<I", data, root + 12)[0] + 4
        out[header + 4:header + 8] = struct.pack("<I", 0x7FFFFFFF)
    elif how.startswith("cut "):
        cut = {"cut in the PE headers": 0x100, "cut in the metadata": root + 200,
               "cut in the heaps": root + asm.md.streams["#Blob"][0] + 8}[how]
        return bytes(out[:cut])
    return bytes(out)


@pytest.mark.runtime
@pytest.mark.parametrize("how", ["text file", "no CLI header", "no metadata signature", "stream past the end",
                                 "cut in the PE headers", "cut in the metadata", "cut in the heaps"])
def test_delta_names_a_corrupt_or_truncated_assembly(build_farm: BuildFarm, tmp_path: Path, how: str) -> None:
    """(test_cli.py checks the exit code of one truncation, in process.)"""
    good = build_farm["gen0"].dll
    broken = tmp_path / "HotLib.dll"
    broken.write_bytes(_corrupted(good.read_bytes(), how))
    for old, new in ((good, broken), (broken, good)):
        run = hotreload("delta", str(old), str(new), "-o", str(tmp_path / "out"), cwd=tmp_path)
        assert_refused(run, f"{broken} is not a readable .NET assembly", "rebuild it")
        assert not (tmp_path / "out" / "1.meta").exists()


@pytest.mark.runtime
def test_delta_names_a_corrupt_pdb(build_farm: BuildFarm, tmp_path: Path) -> None:
    gen0 = build_farm["gen0"]  # the first variant the farm builds: the PDB is read before the two are compared
    (tmp_path / "new").mkdir()
    dll = tmp_path / "new" / "HotLib.dll"
    dll.write_bytes(gen0.dll.read_bytes())
    dll.with_suffix(".pdb").write_bytes(gen0.pdb.read_bytes()[:300])
    run = hotreload("delta", str(gen0.dll), str(dll), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert_refused(run, f"{dll.with_suffix('.pdb')} is not a readable portable PDB", "rebuild it")


@pytest.mark.runtime
def test_delta_names_a_missing_assembly(build_farm: BuildFarm, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "HotLib.dll"
    run = hotreload("delta", str(build_farm["gen0"].dll), str(missing), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert_refused(run, str(missing))


@pytest.mark.runtime
@pytest.mark.parametrize("what", ["type name", "attribute constructor"])
def test_delta_names_an_assembly_corrupt_behind_valid_headers(build_farm: BuildFarm, tmp_path: Path,
                                                             what: str) -> None:
    """Headers and tables parse, but a row is corrupt: found only when the differ reads it (rows are read lazily).

    A TypeDef's name past #Strings; a type's custom attribute whose constructor has an unused CustomAttributeType
    tag (0: an AssertionError in names.py before schema's Coded.decode refused unused tags).
    """
    good = build_farm["gen0"].dll
    data = bytearray(good.read_bytes())
    md = Assembly(bytes(data)).md
    root = data.index(md.raw)
    if what == "type name":
        row = root + md.table_offsets[T.TypeDef] + _row_size(md, T.TypeDef)  # TypeDef row 2
        data[row + 4:row + 6] = b"\xff\xff"  # Flags (u4), then Name: a 2-byte #Strings offset
        says = "#Strings offset 0xffff out of range"
    else:
        rid = next(i for i, (parent, _ctor, _value) in enumerate(md.rows(T.CustomAttribute), 1)
                   if HasCustomAttribute.decode(parent)[0] == T.TypeDef)
        row = root + md.table_offsets[T.CustomAttribute] + (rid - 1) * _row_size(md, T.CustomAttribute)
        ctor, = struct.unpack_from("<H", data, row + 2)  # Parent, then Type: 2-byte coded indexes
        struct.pack_into("<H", data, row + 2, ctor & ~0x7)
        says = "corrupt CustomAttributeType coded index"
    broken = tmp_path / "HotLib.dll"
    broken.write_bytes(data)
    run = hotreload("delta", str(good), str(broken), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert_refused(run, str(broken), says)


def _row_size(md: MetadataImage, table: T) -> int:
    following = sorted(off for t, off in md.table_offsets.items() if off > md.table_offsets[table])
    return (following[0] - md.table_offsets[table]) // len(md.rows(table))


def test_watch_names_a_bad_stack_lines_setting(tmp_path: Path) -> None:
    project = fsharp_app(tmp_path / "app")
    run = hotreload("watch", str(project), cwd=tmp_path, env={**_quiet_env(), "HOTRELOAD_STACK_LINES": "sometimes"})
    assert_refused(run, "HOTRELOAD_STACK_LINES='sometimes'", "auto, on, off")
