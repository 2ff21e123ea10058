"""ruff and mypy over everything in the repository that is Python: the package, the tests and the benchmarks.

The benchmarks run only after the tests in CI; a signature changed under them (a missing argument) once failed CI
after 45 minutes. Checked here, it fails in seconds, with the file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED = ["hotreload", "tests", "benchmarks"]


@pytest.mark.parametrize("tool", [["ruff", "check"], ["mypy"]], ids=["ruff", "mypy"])
def test_the_code_is_clean(tool: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *tool, *CHECKED], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
