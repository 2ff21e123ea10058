"""End to end: edits under load. `hotreload watch --json` serves a copy of tests/web_app while a load client keeps
requesting `/` and `/items` and 20 edits land one after another (benchmarks/web_load.py, run smaller): no request
fails, every save is applied, every new body is served, and by the same process (`/count` keeps counting)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
EDITS = 20


def _web_load() -> ModuleType:
    """benchmarks/web_load.py as a module (benchmarks/ is not a package)."""
    name = "hotreload_benchmarks_web_load"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "web_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(420)
def test_edits_under_load_fail_no_request_and_keep_the_app_state() -> None:
    # bounded: at most 100 requests/s, 60,000 requests and 240 s of load (about a minute on 2 cores)
    doc = _web_load().run(edits=EDITS, threads=2, rate=100, max_requests=60_000, max_seconds=240, log=print)
    records = doc["records"]
    assert len(records) == EDITS, doc["problems"]
    assert doc["requests_during_edits"] > EDITS * 10, "the load client was not running during the edits"
    assert doc["failed_requests"] == 0, doc["failures"]
    # every save ended in `applied`
    assert [r["outcome"] for r in records] == ["applied"] * EDITS, doc["problems"]
    assert [r["generation"] for r in records] == list(range(1, EDITS + 1))
    # every edit's new body reached the load client: new `/` strings and new `/items` JSON, in turn
    assert [r["kind"] for r in records] == ["hello", "items"] * (EDITS // 2)
    assert all(r["served_s"] is not None for r in records), doc["problems"]
    # served by the same process: the in-memory counter of /count kept counting across all the edits
    counts = doc["counts"]
    assert None not in counts
    assert all(after > before for before, after in itertools.pairwise(counts)), counts
    assert doc["problems"] == [] and doc["ok"]
