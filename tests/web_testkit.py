"""The web fixture app (tests/web_app) run the way a user runs it: copied, on a free port, under `hotreload watch`
or `dotnet run`, its status events and log lines read as they come, and HTTP on 127.0.0.1 with bounded waits."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

import psutil

TESTS = Path(__file__).resolve().parent
WEB_APP = TESTS / "web_app"
GRACEFUL_STOP_S = 10.0
"""How long a stopped process may take to end after Ctrl-C before it is killed (hotreload takes under 2 s)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_web_app(dest: Path, port: int | None = None) -> Path:
    """A copy of the fixture whose launch profiles listen on free ports ("http" on `port`); returns its .fsproj."""
    shutil.copytree(WEB_APP, dest, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    settings = dest / "Properties" / "launchSettings.json"
    data = json.loads(settings.read_text())
    for name, profile in data["profiles"].items():
        chosen = port if name == "http" and port else free_port()
        profile["applicationUrl"] = f"http://127.0.0.1:{chosen}"
    settings.write_text(json.dumps(data, indent=2))
    return dest / "WebApp.fsproj"


def profile_url(project: Path, name: str = "http") -> str:
    data = json.loads((project.parent / "Properties" / "launchSettings.json").read_text())
    return str(data["profiles"][name]["applicationUrl"])


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
    path.write_text(text.replace(old, new))


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, ""


def wait_for_body(url: str, expected: str, timeout: float = 60.0) -> float:
    """Poll until `url` answers 200 with `expected` in its body; the seconds it took."""
    start = time.monotonic()
    last: tuple[int, str] = (0, "")
    while time.monotonic() - start < timeout:
        last = get(url, timeout=2.0)
        if last[0] == 200 and expected in last[1]:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {expected!r} within {timeout:.0f} s; last answer: {last}")


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now (as Kestrel binds: SO_REUSEADDR, so connections of a stopped
    server left in TIME-WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Output:
    """A process's output, read on a thread: JSON status events as dicts, the rest as text; waits are bounded."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.items: queue.Queue[dict[str, Any] | str] = queue.Queue()
        self.seen: list[dict[str, Any] | str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            try:
                item: dict[str, Any] | str = json.loads(line) if line.startswith("{") else line
            except ValueError:
                item = line
            self.items.put(item)

    def wait_for(self, match: Callable[[dict[str, Any] | str], bool], what: str,
                 timeout: float = 120) -> dict[str, Any] | str:
        """The next item `match` accepts; every item read is kept in `seen`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.items.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.items.empty():
                    break
                continue
            self.seen.append(item)
            if match(item):
                return item
        raise AssertionError(f"no {what} within {timeout:.0f} s (exit code {self.proc.poll()}); seen:\n"
                             + "\n".join(map(str, self.seen[-40:])))

    @overload
    def wait(self, event: str, text: None = None, timeout: float = 120) -> dict[str, Any]: ...

    @overload
    def wait(self, event: None = None, *, text: str, timeout: float = 120) -> str: ...

    def wait(self, event: str | None = None, text: str | None = None, timeout: float = 120) -> dict[str, Any] | str:
        """The next event named `event` (or output line containing `text`)."""
        return self.wait_for(lambda item: (event is not None and isinstance(item, dict) and item.get("event") == event)
                             or (text is not None and isinstance(item, str) and text in item),
                             repr(event or text), timeout)

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.items.get_nowait())
            except queue.Empty:
                return

    def lines(self) -> list[str]:
        self.drain()
        return [i for i in self.seen if isinstance(i, str)]

    def events(self, name: str) -> list[dict[str, Any]]:
        self.drain()
        return [i for i in self.seen if isinstance(i, dict) and i.get("event") == name]


class Running(Output):
    """A process started in a session of its own, its output collected (see Output)."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                          env={**os.environ, **(env or {})}))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """End the process and everything it started (its session), whatever state it is in: Ctrl-C first, as a
        developer stops it (hotreload then removes what it made: a SIGKILL would leave the hosted runtime's IPC
        files in /tmp), then SIGKILL for anything still there."""
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
                self.proc.wait(GRACEFUL_STOP_S)
            except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def hotreload_watch(project: Path, *args: str, env: dict[str, str] | None = None) -> Running:
    return Running([sys.executable, "-m", "hotreload", "watch", str(project), "--json", *args], project.parent, env)


def dotnet_run(project: Path, *args: str, env: dict[str, str] | None = None) -> Running:
    return Running(["dotnet", "run", "--project", str(project), *args], project.parent, env)


def app_log(lines: list[str]) -> list[str]:
    """The app's logger lines, `info: Category[id]` headers joined with their message line."""
    out: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith(("info:", "warn:", "fail:", "crit:", "dbug:", "trce:")) and i + 1 < len(lines):
            out.append(f"{line.split(':')[0]}: {lines[i + 1].strip()}")
    return out
