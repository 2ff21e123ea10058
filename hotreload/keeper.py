"""The keeper: a tiny process that ends hotreload's children when hotreload itself dies without a chance to.

hotreload stops its children itself on every way out it sees (Ctrl-C, SIGTERM, a restart, an exception). Some
ways out run no Python code at all: the app calling Environment.Exit (`exit 3` in F#) ends the process from inside
the runtime, a native crash, SIGKILL. The keeper runs beside hotreload, in a session of its own, told over a pipe
which process groups are running and which temp folders they use. When that pipe ends without a goodbye (its
only writer, hotreload, is gone), it ends those groups (SIGTERM, then SIGKILL) and removes their temp folders and
the runtime files hotreload's runtime left. It imports nothing of hotreload, so it starts in milliseconds.

Protocol, one line each: `tree <pgid> <temp folder>`, `done <pgid>`, `runtime <pid> <folder>`, `bye`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import sys
import time

GRACE = 0.5


def _signal(groups: dict[int, str], sig: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def clean_up(groups: dict[int, str], runtimes: list[tuple[int, str]]) -> None:
    """End every group still running, then remove their temp folders and the runtimes' IPC files."""
    _signal(groups, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline and any(_alive(pgid) for pgid in groups):
        time.sleep(0.02)
    _signal(groups, signal.SIGKILL)
    for folder in groups.values():
        shutil.rmtree(folder, ignore_errors=True)
    for pid, folder in runtimes:
        for pattern in (f"clr-debug-pipe-{pid}-*", f"dotnet-diagnostic-{pid}-*"):
            for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGHUP):  # only the end of the pipe ends the keeper
        signal.signal(sig, signal.SIG_IGN)
    groups: dict[int, str] = {}
    runtimes: list[tuple[int, str]] = []
    for line in sys.stdin:
        word, _, rest = line.rstrip("\n").partition(" ")
        if word == "bye":
            return 0
        if word == "tree":
            pgid, _, folder = rest.partition(" ")
            groups[int(pgid)] = folder
        elif word == "done":
            groups.pop(int(rest), None)
        elif word == "runtime":
            pid, _, folder = rest.partition(" ")
            runtimes.append((int(pid), folder))
    clean_up(groups, runtimes)  # the pipe ended without a goodbye: hotreload died
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
