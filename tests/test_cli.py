"""`hotreload delta OLD NEW -o DIR`: files mdv reads, accepted as they are by the runtime; clear failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fsharp_testkit import ASSEMBLY, MODULE, BuildFarm, Srm

from hotreload.app import HostedApp
from hotreload.cli import main
from hotreload.metadata.schema import T
from hotreload.runtime import UpdateApplier

pytestmark = pytest.mark.runtime


def test_delta_command_writes_files_the_runtime_applies(build_farm: BuildFarm, srm: Srm, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    gen0, edited = build_farm["gen0"], build_farm["constant"]
    out = tmp_path / "delta"
    assert main(["delta", str(gen0.dll), str(edited.dll), "-o", str(out)]) == 0
    assert "Hot.Lib.constant" in capsys.readouterr().out
    meta, il, pdb = ((out / f"1.{ext}").read_bytes() for ext in ("meta", "il", "pdb"))
    reader = srm.read_metadata(meta)
    assert srm.row_count(reader, T.MethodDef) == 1 and srm.enc_map(reader)
    assert il[:4] == b"\0\0\0\0"
    pdb_reader = srm.read_pdb(pdb)
    assert srm.row_count(pdb_reader, T.MethodDebugInformation) == 1
    # the files, unchanged, are a valid update of a fresh copy of generation 0
    folder = tmp_path / "app"
    shutil.copytree(gen0.dll.parent, folder)
    app = HostedApp(str(folder / f"{ASSEMBLY}.dll"), name="cli-delta")
    assert app.call(f"{MODULE}.constant") == 42
    UpdateApplier().apply(app.assembly, meta, il, pdb)
    assert app.call(f"{MODULE}.constant") == 43


def test_delta_command_names_a_rude_edit(build_farm: BuildFarm, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["delta", str(build_farm["gen0"].dll), str(build_farm["refused"].dll), "-o", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "base type change in Hot.Lib.Named" in err
    assert not (tmp_path / "1.meta").exists()


def test_delta_command_rejects_a_truncated_assembly(build_farm: BuildFarm, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.dll"
    broken.write_bytes(build_farm["gen0"].dll.read_bytes()[:700])
    code = main(["delta", str(build_farm["gen0"].dll), str(broken), "-o", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot read the assemblies" in err
    assert f"{broken} is not a readable .NET assembly" in err  # which of the two (test_cli_errors: more cases)
