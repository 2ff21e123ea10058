"""Every process hotreload starts: its own process group, a deadline, a private temp folder, and an end.

hotreload leaves by `os._exit` (the hosted runtime cannot be unloaded) and restarts by `os.execv`: neither waits
for children, so a `dotnet msbuild` or `dotnet build` still running at that moment used to be left behind, with
nobody to wait for it, stop it or read its output. Here each child leads a process group of its own (its whole
tree can be signalled at once, and a terminal's Ctrl-C reaches hotreload alone, which then ends the tree itself),
is registered until it has been reaped, and `stop_all()` ends every tree before hotreload exits or execs. MSBuild
node reuse and build servers are off, so nothing is meant to outlive its command; whatever is left in its group
when the command ends is ended with it.

Each tree also gets a private TMPDIR, removed with it: the SDK leaves empty folders, response files and the
runtime's IPC sockets and pipes in the temp folder, more of them when a build is cut short.

Some deaths run no Python code (the app calling Environment.Exit, a native crash, SIGKILL): for those the keeper
(`hotreload.keeper`), a tiny process told of every tree, ends them once hotreload's end closes its pipe.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from .errors import HotReloadError

MARKER = "HOTRELOAD_OWNER"
"""Set in every child's environment: the pid of the hotreload that started it, unless it already has a value (a
nested child keeps its hotreload's; a test sets its own to find every process of one run). Parents change when a
process is orphaned; its environment does not."""

QUIET_ENV = {
    "DOTNET_CLI_TELEMETRY_OPTOUT": "1",
    "DOTNET_NOLOGO": "1",
    "DOTNET_SKIP_FIRST_TIME_EXPERIENCE": "1",
    "MSBUILDTERMINALLOGGER": "off",
    "MSBUILDDISABLENODEREUSE": "1",  # no MSBuild nodes waiting 15 minutes for the next build
    "DOTNET_CLI_USE_MSBUILD_SERVER": "0",  # no MSBuild server either
}
"""What every child of hotreload runs with: no banners, no telemetry, no process that outlives its command."""

QUERY_TIMEOUT = 120.0
"""Seconds for `dotnet --version` and `dotnet --list-runtimes` (the SDK's first run can take a while)."""
STOP_GRACE = 0.5
"""Seconds a stopped tree gets after SIGTERM before SIGKILL: MSBuild cancels in about 0.1 s; Ctrl-C must end all
within 2 s."""

_lock = threading.Lock()
_live: set[Child] = set()
_stopping = False
_own_groups = True
_keeper: subprocess.Popen[str] | None = None


def nest() -> None:
    """In a process that hotreload started (the compiler worker): children stay in its process group, which its
    hotreload ends as a whole, so they need neither groups of their own nor a keeper."""
    global _own_groups
    _own_groups = False


def _tell_keeper(line: str) -> None:
    """One line to the keeper, started on first use; under `_lock`. A keeper that is gone is not an error."""
    global _keeper
    if not _own_groups:
        return
    try:
        if _keeper is None:
            sweep_stale(tempfile.gettempdir())
            _keeper = subprocess.Popen([sys.executable, "-m", "hotreload.keeper"], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
                                       text=True, bufsize=1, start_new_session=True)
        assert _keeper.stdin is not None
        _keeper.stdin.write(line + "\n")
    except (OSError, ValueError):
        pass


def _dismiss_keeper() -> None:
    """Everything has been stopped: the keeper leaves without doing anything."""
    global _keeper
    with _lock:
        keeper, _keeper = _keeper, None
    if keeper is None:
        return
    try:
        assert keeper.stdin is not None
        keeper.stdin.write("bye\n")
        keeper.stdin.close()
        keeper.wait(2)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        keeper.kill()
        keeper.wait()


_STALE = re.compile(r"hotreload-(?:tmp-)?(\d+)(?:-[^/]*)?(?:\.runtimeconfig\.json)?")


def sweep_stale(folder: str) -> None:
    """Remove what a hotreload that is gone left in the temp folder: `hotreload-tmp-<pid>-*` folders and
    `hotreload-<pid>*.runtimeconfig.json` files whose pid runs no more (everything of ours killed at once, say by
    a test harness, the keeper included). Only our own user's entries, never through a symlink."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _STALE.fullmatch(name)
        if match is None or (name.startswith("hotreload-tmp-") == name.endswith(".json")):
            continue
        if _running(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
            if info.st_uid != os.getuid():
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path, ignore_errors=True)
            elif stat.S_ISREG(info.st_mode):
                os.unlink(path)
        except OSError:
            continue


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def keep_runtime_files(folder: str) -> None:
    """The runtime hosted in this process keeps IPC files in `folder`: the keeper removes them if this process
    dies without removing them itself."""
    with _lock:
        _tell_keeper(f"runtime {os.getpid()} {folder}")


class StepTimedOut(HotReloadError):
    """A command or request did not finish within its deadline; it was stopped with everything it started."""

    def __init__(self, step: str, seconds: float, variable: str | None, then: str, verb: str = "finish") -> None:
        limit = f" ({variable} sets this limit, in seconds)" if variable else ""
        super().__init__(f"{step} did not {verb} within {seconds:g} s; it was stopped with every process it "
                         f"started; {then}{limit}")
        self.step = step
        self.seconds = seconds


class Stopped(HotReloadError):
    """hotreload is stopping (or the owner was closed): the command was not started, or was ended early."""


def seconds_from_env(variable: str, default: float) -> float:
    """A deadline in seconds from `variable`, else `default`; a bad value is refused by name, not ignored."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise HotReloadError(f"{variable}={raw!r} is not a number of seconds greater than 0; fix or unset it")
    return value


def child_env(base: Mapping[str, str] | None = None, **changes: str | None) -> dict[str, str]:
    """`base` (default: this environment) with QUIET_ENV, the marker and `changes` (None removes a variable)."""
    env = dict(os.environ if base is None else base, **QUIET_ENV)
    env.setdefault(MARKER, str(os.getpid()))
    env.pop("DOTNET_MODIFIABLE_ASSEMBLIES", None)  # set in this process for the hosted runtime, not the SDK's
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class Child:
    """One started process tree: the leader of its own process group (unless `nest()`ed), with a private temp
    folder; the keeper knows of it until it has been reaped."""

    def __init__(self, cmd: list[str], step: str, *, cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None, stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
                 stderr: Any = subprocess.PIPE, text: bool = True) -> None:
        self.step = step
        self.tmp = tempfile.mkdtemp(prefix=f"hotreload-tmp-{os.getpid()}-")  # the pid: see sweep_stale
        environment = child_env(env, TMPDIR=self.tmp, TMP=self.tmp, TEMP=self.tmp)
        with _lock:
            if _stopping:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise Stopped(f"hotreload is stopping; {step} was not started")
            self.own_group = _own_groups
            try:
                self.proc: subprocess.Popen[Any] = subprocess.Popen(
                    cmd, cwd=cwd, env=environment, stdin=stdin, stdout=stdout, stderr=stderr, text=text,
                    bufsize=1 if text else -1, start_new_session=self.own_group)
            except BaseException:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
            _live.add(self)
            self.pid = self.proc.pid
            _tell_keeper(f"tree {self.pid} {self.tmp}")

    def signal_tree(self, sig: int) -> None:
        """Signal the whole group: the leader and every process it started (they stay in its group)."""
        try:
            if self.own_group:
                os.killpg(self.pid, sig)
            elif self.proc.returncode is None:
                self.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace: float = STOP_GRACE) -> None:
        stop_children([self], grace)

    def _reaped(self) -> None:
        """After the leader is reaped: end stragglers in its group, forget it, remove its temp folder."""
        self.signal_tree(signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)
        with _lock:
            _live.discard(self)
            _tell_keeper(f"done {self.pid}")


def stop_children(children: Iterable[Child], grace: float = STOP_GRACE) -> None:
    """SIGTERM every tree at once, give them `grace` seconds together, SIGKILL what is left, reap the leaders."""
    children = list(children)
    for child in children:
        if child.proc.poll() is None:
            child.signal_tree(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        child.signal_tree(signal.SIGKILL)
    for child in children:
        try:
            child.proc.wait(5)
        except subprocess.TimeoutExpired:  # SIGKILL cannot be refused; a process stuck in the kernel is not ours
            pass
        child._reaped()


class _Reader:
    """All of one pipe, read by a thread of its own: the command's end is its leader's exit, not the pipe's end
    (a process it left behind may hold the pipe open until it is ended)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._parts: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), name="hotreload-output", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        try:
            for chunk in iter(lambda: stream.read(65536), ""):
                self._parts.append(chunk)
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    def result(self) -> str:
        self._thread.join(2)  # the group is gone by now: the pipe ends at once
        return "".join(self._parts)


def _read_both(child: Child, err: bool = False) -> _Reader:
    return _Reader(child.proc.stderr if err else child.proc.stdout)


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


class Owner:
    """The trees one component started (a builder, a compiler): `close()` stops them and refuses new ones."""

    def __init__(self) -> None:
        self._children: set[Child] = set()
        self._lock = threading.Lock()
        self.closed = False

    def start(self, cmd: list[str], step: str, **kwargs: Any) -> Child:
        with self._lock:
            if self.closed:
                raise Stopped(f"hotreload is stopping; {step} was not started")
            child = Child(cmd, step, **kwargs)
            self._children.add(child)
        return child

    def release(self, child: Child) -> None:
        with self._lock:
            self._children.discard(child)

    def run(self, cmd: list[str], step: str, timeout: float, variable: str | None, then: str, *,
            cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Completed:
        """Run to the end and collect its output; past `timeout` seconds stop the tree and raise StepTimedOut
        (`then` says what happens next). Raises Stopped when the owner or hotreload stops meanwhile."""
        child = self.start(cmd, step, cwd=cwd, env=env)
        try:
            out, err = _read_both(child), _read_both(child, err=True)
            try:
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                stop_children([child])
                raise StepTimedOut(step, timeout, variable, then) from None
            stop_children([child])  # the leader is done: what it left in its group (a daemon, say) ends with it
        except BaseException:  # KeyboardInterrupt included: the tree must not outlive the interrupted caller
            stop_children([child])
            raise
        finally:
            self.release(child)
        if child.proc.returncode != 0 and (self.closed or _stopping):
            raise Stopped(f"hotreload is stopping; {step} was ended")
        return Completed(child.proc.returncode, out.result(), err.result())

    def take_all(self) -> list[Child]:
        """Refuse new children and hand over the running ones (to be stopped together with other owners')."""
        with self._lock:
            self.closed = True
            children, self._children = list(self._children), set()
        return children

    def close(self, grace: float = STOP_GRACE) -> None:
        stop_children(self.take_all(), grace)


def run(cmd: list[str], step: str, timeout: float, variable: str | None, then: str,
        **kwargs: Any) -> Completed:
    """`Owner.run` for a one-off command that belongs to no component (`dotnet --version` and the like)."""
    return Owner().run(cmd, step, timeout, variable, then, **kwargs)


def live() -> list[Child]:
    with _lock:
        return list(_live)


def stop_all(grace: float = STOP_GRACE) -> None:
    """Before hotreload exits or execs: no new child from now on, and every tree still running is ended."""
    global _stopping
    with _lock:
        _stopping = True
        children = list(_live)
    stop_children(children, grace)
    _dismiss_keeper()


def reading_thread(stream: IO[str], lines: Any) -> threading.Thread:
    """Put each line of `stream` on the queue `lines`, then None at its end: a reply can then be awaited with a
    deadline (a blocking readline cannot be)."""

    def pump() -> None:
        try:
            for line in stream:
                lines.put(line)
        except (OSError, ValueError):
            pass
        lines.put(None)

    thread = threading.Thread(target=pump, name="hotreload-reader", daemon=True)
    thread.start()
    return thread


atexit.register(stop_all)  # a Python program using hotreload.Session leaves nothing running when it exits
