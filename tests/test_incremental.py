"""Body-only saves are diffed from the tables (incremental.py) and give what the full comparison gives."""

from __future__ import annotations

from typing import Any

import pytest
from fsharp_testkit import BuildFarm
from hypothesis import given
from hypothesis import strategies as st

import hotreload.diff as diff_module
from hotreload.delta import load_build
from hotreload.diff import Diff, diff_builds
from hotreload.incremental import Spans, differing, same_structure

# ---- the run-and-halve comparison, on synthetic layouts ---------------------------------------------------------


def _layout(items: list[bytes], gaps: list[int]) -> Spans:
    data, starts = bytearray(), {}
    for i, (item, gap) in enumerate(zip(items, gaps)):
        data += b"\xee" * gap
        starts[i] = len(data)
        data += item
    lengths = {starts[i]: len(item) for i, item in enumerate(items)}
    return Spans(bytes(data), starts, lengths.__getitem__)


@given(st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=60), st.data())
def test_differing_finds_exactly_the_items_whose_bytes_changed(items: list[bytes], data: st.DataObject) -> None:
    edited = list(items)
    for i in data.draw(st.lists(st.integers(0, len(items) - 1), max_size=6)):
        edited[i] = data.draw(st.binary(min_size=1, max_size=12))  # same, shorter or longer: later items move
    gaps = data.draw(st.lists(st.integers(0, 3), min_size=len(items), max_size=len(items)))
    expected = [i for i, (a, b) in enumerate(zip(items, edited)) if a != b]
    assert differing(_layout(items, gaps), _layout(edited, gaps)) == expected


# ---- real builds: the fast path agrees with the full comparison --------------------------------------------------


def _summary(diff: Diff) -> tuple[Any, ...]:
    return (sorted(c.name for c in diff.changed), sorted(c.name for c in diff.moved),
            sorted((r.kind, r.member) for r in diff.refusals), diff.added_methods, diff.deleted)


@pytest.mark.runtime
def test_fast_path_gives_the_full_comparisons_result(build_farm: BuildFarm, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["gen0", "noop", "constant", "greeting", "bcl", "local", "try", "closure", "all", "refused"]
    builds = build_farm.get(names + [f"gen{i}" for i in range(1, 11)])
    pairs = [("gen0", n) for n in names[1:]] + [(f"gen{i}", f"gen{i + 1}") for i in range(1, 10)]
    fast_pairs = []
    for old_name, new_name in pairs:
        old, old_pdb = load_build(str(builds[old_name].dll))
        new, new_pdb = load_build(str(builds[new_name].dll))
        fast = same_structure(old, new)
        result = diff_builds(old, new, None, (old_pdb, new_pdb))
        with monkeypatch.context() as patched:
            patched.setattr(diff_module, "same_structure", lambda old, new: False)
            fresh_old, fresh_new = (load_build(str(builds[n].dll))[0] for n in (old_name, new_name))
            full = diff_builds(fresh_old, fresh_new, None, (old_pdb, new_pdb))
        assert _summary(result) == _summary(full), (old_name, new_name)
        if fast:
            fast_pairs.append(new_name)
    # body-only edits take the fast path; an added function, signature or local variable signature does not
    assert {"noop", "constant", "greeting", "closure"} <= set(fast_pairs)
    assert not {"refused", "all", "local"} & set(fast_pairs)


# ---- through the runtime ------------------------------------------------------------------------------------------

STRINGS = """module Demo.Strings

let first () = "a"
let second (x: int) = if x > 0 then "second string" else "none"
let third () = sprintf "%s and %d" "third" 3
let fourth (x: int) = if x > 0 then "positive" else "other"
"""


@pytest.mark.runtime
def test_a_longer_string_moves_later_strings_but_only_its_function_changes(fsharp_project: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = diff_module.same_structure

    def recorded(old: Any, new: Any) -> bool:
        seen.append(real(old, new))
        return seen[-1]

    monkeypatch.setattr(diff_module, "same_structure", recorded)
    project = fsharp_project({"Strings.fs": STRINGS})
    outcome = project.edit("Strings.fs", STRINGS.replace('"a"', '"a much longer first string"'))
    assert outcome.methods == ["Demo.Strings.first"] and seen == [True]
    assert project.call("Demo.Strings.first") == "a much longer first string"
    assert project.call("Demo.Strings.second", 1) == "second string"
    assert project.call("Demo.Strings.third") == "third and 3"
    assert project.call("Demo.Strings.fourth", 1) == "positive"
    # a body that grows moves every later body; still only the edited one is sent
    grown = STRINGS.replace('"a"', '"a much longer first string"').replace("x > 0 then", "x > 0 && x < 1000 then", 1)
    outcome = project.edit("Strings.fs", grown)
    assert outcome.methods == ["Demo.Strings.second"] and seen[-1] is True
    assert project.call("Demo.Strings.second", 1000) == "none"
    assert project.call("Demo.Strings.fourth", 0) == "other"
