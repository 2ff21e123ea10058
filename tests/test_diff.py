"""diff_builds on real F# builds: body changes are found, everything a body-only delta cannot carry is refused."""

from __future__ import annotations

import pytest
from fsharp_testkit import BuildFarm, FsBuild

from hotreload.baseline import Baseline
from hotreload.delta import DeltaBuilder, UnsupportedEdit, load_build
from hotreload.diff import Build, Refusal, diff_builds
from hotreload.metadata.schema import T
from hotreload.names import display_name
from hotreload.refusal import RefusalKind

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def builds(build_farm: BuildFarm) -> dict[str, FsBuild]:
    return build_farm.get(["gen0", "noop", "constant", "closure", "all", "refused", "gen1", "gen2"])


def _load(build: FsBuild) -> Build:
    return load_build(str(build.dll))[0]


def _changed(old: FsBuild, new: FsBuild) -> list[str]:
    diff = diff_builds(_load(old), _load(new))
    assert diff.refusals == []
    return sorted(c.name for c in diff.changed)


def test_noop_rebuild_has_no_changes(builds: dict[str, FsBuild]) -> None:
    old, new = builds["gen0"], builds["noop"]
    assert old.dll.parent != new.dll.parent  # a real second compilation, in another folder
    diff = diff_builds(_load(old), _load(new))
    assert diff.changed == [] and diff.refusals == []


def test_identical_build_compared_with_itself(builds: dict[str, FsBuild]) -> None:
    build = _load(builds["gen0"])
    assert diff_builds(build, build).changed == []


def test_constant_change_is_one_body_change(builds: dict[str, FsBuild]) -> None:
    diff = diff_builds(_load(builds["gen0"]), _load(builds["constant"]))
    assert [c.name for c in diff.changed] == ["Hot.Lib.constant"]
    assert diff.refusals == []
    change = diff.changed[0]
    assert change.key.startswith("M:Hot.Lib::constant|")
    assert change.old_rid == change.new_rid


def test_lambda_edit_changes_only_the_closure(builds: dict[str, FsBuild]) -> None:
    doubled = 8  # line of `let doubled` in the HotLib template
    assert _changed(builds["gen0"], builds["closure"]) == [f"Hot.Lib/Pipe #1 stage #1 at line {doubled}@{doubled}.Invoke"]


def test_all_edits_at_once(builds: dict[str, FsBuild]) -> None:
    changed = _changed(builds["gen0"], builds["all"])
    assert [n for n in changed if not n.endswith(".Invoke")] == [
        "Hot.Lib.combine", "Hot.Lib.constant", "Hot.Lib.greeting", "Hot.Lib.parse", "Hot.Lib.scaled"]
    assert len(changed) == 6


def test_generation_steps_change_counter_and_label(builds: dict[str, FsBuild]) -> None:
    assert _changed(builds["gen0"], builds["gen1"]) == ["Hot.Lib.counter", "Hot.Lib.label"]
    assert _changed(builds["gen1"], builds["gen2"]) == ["Hot.Lib.counter", "Hot.Lib.label"]
    assert _changed(builds["gen2"], builds["gen0"]) == ["Hot.Lib.counter", "Hot.Lib.label"]


def _refusals(old: FsBuild, new: FsBuild) -> list[Refusal]:
    return diff_builds(_load(old), _load(new)).refusals


def test_added_function_is_an_addition_not_a_refusal(builds: dict[str, FsBuild]) -> None:
    diff = diff_builds(_load(builds["gen0"]), _load(builds["refused"]))
    assert diff.new is not None
    added = [diff.new.names.key(T.MethodDef, rid) for rid in diff.added_methods]
    assert [display_name(k) for k in added] == ["Hot.Lib.extra"]
    assert "+Hot.Lib.extra" in diff.summary()
    assert not [r for r in diff.refusals if "extra" in r.member]


def test_base_type_change_is_refused_by_name(builds: dict[str, FsBuild]) -> None:
    refusals = _refusals(builds["gen0"], builds["refused"])
    shown = [str(r) for r in refusals if r.kind == RefusalKind.BASE_TYPE]
    assert len(shown) == 1 and shown[0].startswith("base type change in Hot.Lib.Named"), shown


def test_removed_function_is_a_deletion(builds: dict[str, FsBuild]) -> None:
    diff = diff_builds(_load(builds["refused"]), _load(builds["gen0"]))
    assert [display_name(k) for k in diff.deleted] == ["Hot.Lib.extra"]
    assert "-Hot.Lib.extra" in diff.summary()


def test_unchanged_bodies_with_shifted_tokens_are_not_changes(builds: dict[str, FsBuild]) -> None:
    """`extra` is inserted before `main` and the closure class: later MethodDef rows move, bodies naming them
    get different token bytes, yet they are the same code."""
    old, new = _load(builds["gen0"]), _load(builds["refused"])
    key = next(k for k in old.methods if k.startswith("M:Hot.Lib::doubled|"))
    old_body, new_body = old.body(old.methods[key]), new.body(new.methods[key])
    assert old_body is not None and new_body is not None
    assert old_body.code != new_body.code, "precondition: the raw IL differs (shifted tokens)"
    assert old.normalized(old.methods[key]) == new.normalized(new.methods[key])
    changed = [c.name for c in diff_builds(old, new).changed]
    assert "Hot.Lib.doubled" not in changed
    assert changed == ["Hot.Lib/Named..ctor", "Hot.Lib.main"]  # the new base's constructor; main now calls extra


def test_body_calling_an_added_function_cannot_become_a_delta(builds: dict[str, FsBuild]) -> None:
    old_build, old_pdb = load_build(str(builds["gen0"].dll))
    new_build, new_pdb = load_build(str(builds["refused"].dll))
    diff = diff_builds(old_build, new_build)
    main = [c for c in diff.changed if c.name == "Hot.Lib.main"]
    with pytest.raises(UnsupportedEdit) as info:
        DeltaBuilder(Baseline(old_build, old_pdb), new_build, new_pdb).build(main)
    assert info.value.refusal.member == "Hot.Lib.main"
    assert "extra" in str(info.value)


def test_method_keys_are_stable_across_builds(builds: dict[str, FsBuild]) -> None:
    old, new = _load(builds["gen0"]), _load(builds["all"])
    assert set(old.methods) == set(new.methods)
    assert set(old.types) == set(new.types)
    assert old.asm.md.row_counts[T.MethodDef] == new.asm.md.row_counts[T.MethodDef]
