"""Saves the way they really happen to a watched project: bursts, saves during a build, files deleted or renamed,
project-file edits and unicode. Each ends with the running code matching the sources."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import hotreload
from hotreload.session import OutcomeKind

pytestmark = pytest.mark.runtime

SAMPLE = Path(__file__).resolve().parents[1] / "sample_app" / "SampleApp.fsproj"
MULTIPLIER = "let multiplier () = 2"


def _settle(s: hotreload.Session, check: Callable[[], bool], timeout: float = 120) -> None:
    """Wait until `check()` holds and no rebuild has started for a while (the watcher is idle)."""
    deadline = time.monotonic() + timeout
    quiet_since, seen = time.monotonic(), len(s.outcomes)
    while time.monotonic() < deadline:
        if len(s.outcomes) != seen:
            quiet_since, seen = time.monotonic(), len(s.outcomes)
        idle = s._worker is None or s._worker.wait_idle(0)
        if idle and check() and time.monotonic() - quiet_since > 2.0:
            return
        time.sleep(0.1)
    raise AssertionError("the app did not settle on the last save: " + ", ".join(o.kind for o in s.outcomes))


def _set_multiplier(greeting: Path, value: int) -> None:
    text = greeting.read_text()
    start = text.index("let multiplier () = ")
    end = text.index("\n", start)
    greeting.write_text(text[:start] + f"let multiplier () = {value}" + text[end:])


def test_twenty_saves_in_two_seconds_end_with_the_last_one(hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE, watch=True)
    greeting = s.project.parent / "Greeting.fs"
    for value in range(1, 21):
        _set_multiplier(greeting, value)
        time.sleep(0.1)
    _settle(s, lambda: s.call("SampleApp.Greeting.multiplier") == 20)
    assert s.outcomes[-1].kind in (OutcomeKind.APPLIED, OutcomeKind.NO_CHANGE)
    assert {o.kind for o in s.outcomes} <= {OutcomeKind.APPLIED, OutcomeKind.NO_CHANGE}  # coalesced, never a half-written file


def test_a_save_during_a_build_is_not_lost(hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE, watch=True)
    greeting = s.project.parent / "Greeting.fs"
    _set_multiplier(greeting, 31)
    deadline = time.monotonic() + 30
    while not s._worker or not s._worker.busy:  # wait until the rebuild for the first save is running
        assert time.monotonic() < deadline
        time.sleep(0.005)
    _set_multiplier(greeting, 32)
    _settle(s, lambda: s.call("SampleApp.Greeting.multiplier") == 32)


def test_source_deleted_then_restored_and_renamed_then_renamed_back(
        hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE, watch=True)
    greeting = s.project.parent / "Greeting.fs"
    text = greeting.read_text()
    greeting.unlink()
    outcome = s.wait_for_outcome(0, 120)
    assert outcome is not None and outcome.kind == OutcomeKind.COMPILE_ERROR
    assert any("Greeting.fs" in str(e) for e in outcome.errors), outcome.errors
    assert s.call("SampleApp.Greeting.multiplier") == 2  # still running the last good code
    greeting.write_text(text.replace(MULTIPLIER, "let multiplier () = 41"))
    _settle(s, lambda: s.call("SampleApp.Greeting.multiplier") == 41)
    seen = len(s.outcomes)
    renamed = greeting.with_name("Renamed.fs")
    greeting.rename(renamed)
    outcome = s.wait_for_outcome(seen, 120)
    assert outcome is not None and outcome.kind == OutcomeKind.COMPILE_ERROR
    renamed.rename(greeting)
    _set_multiplier(greeting, 42)
    _settle(s, lambda: s.call("SampleApp.Greeting.multiplier") == 42)


def test_project_file_edit_adds_a_source_file_as_a_delta(hotreload_session: Callable[..., hotreload.Session]) -> None:
    s = hotreload_session(SAMPLE)
    folder = s.project.parent
    (folder / "Bonus.fs").write_text("module SampleApp.Bonus\n\nlet bonus () = 5\n")
    fsproj = s.project.read_text()
    s.project.write_text(fsproj.replace('<Compile Include="Greeting.fs" />',
                                        '<Compile Include="Bonus.fs" />\n    <Compile Include="Greeting.fs" />'))
    outcome = s.edit("Greeting.fs", MULTIPLIER, "let multiplier () = 2 + Bonus.bonus ()")
    assert outcome.kind == OutcomeKind.APPLIED and "SampleApp.Greeting.multiplier" in outcome.methods
    assert s.call("SampleApp.Greeting.multiplier") == 7
    assert s.call("SampleApp.Bonus.bonus") == 5
    outcome = s.edit("Bonus.fs", "let bonus () = 5", "let bonus () = 6")  # and the new file is edited warm again
    assert outcome.timings["build"] < 30 and s.call("SampleApp.Greeting.multiplier") == 8


UNICODE = """module Demo.Unicode

let résumé () = "naïve café ✓"
let ``grüße an alle`` (name: string) = $"Grüß dich, {name} — 日本語"
"""


def test_unicode_identifiers_and_strings(fsharp_project: Callable[..., object]) -> None:
    project = fsharp_project({"Unicode.fs": UNICODE})
    assert project.call("Demo.Unicode.résumé") == "naïve café ✓"  # type: ignore[attr-defined]
    outcome = project.edit("Unicode.fs", UNICODE.replace("naïve café ✓", "ça marche — ✔ 🎉"))  # type: ignore[attr-defined]
    assert outcome.methods == ["Demo.Unicode.résumé"]
    assert project.call("Demo.Unicode.résumé") == "ça marche — ✔ 🎉"  # type: ignore[attr-defined]
    edited = UNICODE.replace("日本語", "한국어")
    project.edit("Unicode.fs", edited)  # type: ignore[attr-defined]
    assert project.call("Demo.Unicode.grüße an alle", "Zoë") == "Grüß dich, Zoë — 한국어"  # type: ignore[attr-defined]


def test_a_rejected_update_stops_all_further_updates(hotreload_session: Callable[..., hotreload.Session],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    s = hotreload_session(SAMPLE)
    assert s.updater is not None
    real = s.updater.applier.apply
    # a delta the runtime must reject: its metadata tables scrambled past the header
    monkeypatch.setattr(s.updater.applier, "apply",
                        lambda asm, md, il, pdb: real(asm, md[:40] + b"\xff" * (len(md) - 40), il, pdb))
    with pytest.raises(hotreload.UpdateFailed, match="rejected generation 1.*restart"):
        s.edit("Greeting.fs", MULTIPLIER, "let multiplier () = 3")
    monkeypatch.undo()
    with pytest.raises(hotreload.UpdateFailed, match="needs a restart|earlier update failed"):
        s.edit("Greeting.fs", "let multiplier () = 3", "let multiplier () = 4")  # nothing more is applied
    assert s.update_count == 0 and s.generation == 0
