"""Which files two compiles compiled alike (hotreload.compile_inputs): the files before the first that differs,
and none when the flags or a referenced file differ."""

from __future__ import annotations

import os
from pathlib import Path

from hotreload.compile_inputs import CompileInputs


def _project(tmp_path: Path) -> list[str]:
    for name in ("A.fs", "B.fs", "C.fs"):
        (tmp_path / name).write_text(f"module {name[0]}\nlet x = 1\n")
    (tmp_path / "Ref.dll").write_bytes(b"MZ")
    return ["--debug:portable", "-r:Ref.dll", "A.fs", "B.fs", "C.fs"]


def _names(paths: frozenset[str]) -> set[str]:
    return {os.path.basename(p) for p in paths}


def test_the_files_before_the_first_changed_one_are_vouched_for(tmp_path: Path) -> None:
    args = _project(tmp_path)
    before = CompileInputs.of(args, str(tmp_path))
    again = CompileInputs.of(args, str(tmp_path))
    assert before is not None and again is not None
    assert _names(again.unchanged_prefix(before)) == {"A.fs", "B.fs", "C.fs"}
    (tmp_path / "B.fs").write_text("module B\nlet x = 2\n")
    now = CompileInputs.of(args, str(tmp_path))
    assert now is not None and _names(now.unchanged_prefix(before)) == {"A.fs"}
    assert all(os.path.isabs(p) for p in now.unchanged_prefix(before))


def test_files_in_another_order_count_from_the_first_that_moved(tmp_path: Path) -> None:
    args = _project(tmp_path)
    before = CompileInputs.of(args, str(tmp_path))
    now = CompileInputs.of([*args[:2], "A.fs", "C.fs", "B.fs"], str(tmp_path))
    assert now is not None and _names(now.unchanged_prefix(before)) == {"A.fs"}


def test_other_flags_or_a_rewritten_reference_vouch_for_nothing(tmp_path: Path) -> None:
    args = _project(tmp_path)
    before = CompileInputs.of(args, str(tmp_path))
    flags = CompileInputs.of(["--define:X", *args], str(tmp_path))
    assert flags is not None and flags.unchanged_prefix(before) == frozenset()
    stat = os.stat(tmp_path / "Ref.dll")
    os.utime(tmp_path / "Ref.dll", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = CompileInputs.of(args, str(tmp_path))
    assert touched is not None and touched.unchanged_prefix(before) == frozenset()
    assert touched.unchanged_prefix(None) == frozenset()


def test_a_missing_file_makes_the_inputs_unknown(tmp_path: Path) -> None:
    args = _project(tmp_path)
    (tmp_path / "C.fs").unlink()
    assert CompileInputs.of(args, str(tmp_path)) is None
