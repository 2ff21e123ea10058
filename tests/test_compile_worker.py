"""The warm compiler worker: fsc's `--times` phase table read into (phase, seconds), and its choice between the compile
with kept imports and the public one (spot checks, a failure, a difference: the public compile, said)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hotreload.compile_worker import FscService, parse_times

TABLE = """--------------------------------------------------------------------------------------------------------
|Phase name                          |Elapsed |Duration| WS(MB)|  GC0  |  GC1  |  GC2  |Handles|Threads|
|--------------------------------------------------------------------------------------------------------
|Import mscorlib+FSharp.Core         |  0.8961|  0.7659|    157|      8|      5|      3|     76|     16|
|Typecheck                           |  2.3085|  1.1347|    201|      1|      0|      0|     86|     16|
|>Write Metadata Header              |  2.4749|  0.0000|    224|      0|      0|      0|     89|     16|
|Write .NET Binary                   |  2.5491|  0.1241|    232|      0|      0|      0|     92|     16|
--------------------------------------------------------------------------------------------------------
|        Cache name        | hit-ratio | adds | updates | hits | misses | evictions | eviction-fails |
| typeSubsumptionCache     |   63.36 % |   85 |       0 |  147 |     85 |         0 |              0 |
"""


def test_top_level_phases_with_their_durations() -> None:
    assert parse_times(TABLE) == [("Import mscorlib+FSharp.Core", 0.7659), ("Typecheck", 1.1347),
                                  ("Write .NET Binary", 0.1241)]


def _service(out: Path, driver_reply: dict[str, Any]) -> FscService:
    """A worker's service with a stand-in for the kept-imports compile and the public one (which writes b"full")."""
    service = FscService.__new__(FscService)  # no runtime: only the choice between the two compiles is tested
    service.note = None
    service._incremental_compiles = {}
    checks = SimpleNamespace(refused_everywhere=False)

    def kept(args: list[str], state_as: str | None = None) -> dict[str, Any]:
        out.write_bytes(b"incremental")
        return dict(driver_reply)

    def public(args: list[str]) -> dict[str, Any]:
        out.write_bytes(b"full")
        return {"ok": True, "errors": [], "failure": None, "seconds": 0.1, "phases": []}

    service.driver = SimpleNamespace(compile=kept, checks=checks)  # type: ignore[assignment]
    service.public_compile = public  # type: ignore[method-assign]
    return service


def test_a_spot_check_that_differs_uses_the_full_compile_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "App.dll"
    service = _service(out, {"ok": True, "errors": [], "failure": None, "seconds": 0.2, "phases": [],
                             "typecheck": {"checked": 1, "files": 3}})
    reply = service.compile([f"-o:{out}"])
    assert reply["spot_checked"] and "differed from a full compile" in reply["note"]
    assert service.driver is not None and service.driver.checks.refused_everywhere
    assert out.read_bytes() == b"full"  # the full compile's output is the one the save uses


def test_spot_checks_are_a_projects_first_incremental_compile_then_every_20th(tmp_path: Path) -> None:
    out = tmp_path / "App.dll"
    service = _service(out, {})
    incremental = {"ok": True, "typecheck": {"checked": 1, "files": 3}}
    full = {"ok": True, "typecheck": {"checked": 3, "files": 3}}
    assert not service._spot_check(str(out), full)
    assert [service._spot_check(str(out), incremental) for _ in range(22)] == \
        [True] + [False] * 19 + [True, False]


def _warm_up_service(out: Path, incremental_bytes: bytes) -> FscService:
    """Stand-ins: the public compile writes b"full", the kept compile b"full" when it checks every file and
    `incremental_bytes` when asked to check the later half again (as the warm-up does)."""
    service = _service(out, {})
    checks = service.driver.checks  # type: ignore[union-attr]
    checks.recheck_second_half = False

    def kept(args: list[str], state_as: str | None = None) -> dict[str, Any]:
        again, checks.recheck_second_half = checks.recheck_second_half, False
        out.write_bytes(incremental_bytes if again else b"full")
        return {"ok": True, "errors": [], "failure": None, "seconds": 0.1, "phases": [],
                "typecheck": {"checked": 2 if again else 4, "files": 4}}

    service.driver.compile = kept  # type: ignore[union-attr, method-assign]
    return service


def test_a_warm_up_whose_incremental_check_matches_spares_the_first_saves_spot_check(tmp_path: Path) -> None:
    out, real = tmp_path / "warm-up" / "App.dll", tmp_path / "App.dll"
    out.parent.mkdir()
    service = _warm_up_service(out, b"full")
    reply = service.warm_up([f"-o:{out}"], str(real))
    assert reply["ok"] and reply["note"] is None and reply["warm_up_typecheck"] == {"checked": 2, "files": 4}
    incremental = {"ok": True, "typecheck": {"checked": 1, "files": 4}}
    assert [service._spot_check(str(real), incremental) for _ in range(20)] == [False] * 19 + [True]


def test_a_warm_up_whose_incremental_check_differs_turns_it_off_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "App.dll"
    service = _warm_up_service(out, b"something else")
    reply = service.warm_up([f"-o:{out}"], str(out))
    assert "differed from a full compile" in reply["note"]
    assert service.driver is not None and service.driver.checks.refused_everywhere


def test_a_failing_kept_imports_compile_gives_way_to_the_public_one_for_good(tmp_path: Path) -> None:
    out = tmp_path / "App.dll"
    service = _service(out, {"ok": False, "errors": [], "failure": "InvalidCastException: ...", "seconds": 0.1,
                             "phases": []})
    reply = service.compile([f"-o:{out}"])
    assert reply["ok"] and reply["driver"] == "public" and "failed (InvalidCastException" in reply["note"]
    assert service.driver is None and out.read_bytes() == b"full"
