"""Shared fixtures: one CoreCLR per test process, F# builds shared by the whole session, SRM as an oracle."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
for entry in (str(ROOT), str(TESTS)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from fsharp_testkit import BuildFarm, Srm

from hotreload.runtime import RuntimeInfo, start_runtime

HAVE_DOTNET = shutil.which("dotnet") is not None

# Deterministic examples, no example database in the repo, no deadlines (builds run in the background).
settings.register_profile("hotreload", derandomize=True, database=None, deadline=None)
settings.load_profile("hotreload")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "runtime: builds F# code and/or hosts CoreCLR in this process (slow)")
    config.addinivalue_line("markers", "e2e: runs the whole tool end to end (slow)")
    config.addinivalue_line("markers", "soak: a long session of many generations (slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_DOTNET:
        return
    skip = pytest.mark.skip(reason="the .NET SDK (`dotnet`) is not on PATH")
    for item in items:
        if "runtime" in item.keywords or "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def dotnet_runtime() -> RuntimeInfo:
    """CoreCLR hosted in this process with DOTNET_MODIFIABLE_ASSEMBLIES=debug (once per process)."""
    info = start_runtime()
    assert info.supported, f"MetadataUpdater.IsSupported is false on .NET {info.version}"
    return info


@pytest.fixture(scope="session")
def srm(dotnet_runtime: RuntimeInfo) -> Srm:
    return Srm()


@pytest.fixture(scope="session")
def build_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildFarm]:
    """Variants of the HotLib F# project, each built at most once per session (see fsharp_testkit).

    HOTRELOAD_TEST_BUILDS=/some/dir keeps the builds there and reuses them while their source is unchanged.
    """
    kept = os.environ.get("HOTRELOAD_TEST_BUILDS")
    farm = BuildFarm(Path(kept) if kept else tmp_path_factory.mktemp("fsharp"))
    farm.prefetch()  # all variants, in the background: the builds dominate the suite's time
    yield farm
    farm.close()


@pytest.fixture
def fsharp_project(tmp_path: Path, dotnet_runtime: RuntimeInfo) -> Iterator[Any]:
    """Factory: `fsharp_project({"Lib.fs": source})` builds and loads a live F# project (see live_project)."""
    from live_project import LiveProject

    made: list[LiveProject] = []

    def make(files: dict[str, str], name: str = "Live", output: str = "Library") -> LiveProject:
        project = LiveProject(tmp_path / f"p{len(made)}", files, name=name, output=output)
        made.append(project)
        return project

    yield make
    for project in made:
        project.close()
