"""Stack traces of updated code show the new file and line (hotreload.lines), through the real Session.

CoreCLR shows no file/line at all for any frame of a module once it has been updated, and its own symbols are
the gen0 PDB; these tests throw from F# functions before and after edits that move the throwing line.
The functions have no lambdas: only the edited function's lines move (closures are named by line).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from hotreload.lines import PdbImage, read_pdb_delta
from hotreload.metadata.schema import T
from hotreload.pdb import Pdb, SequencePoint
from hotreload.session import OutcomeKind

pytestmark = pytest.mark.runtime

SRC = """module Demo.Lib

let above (x: int) : int =
    if x > 0 then
        failwith "above"
    x

let boom (x: int) : int =
    if x > 0 then
        failwith "boom"
    x + 1

let below (x: int) : int =
    if x > 0 then
        failwith "below"
    x + 2
let pad () = 0
"""
BOOM_LINE = 10  # failwith "boom"


def ready(fsharp_project: Any, source: str = SRC) -> Any:
    """A live project whose runtime-side line keeping is on: the update count is written only once it has been
    found and confirmed across two updates, so two updates of `pad` (which moves nothing) come first."""
    p = fsharp_project({"Lib.fs": source})
    for value in (1, 0):
        p.edit("Lib.fs", source.replace("let pad () = 0", f"let pad () = {value}"))
    lines = p.session.updater.lines
    assert lines.writes and lines._count is not None and lines._count.confirmed, lines.status or lines.problem
    return p


def reported_line(p: Any, function: str) -> int | None:
    """Line in Lib.fs of Demo.Lib.<function>'s frame in hotreload's own crash report of its exception."""
    from System import Array, Int32, Object  # type: ignore[import-not-found]

    from hotreload.traces import format_exception

    method = p.session.app.find_method(f"Demo.Lib.{function}")
    try:
        method.Invoke(None, Array[Object]([Int32(1)]))
    except Exception as exc:  # noqa: BLE001 - the TargetInvocationException wrapping the F# exception
        inner = exc.InnerException  # type: ignore[attr-defined]
        text = format_exception(inner, p.session.app.module, p.session.updater.lines)
    else:
        raise AssertionError(f"{function} did not throw")
    frame = next((line for line in text.splitlines() if f"Demo.Lib.{function}(" in line), None)
    assert frame is not None, text + "\n----\n" + str(inner.ToString())
    found = re.search(r" in (.+):line (\d+)$", frame)
    return int(found.group(2)) if found and found.group(1).endswith("Lib.fs") else None


def throw_line(p: Any, function: str) -> tuple[str, int | None]:
    """Call Demo.Lib.<function> 1 (it throws) and return (the frame's text, its line in Lib.fs or None)."""
    from System import Array, Int32, Object  # type: ignore[import-not-found]

    method = p.session.app.find_method(f"Demo.Lib.{function}")
    try:
        method.Invoke(None, Array[Object]([Int32(1)]))
    except Exception as exc:  # noqa: BLE001 - the TargetInvocationException wrapping the F# exception
        text = str(exc.InnerException.ToString())  # type: ignore[attr-defined]
    else:
        raise AssertionError(f"{function} did not throw")
    frame = next(line for line in text.splitlines() if f"Demo.Lib.{function}(" in line)
    found = re.search(r" in (.+):line (\d+)$", frame)
    if found is None:
        return frame, None
    assert found.group(1).endswith("Lib.fs"), frame
    return frame, int(found.group(2))


def insert_in_boom(text: str, lines: list[str]) -> str:
    """Insert `lines` at the top of boom's body (so its throw moves down by len(lines))."""
    head = "let boom (x: int) : int =\n"
    assert head in text
    return text.replace(head, head + "".join(f"    {line}\n" for line in lines), 1)


def test_throw_shows_the_new_line_after_lines_were_inserted(fsharp_project: Any) -> None:
    p = ready(fsharp_project)
    assert throw_line(p, "boom")[1] == BOOM_LINE
    p.edit("Lib.fs", insert_in_boom(SRC, ["let y = x", "let z = y + 0"]))
    assert p.call("Demo.Lib.boom", 0) == 1  # the new code runs
    frame, line = throw_line(p, "boom")
    assert line == BOOM_LINE + 2, frame
    # an unedited function above the edit keeps its (unchanged) line: the whole module has lines again
    assert throw_line(p, "above")[1] == 5
    assert p.session.updater is not None and p.session.updater.lines.problem is None


def test_latest_lines_show_after_several_generations(fsharp_project: Any) -> None:
    p = ready(fsharp_project)
    inserted: list[str] = []
    for gen in range(1, 4):
        inserted += [f"let y{gen} = x + {gen}", f"let z{gen} = y{gen} - {gen}"]
        p.edit("Lib.fs", insert_in_boom(SRC, inserted))
        assert p.session.generation == gen + 2
        frame, line = throw_line(p, "boom")
        assert line == BOOM_LINE + len(inserted), f"generation {gen}: {frame}"
    # and back: a later update of the same method replaces what an earlier one installed
    p.edit("Lib.fs", insert_in_boom(SRC, ["let only = x"]))
    assert throw_line(p, "boom")[1] == BOOM_LINE + 1
    assert throw_line(p, "above")[1] == 5


def test_moved_functions_follow_their_lines(fsharp_project: Any) -> None:
    """Code whose IL did not change but whose lines moved: with an applied edit (the PDB delta carries the
    moved methods' rows) and without one (a comment inserted: nothing to apply, LineInfo.update_from)."""
    p = ready(fsharp_project)
    assert throw_line(p, "below")[1] == 15
    text = insert_in_boom(SRC, ["let y = x", "let z = y + 0"])
    p.edit("Lib.fs", text)
    assert throw_line(p, "below")[1] == 17
    assert throw_line(p, "boom")[1] == BOOM_LINE + 2
    outcome = p.save("Lib.fs", text.replace("module Demo.Lib\n", "module Demo.Lib\n// a comment moves everything\n"))
    assert outcome.kind == OutcomeKind.NO_CHANGE, outcome.kind
    assert [throw_line(p, f)[1] for f in ("above", "boom", "below")] == [6, BOOM_LINE + 3, 18]
    assert p.session.updater is not None and p.session.updater.lines.problem is None


def test_pdb_image_reads_back_through_srm(fsharp_project: Any, srm: Any) -> None:
    """The image LineInfo installs, read by System.Reflection.Metadata: every baseline method as in the PDB,
    a replaced method with its new points, in a document the baseline did not have."""
    p = fsharp_project({"Lib.fs": SRC})
    assert p.session.updater is not None
    pdb = Pdb.from_file(p.session.updater.lines.pdb_path)
    image = PdbImage(pdb)
    methods = len(pdb.md.rows(T.MethodDebugInformation))
    new_points = [SequencePoint(0, 7, 40, 5, 40, 20), SequencePoint(3, 8, 0xFEEFEE, 0, 0xFEEFEE, 0),
                  SequencePoint(6, 9, 41, 9, 43, 2)]
    assert image.set_points(2, new_points, {7: "/src/Other.fs", 8: "/src/Other.fs", 9: "/src/Third.fs"})
    assert not image.set_points(2, new_points, {7: "/src/Other.fs", 8: "/src/Other.fs", 9: "/src/Third.fs"})
    reader = srm.read_pdb(image.image())

    def points(rid: int) -> list[tuple[int, int, int, int, int, str]]:
        info = reader.GetMethodDebugInformation(srm.MetadataTokens.MethodDebugInformationHandle(rid))
        if info.SequencePointsBlob.IsNil:
            return []
        return [(sp.Offset, sp.StartLine, sp.StartColumn, sp.EndLine, sp.EndColumn,
                 str(reader.GetString(reader.GetDocument(sp.Document).Name))) for sp in info.GetSequencePoints()]

    for rid in range(1, methods + 1):
        if rid != 2:
            expected = [(sp.il_offset, sp.start_line, sp.start_column, sp.end_line, sp.end_column,
                         pdb.document_name(sp.document)) for sp in pdb.method_info(rid).points]
            assert points(rid) == expected, rid
    assert points(2) == [(0, 40, 5, 40, 20, "/src/Other.fs"), (3, 0xFEEFEE, 0, 0xFEEFEE, 0, "/src/Other.fs"),
                         (6, 41, 9, 43, 2, "/src/Third.fs")]
    assert points(methods + 100) == []  # spare rows: a method added later reads as "no points", not an error


def test_pdb_delta_rows_are_keyed_by_running_rid(fsharp_project: Any) -> None:
    """What the Updater hook reads from delta.pdb: MethodDebugInformation rows by EncMap rid, document names."""
    p = fsharp_project({"Lib.fs": SRC})
    assert p.session.updater is not None
    lines = p.session.updater.lines
    captured: list[bytes] = []
    original = lines.applied

    def capture(data: bytes) -> str | None:
        captured.append(data)
        return original(data)

    lines.applied = capture  # type: ignore[method-assign]
    p.edit("Lib.fs", insert_in_boom(SRC, ["let y = x"]))
    methods, names = read_pdb_delta(captured[0], {})
    boom, below, pad = (p.session.app.find_method(f"Demo.Lib.{f}").MetadataToken & 0xFFFFFF
                        for f in ("boom", "below", "pad"))
    assert sorted(methods) == sorted([boom, below, pad])  # the edited method and the ones it moved down
    assert {sp.start_line for sp in methods[below] if not sp.hidden} == {15, 16, 17}  # was 14, 15, 16
    lines_of = {sp.start_line for sp in methods[boom] if not sp.hidden}
    assert lines_of == {9, 10, 11, 12}  # let y = x; if; failwith (was line 10); x + 1
    baseline_docs = {rid: name for name, rid in Pdb.from_file(lines.pdb_path).documents().items()}
    assert {(baseline_docs | names)[sp.document].rsplit("/", 1)[-1] for sp in methods[boom]} == {"Lib.fs"}


def test_a_failure_turns_lines_off_rather_than_leaving_stale_ones(fsharp_project: Any) -> None:
    p = ready(fsharp_project)
    assert p.session.updater is not None
    lines = p.session.updater.lines
    p.edit("Lib.fs", insert_in_boom(SRC, ["let y = x"]))
    assert throw_line(p, "boom")[1] == BOOM_LINE + 1

    def broken(image: Any) -> None:
        raise RuntimeError("no image today")

    lines._publish = broken  # type: ignore[method-assign]
    outcome = p.edit("Lib.fs", insert_in_boom(SRC, ["let y = x", "let z = y"]))
    assert outcome.kind == OutcomeKind.APPLIED and outcome.verification is not None
    assert any("no image today" in warning for warning in outcome.verification.warnings)
    assert throw_line(p, "boom")[1] is None  # the runtime's own behaviour after an update: no file/line
    assert throw_line(p, "above")[1] is None
    outcome = p.edit("Lib.fs", insert_in_boom(SRC, ["let y = x"]))  # reported once, and stays off
    assert outcome.verification is not None and outcome.verification.warnings == []
    assert throw_line(p, "boom")[1] is None
    assert reported_line(p, "boom") == BOOM_LINE + 1  # hotreload's own reports keep their lines


def test_added_function_shows_its_line(fsharp_project: Any) -> None:
    """A method the running module did not have (a new MethodDef row) gets its lines from the PDB delta."""
    p = ready(fsharp_project)
    added = SRC + 'let added (x: int) : int =\n    if x > 0 then\n        failwith "added"\n    x + 3\n'
    p.edit("Lib.fs", added)
    assert throw_line(p, "added")[1] == 20
    p.edit("Lib.fs", added.replace("let added (x: int) : int =\n", "let added (x: int) : int =\n    let y = x\n"))
    assert throw_line(p, "added")[1] == 21
    assert [throw_line(p, f)[1] for f in ("above", "boom", "below")] == [5, BOOM_LINE, 15]


def test_update_count_is_found_by_watching_it() -> None:
    """_EncCount on a fake Module: two ints go 1 -> 2 in the first update (ambiguous: nothing is written), only
    one keeps counting in the second (found, not yet confirmed: nothing is written), it counts up again in the
    third (confirmed): from then on it is put back to 1 after every update, and restored on request."""
    import ctypes

    from hotreload.lines import _EncCount

    memory = (ctypes.c_int32 * 1024)()
    memory[5] = memory[100] = 1
    count = _EncCount(ctypes.addressof(memory), 1)
    count.before()
    memory[5] = memory[100] = 2  # the first ApplyUpdate, and a neighbour that happens to look the same
    count.after()
    assert not count.reset() and memory[5] == memory[100] == 2
    count.before()
    memory[5], memory[100] = 3, 7
    count.after()
    assert count.offset == 20 and not count.reset() and memory[5] == 3  # unique, but seen counting only once
    count.before()
    memory[5] += 1
    count.after()
    assert count.reset() and memory[5] == 1 and memory[100] == 7
    for _ in range(2):
        count.before()
        memory[5] += 1
        count.after()
        assert count.reset() and memory[5] == 1
    count.restore()
    assert memory[5] == 6  # five updates: the runtime's own count


def test_update_count_elsewhere_than_pinned_is_never_written() -> None:
    import ctypes

    from hotreload.lines import LinesUnavailable, _EncCount

    memory = (ctypes.c_int32 * 1024)()
    memory[7] = 1
    count = _EncCount(ctypes.addressof(memory), 1, pinned=0x350)
    count.before()
    memory[7] = 2
    with pytest.raises(LinesUnavailable, match="not at the 0x350 pinned"):
        count.after()
    assert memory[7] == 2


def test_update_count_offset_is_pinned(fsharp_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The allow-list's evidence: on this runtime build, watching (--stack-lines on, no pinned offset assumed)
    finds the update count at the offset PINNED lists. A new runtime build gets into PINNED only through this."""
    from hotreload.lines import PINNED, runtime_build

    monkeypatch.setattr("hotreload.lines.PINNED", {})
    monkeypatch.setenv("HOTRELOAD_STACK_LINES", "on")
    p = fsharp_project({"Lib.fs": SRC})
    for value in (1, 0):
        p.edit("Lib.fs", SRC.replace("let pad () = 0", f"let pad () = {value}"))
    count = p.session.updater.lines._count
    assert count is not None and count.confirmed, p.session.updater.lines.problem
    build = runtime_build()
    if build not in PINNED:
        pytest.skip(f"runtime build {build} is not pinned; watching found the count at 0x{count.offset:x}")
    assert count.offset == PINNED[build]


def test_runtime_lines_wait_for_a_confirmed_count_and_reports_never_wait(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": SRC})
    lines = p.session.updater.lines
    assert lines.writes and lines.status is None  # this runtime build is pinned: auto keeps the runtime's lines
    p.edit("Lib.fs", insert_in_boom(SRC, ["let y = x"]))
    assert throw_line(p, "boom")[1] is None  # one update seen: the field is not written yet
    assert reported_line(p, "boom") == BOOM_LINE + 1
    p.edit("Lib.fs", insert_in_boom(SRC, ["let y = x", "let z = y"]))
    assert throw_line(p, "boom")[1] == BOOM_LINE + 2  # confirmed in the second update: the runtime's lines too
    assert reported_line(p, "boom") == BOOM_LINE + 2


@pytest.mark.parametrize("how", ["off", "unpinned"])
def test_without_runtime_writes_reports_still_show_the_lines(
        fsharp_project: Any, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """--stack-lines off, or auto on a runtime build no test pinned: nothing is written into the runtime (no
    count found or reset, no symbols installed), one status line says so, and hotreload's reports keep lines."""
    if how == "off":
        monkeypatch.setenv("HOTRELOAD_STACK_LINES", "off")
    else:
        monkeypatch.setattr("hotreload.lines.PINNED", {})
    p = fsharp_project({"Lib.fs": SRC})
    lines = p.session.updater.lines
    assert not lines.writes and lines._count is None
    said = [line for line in p.reporter.lines if line.startswith("stack-trace lines")]
    assert len(said) == 1 and ("off (--stack-lines off)" if how == "off" else "not one a test pinned") in said[0]
    text = SRC
    for n in range(1, 4):
        text = insert_in_boom(text, [f"let y{n} = x"])
        p.edit("Lib.fs", text)
        assert throw_line(p, "boom")[1] is None  # the runtime's own behaviour for an updated module
        assert reported_line(p, "boom") == BOOM_LINE + n
        assert reported_line(p, "below") == 15 + n
    assert lines._providers == []


def test_crash_report_of_the_app_shows_the_updated_line(fsharp_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's entry point dies of an exception thrown by updated code: the report hotreload prints names the
    file and the new line (here with the runtime side off, so the line can only come from hotreload's own)."""
    import time

    monkeypatch.setenv("HOTRELOAD_STACK_LINES", "off")
    app = SRC + "let mutable go = false\nlet start () = go <- true\n[<EntryPoint>]\nlet main _ =\n" \
        "    while not go do System.Threading.Thread.Sleep 5\n    boom 1\n"
    p = fsharp_project({"Lib.fs": app}, output="Exe")
    p.session.run_entry_point = True
    p.session.app.start([], p.session._on_exit)
    p.edit("Lib.fs", insert_in_boom(app, ["let y = x", "let z = y"]))
    p.call("Demo.Lib.start")
    deadline = time.monotonic() + 20
    while p.session.app_exit is None and time.monotonic() < deadline:
        time.sleep(0.02)
    report = p.session.app_exit.error
    frame = next(line for line in report.splitlines() if "Demo.Lib.boom(" in line)
    assert frame.endswith(f"Lib.fs:line {BOOM_LINE + 2}"), report
    assert report.startswith("System.Exception: boom")
    assert any(f"Lib.fs:line {BOOM_LINE + 2}" in line for line in p.reporter.lines[-20:] if "boom" in line) \
        or f"Lib.fs:line {BOOM_LINE + 2}" in "\n".join(p.reporter.lines)
