"""pytest plugin (entry point `hotreload`): the `hotreload_session` fixture for end-to-end smoke tests.

    def test_greeting(hotreload_session):
        s = hotreload_session("sample_app/SampleApp.fsproj")
        s.edit("Greeting.fs", '"Hello, %s"', '"Hi, %s"')
        assert s.call("SampleApp.Greeting.greeting", "F#") == "Hi, F#"

By default the project folder is copied to the test's tmp_path first, so edits never touch your sources. One .NET
runtime serves the whole test process (it cannot be unloaded); each session loads its app in its own
AssemblyLoadContext and is stopped when the test ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .session import Session

_NOT_COPIED = shutil.ignore_patterns("bin", "obj", ".hotreload", ".git", ".vs")


@pytest.fixture
def hotreload_session(tmp_path: Path) -> Iterator[Callable[..., Session]]:
    """Factory: `hotreload_session(project, copy=True, watch=False, run_entry_point=False, app_args=None)` returns a
    started `hotreload.Session`; `copy=False` works on the project in place."""
    from .build import find_project
    from .session import Session
    from .solution import sources_root

    started: list[Session] = []

    def start(project: str | Path, copy: bool = True, watch: bool = False, run_entry_point: bool = False,
              app_args: list[str] | None = None) -> Session:
        path = find_project(project)  # a solution names its app
        if copy:  # the app's folder, or the one that holds it and every project it references
            given = Path(project).resolve()
            root = sources_root(path)
            if given.suffix in (".sln", ".slnx") or (given.is_dir() and not list(given.glob("*.fsproj"))):
                root = Path(os.path.commonpath([root, given if given.is_dir() else given.parent]))
            folder = tmp_path / f"{root.name}-{len(started)}"
            shutil.copytree(root, folder, ignore=_NOT_COPIED)
            path = folder / path.relative_to(root)
        session = Session(path, app_args=app_args, watch=watch, run_entry_point=run_entry_point)
        started.append(session)
        return session.start()

    yield start
    for session in started:
        session.stop()
