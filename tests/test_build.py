"""Builder.reuse: a restart starts from the last save's build only when nothing it was made from has changed."""

from __future__ import annotations

from pathlib import Path

from hotreload.build import Builder


def _project(tmp_path: Path) -> tuple[Builder, list[str]]:
    project = tmp_path / "App.fsproj"
    project.write_text("<Project Sdk=\"Microsoft.NET.Sdk\" />")
    sources = [tmp_path / "A.fs", tmp_path / "B.fs"]
    for i, source in enumerate(sources):
        source.write_text(f"module M{i}\nlet x = {i}\n")
    builder = Builder(project, work_dir=tmp_path / ".hotreload")
    builder.out_dir.mkdir(parents=True)
    builder.dll.write_bytes(b"MZ compiled from A and B")
    return builder, [str(s) for s in sources]


def test_the_same_sources_and_assembly_are_reused(tmp_path: Path) -> None:
    builder, sources = _project(tmp_path)
    fingerprint = builder.fingerprint(builder.digests(sources), "inputs-1")
    reused = builder.reuse(fingerprint, "inputs-1")
    assert reused is not None and reused.ok and reused.how == "reused" and reused.dll == builder.dll


def test_any_difference_means_a_real_build(tmp_path: Path) -> None:
    builder, sources = _project(tmp_path)
    before = builder.digests(sources)  # taken before the compile...
    Path(sources[1]).write_text("module M1\nlet x = 42\n")  # ...and a save lands while it runs
    fingerprint = builder.fingerprint(before, "inputs-1")
    assert builder.reuse(fingerprint, "inputs-1") is None
    fingerprint = builder.fingerprint(builder.digests(sources), "inputs-1")
    assert builder.reuse(fingerprint, "inputs-2") is None  # the project (or a Directory.Build file) changed
    builder.dll.write_bytes(b"MZ something else")  # bin/ no longer holds that build
    assert builder.reuse(fingerprint, "inputs-1") is None
    assert builder.reuse(None, "inputs-1") is None and builder.reuse("not json", "inputs-1") is None
    fingerprint = builder.fingerprint(builder.digests(sources), "inputs-1")
    Path(sources[0]).unlink()
    assert builder.reuse(fingerprint, "inputs-1") is None
