"""A long session: 200 generations applied to one running app, with added functions and types along the way and
every save moving the code below it. At the end every function the sessions touched must show its last edit.

Slow (one real build per generation); marked `soak` and run in CI like the rest.
"""

from __future__ import annotations

import gc
from typing import Any

import psutil
import pytest

from hotreload.session import OutcomeKind

pytestmark = [pytest.mark.runtime, pytest.mark.soak, pytest.mark.timeout(2400)]

GENERATIONS = 200
LEAK_GUARD_MB = 100  # resident growth over the soak; the memory benchmark's target is < 50 MB over 100

FIXED = """let counter () = {counter}
let label () = "{label}"
let scaled (x: int) = [1; 2; 3] |> List.map (fun v -> v * x + {step}) |> List.sum
let describe (n: int) = match n % 3 with 0 -> "fizz-{step}" | 1 -> "one" | _ -> sprintf "n=%d/{step}" n
"""


def source(gen: int) -> str:
    """Generation `gen`: functions added every 3rd generation and a record type every 10th, inserted at the top
    so everything already running moves down by a line or more."""
    added: list[str] = []
    for i in range(gen, 0, -1):
        if i % 10 == 0:
            added.append(f"type Rec{i} = {{ V{i}: int }} with member r.Twice = r.V{i} * 2")
            added.append(f"let mk{i} () = {{ V{i} = {i} + {gen} }}.Twice")
        if i % 3 == 0:
            added.append(f"let f{i} () = {i} * 7 + {gen // 5}")
    step = gen // 4
    body = FIXED.format(counter=gen, label=f"gen-{gen}-ünï", step=step)
    return "module Demo.Soak\n\n" + "\n".join(added) + "\n" + body


def _rss_mb() -> float:
    from System import GC  # type: ignore[import-not-found]

    gc.collect()
    GC.Collect()
    GC.WaitForPendingFinalizers()
    return float(psutil.Process().memory_info().rss) / 2**20


def test_two_hundred_generations(fsharp_project: Any) -> None:
    p = fsharp_project({"Soak.fs": source(0)}, name="Soak")
    applied = 0
    rss_after_1 = 0.0
    for gen in range(1, GENERATIONS + 1):
        outcome = p.save("Soak.fs", source(gen))
        assert outcome.kind == OutcomeKind.APPLIED, (gen, outcome.kind, [str(r) for r in outcome.refusals], outcome.message,
                                           p.reporter.lines[-4:])
        applied += 1
        assert p.call("Demo.Soak.counter") == gen  # each generation runs at once
        if gen == 1:
            rss_after_1 = _rss_mb()
    rss_after_n = _rss_mb()
    print(f"\nsoak: resident size {rss_after_1:.1f} MB after generation 1, {rss_after_n:.1f} MB after {GENERATIONS} "
          f"(+{rss_after_n - rss_after_1:.1f} MB)")
    assert rss_after_n - rss_after_1 < LEAK_GUARD_MB
    assert p.session.generation == applied == GENERATIONS
    last = GENERATIONS
    step = last // 4
    assert p.call("Demo.Soak.label") == f"gen-{last}-ünï"
    assert p.call("Demo.Soak.scaled", 2) == (1 + 2 + 3) * 2 + 3 * step
    assert p.call("Demo.Soak.describe", 3) == f"fizz-{step}"
    assert p.call("Demo.Soak.describe", 5) == f"n=5/{step}"
    for i in range(3, last + 1, 3):
        assert p.call(f"Demo.Soak.f{i}") == i * 7 + last // 5, i
    for i in range(10, last + 1, 10):
        assert p.call(f"Demo.Soak.mk{i}") == (i + last) * 2, i
    assert p.session.updater is not None and not p.session.updater.failed
