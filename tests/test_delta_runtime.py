"""Deltas applied to a real CoreCLR: build F#, load generation 0, edit, rebuild, diff, apply, call the new code.

Nothing is mocked. Every test loads its own copy of generation 0 into its own AssemblyLoadContext, so a failed
update cannot leak into another test; the runtime itself is shared (one per process).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fsharp_testkit import (
    ASSEMBLY,
    MODULE,
    BuildFarm,
    FsBuild,
    generation_label,
)

from hotreload.app import HostedApp
from hotreload.baseline import Baseline
from hotreload.delta import Delta, DeltaBuilder, load_build
from hotreload.diff import Build, diff_builds
from hotreload.metadata.reader import Assembly
from hotreload.runtime import RuntimeInfo, UpdateApplier

pytestmark = pytest.mark.runtime

VARIANTS = ["gen0", "gen0_pad", "constant", "greeting", "bcl", "bcl_pad", "local", "try", "closure", "all",
            *(f"gen{i}" for i in range(1, 21))]


@pytest.fixture(scope="module")
def builds(build_farm: BuildFarm) -> dict[str, FsBuild]:
    return build_farm.get(VARIANTS)


@pytest.fixture(scope="module")
def applier(dotnet_runtime: RuntimeInfo) -> UpdateApplier:
    return UpdateApplier()


def i32(value: int) -> Any:
    from System import Int32  # type: ignore[import-not-found]

    return Int32(value)


class LiveApp:
    """Generation 0 of HotLib running in this process, plus what is needed to push the next edit into it."""

    def __init__(self, gen0: FsBuild, folder: Path, applier: UpdateApplier) -> None:
        shutil.copytree(gen0.dll.parent, folder)  # its own files: the runtime caches images by path
        self.app = HostedApp(str(folder / f"{ASSEMBLY}.dll"), name=f"test-{folder.name}")
        build, pdb = load_build(str(gen0.dll))
        self.base = Baseline(build, pdb)
        self.current: Build = build
        self.applier = applier

    def call(self, function: str, *args: Any) -> Any:
        return self.app.call(f"{MODULE}.{function}", *args)

    def update(self, new: FsBuild, expect: set[str] | None = None) -> Delta:
        """Diff against the running code, build the delta, apply it, and advance the baseline."""
        new_build, new_pdb = load_build(str(new.dll))
        diff = diff_builds(self.current, new_build)
        assert diff.refusals == [], [str(r) for r in diff.refusals]
        assert diff.changed, f"{new.name}: no change found"
        if expect is not None:
            assert {c.name for c in diff.changed} == expect
        delta = DeltaBuilder(self.base, new_build, new_pdb).build(diff.changed)
        self.applier.apply(self.app.assembly, delta.metadata, delta.il, delta.pdb)
        self.base = self.base.advanced(delta)
        self.current = new_build
        for key, tok in delta.method_tokens.items():  # reflection sees exactly the IL we sent
            assert self.app.method_il(tok) == delta.method_il[key], key
        return delta


@pytest.fixture
def live(builds: dict[str, FsBuild], applier: UpdateApplier, tmp_path: Path) -> Callable[[str], LiveApp]:
    def start(gen0: str = "gen0") -> LiveApp:
        return LiveApp(builds[gen0], tmp_path / gen0, applier)

    return start


def test_runtime_can_apply_updates(dotnet_runtime: RuntimeInfo) -> None:
    assert dotnet_runtime.supported
    assert "Baseline" in dotnet_runtime.capabilities
    assert dotnet_runtime.version.startswith("10.")


def test_constant_change(live: Callable[[str], LiveApp], builds: dict[str, FsBuild]) -> None:
    app = live("gen0")
    assert app.call("constant") == 42
    delta = app.update(builds["constant"], {"Hot.Lib.constant"})
    assert app.call("constant") == 43
    assert delta.generation == 1
    assert app.call("greeting", "bob") == "Hello bob"  # untouched code still runs


def test_string_literal_change(live: Callable[[str], LiveApp], builds: dict[str, FsBuild]) -> None:
    app = live("gen0")
    assert app.call("greeting", "bob") == "Hello bob"
    delta = app.update(builds["greeting"], {"Hot.Lib.greeting"})
    assert app.call("greeting", "bob") == "Bonjour bob!"
    assert set(delta.new_user_strings) == {"Bonjour ", "!"}


def _strings_padding(build: FsBuild) -> int:
    md = Assembly.from_file(str(build.dll)).md
    return md.streams["#Strings"][1] - md.heap_size("#Strings")


def test_one_baseline_has_a_padded_strings_heap(builds: dict[str, FsBuild]) -> None:
    """The two baselines differ by one identifier character: at least one has #Strings alignment padding,
    which is where a delta's new strings must NOT start."""
    assert _strings_padding(builds["gen0"]) or _strings_padding(builds["gen0_pad"])


@pytest.mark.parametrize(("gen0", "edited"), [("gen0", "bcl"), ("gen0_pad", "bcl_pad")])
def test_new_bcl_calls(live: Callable[[str], LiveApp], builds: dict[str, FsBuild], gen0: str, edited: str) -> None:
    """Math.Max, DateTime and String.Join were never referenced: new TypeRef/MemberRef rows, a new local."""
    app = live(gen0)
    assert app.call("combine", i32(3), i32(4)) == 7
    delta = app.update(builds[edited], {"Hot.Lib.combine"})
    assert app.call("combine", i32(3), i32(4)) == 4 * 100 + 3 + len("ab,c")
    assert app.call("combine", i32(9), i32(-2)) == 9 * 100 + 3 + len("ab,c")
    assert any("System.Math::Max" in key for key in delta.new_refs)


def test_new_local_variables(live: Callable[[str], LiveApp], builds: dict[str, FsBuild]) -> None:
    app = live("gen0")
    assert app.call("scaled", i32(5)) == 6
    app.update(builds["local"], {"Hot.Lib.scaled"})
    assert app.call("scaled", i32(5)) == 57
    assert app.call("scaled", i32(-1)) == -3


def test_try_with_added(live: Callable[[str], LiveApp], builds: dict[str, FsBuild]) -> None:
    app = live("gen0")
    assert app.call("parse", "12") == 12
    with pytest.raises(RuntimeError, match="FormatException"):
        app.call("parse", "zz")
    app.update(builds["try"], {"Hot.Lib.parse"})
    assert app.call("parse", "zz") == -1
    assert app.call("parse", "12") == 12


def test_lambda_body_edit(live: Callable[[str], LiveApp], builds: dict[str, FsBuild]) -> None:
    app = live("gen0")
    assert app.call("doubled") == 12
    delta = app.update(builds["closure"])
    assert [m.name.rsplit(".", 1)[-1] for m in delta.methods] == ["Invoke"]
    assert app.call("doubled") == 18


def test_all_edits_in_one_delta(live: Callable[[str], LiveApp], builds: dict[str, FsBuild]) -> None:
    app = live("gen0")
    app.update(builds["all"])
    assert app.call("constant") == 43
    assert app.call("greeting", "ann") == "Bonjour ann!"
    assert app.call("combine", i32(1), i32(2)) == 207
    assert app.call("scaled", i32(2)) == 27
    assert app.call("parse", "x") == -1
    assert app.call("doubled") == 18
    assert app.call("counter") == 0


def test_twenty_generations_on_one_app(live: Callable[[str], LiveApp], builds: dict[str, FsBuild]) -> None:
    """Generations 1..20 in a row: new BCL members in the first eight, reused afterwards; #US entries from the
    baseline and from earlier deltas reused; every generation's value checked right after its update."""
    app = live("gen0")
    assert (app.call("counter"), app.call("label")) == (0, "gen-0")
    seen: list[tuple[int, str]] = []
    for i in range(1, 21):
        delta = app.update(builds[f"gen{i}"], {"Hot.Lib.counter", "Hot.Lib.label"})
        assert delta.generation == i
        seen.append((app.call("counter"), app.call("label")))
        assert seen[-1] == (i, generation_label(i)), f"generation {i}"
    assert app.call("constant") == 42
    assert app.base.generation == 20
