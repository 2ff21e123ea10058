"""The Python API (`hotreload.Session`) and the pytest plugin's `hotreload_session` fixture, on sample_app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hotreload

pytestmark = pytest.mark.runtime

SAMPLE = Path(__file__).resolve().parents[1] / "sample_app" / "SampleApp.fsproj"


def test_call_edit_and_state(hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE)
    assert s.project != SAMPLE and s.project.parent.parent.name.startswith("test_")  # a copy: sources untouched
    assert s.call("SampleApp.Greeting.greeting", "F#") == "Hello, F#"
    assert (s.update_count, s.generation) == (0, 0)
    outcome = s.edit("Greeting.fs", '"Hello, %s"', '"Hi, %s!"')
    assert outcome.kind == hotreload.OutcomeKind.APPLIED and outcome.methods == ["SampleApp.Greeting.greeting"]
    assert s.call("SampleApp.Greeting.greeting", "F#") == "Hi, F#!"
    s.edit("Greeting.fs", "let multiplier () = 2", "let multiplier () = 5")
    assert s.call("SampleApp.Greeting.score", 3) == 15
    assert (s.update_count, s.generation) == (2, 2)
    assert "Hello" in SAMPLE.with_name("Greeting.fs").read_text()


IDISPOSABLE = "    interface IDisposable with\n        member _.Dispose() = ()\n\n"


def test_errors_name_the_file_and_leave_the_app_running(hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE)
    with pytest.raises(hotreload.CompileFailed) as compile_error:
        s.edit("Greeting.fs", "tick * multiplier ()", "tick * multiplierr ()")
    assert "Greeting.fs(8," in str(compile_error.value) and "multiplierr" in str(compile_error.value)
    s.edit("Greeting.fs", "tick * multiplierr ()", "tick * multiplier ()")  # back to good code: no change to apply
    with pytest.raises(hotreload.EditRefused) as refused:  # the running type cannot gain an interface
        s.edit("ReloadHandler.fs", "    static member ClearCache", IDISPOSABLE + "    static member ClearCache")
    assert "SampleApp.ReloadHandler" in str(refused.value) and "restart" in str(refused.value)
    s.edit("ReloadHandler.fs", IDISPOSABLE, "")  # back to the running code: nothing to apply
    s.edit("Greeting.fs", "let multiplier () = 2", "let multiplier () = 3")
    assert s.call("SampleApp.Greeting.multiplier") == 3
    with pytest.raises(hotreload.SessionError, match="occurs 0 times"):
        s.edit("Greeting.fs", "no such text", "x")


def test_watching_session_applies_saves_made_by_the_edit(hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE, watch=True)
    outcome = s.edit("Greeting.fs", "let multiplier () = 2", "let multiplier () = 7")
    assert outcome.kind == hotreload.OutcomeKind.APPLIED  # the watcher saw the save and applied it; edit() waited for that
    assert s.call("SampleApp.Greeting.score", 2) == 14


def test_edit_keeps_bom_crlf_and_encoding_outside_the_edited_text(
        hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE)
    greeting = s.project.parent / "Greeting.fs"
    original = b"\xef\xbb\xbf" + greeting.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    greeting.write_bytes(original)
    s.edit("Greeting.fs", "let multiplier () = 2", "// tuned\nlet multiplier () = 4")  # \n: the file's ending
    after = greeting.read_bytes()
    assert after == original.replace(b"let multiplier () = 2", b"// tuned\r\nlet multiplier () = 4")
    assert s.call("SampleApp.Greeting.multiplier") == 4


@pytest.mark.parametrize(("raw", "old", "new", "expected"), [
    (b"a\r\nb\r\nc\r\n", "b", "B", b"a\r\nB\r\nc\r\n"),
    (b"a\r\nb\r\nc\r\n", "a\nb", "x\ny", b"x\r\ny\r\nc\r\n"),
    (b"a\nb\r\n", "a\nb", "z", b"z\r\n"),  # mixed endings: the text as given matches, nothing converted
    (b"\xef\xbb\xbfl\xc3\xa9t x = 1\n", "1", "2", b"\xef\xbb\xbfl\xc3\xa9t x = 2\n"),
    ("\ufefflet s = \"\u00e9\"\r\n".encode("utf-16-le"), "\u00e9", "\u00ea",
     "\ufefflet s = \"\u00ea\"\r\n".encode("utf-16-le")),
])
def test_replace_in_source_changes_only_the_edited_bytes(raw: bytes, old: str, new: str, expected: bytes) -> None:
    from hotreload.session import replace_in_source

    assert replace_in_source(raw, old, new, Path("F.fs")) == expected


def test_replace_in_source_names_the_file_for_bad_text() -> None:
    from hotreload.session import replace_in_source

    with pytest.raises(hotreload.SessionError, match="F.fs: not UTF-8"):
        replace_in_source(b"\xff\x00abc", "a", "b", Path("F.fs"))
    with pytest.raises(hotreload.SessionError, match="occurs 2 times"):
        replace_in_source(b"aa", "a", "b", Path("F.fs"))


def test_call_finds_a_module_named_like_a_type(fsharp_project: Any) -> None:
    """F# compiles `module Node` beside `type Node` as `NodeModule`; `call` takes the name written in the source."""
    p = fsharp_project({"Lib.fs": "namespace Demo\n\ntype Node = { Value: int }\n\nmodule Node =\n"
                                  "    let make (v: int) = { Value = v }\n    let value (v: int) = (make v).Value * 2\n"},
                       name="Suffix")
    assert p.session.call("Demo.Node.value", 21) == 42
