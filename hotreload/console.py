"""The interactive side of `hotreload watch`: keys, the restart question, and restarts.

The CLR cannot be unloaded, so a restart is a fresh process: this one stops its watcher and compiler and replaces
itself (exec) with `hotreload` and the same arguments; the new process builds the current sources and starts the app
from scratch. The app's state is lost, and the announcement says so.

Restart policy (`--restart`): `ask` (the default on a terminal) asks after a rude edit or a failed update;
`auto` (the default when stdin is not a terminal, like `dotnet watch --non-interactive`) restarts; `never` only
reports. An app that exited or crashed is started again (a restart) on the next good save.

Stopping: Ctrl-C, SIGTERM, SIGQUIT and SIGHUP (the terminal closed) all stop the same way, within 2 s: an app on
the generic host (ASP.NET Core) first shuts down gracefully, then the session stops, then every process hotreload
started is ended with its whole tree (`processes.stop_all`). A restart does the same before it execs, so nothing of
the old process outlives it and the app's port is free before the new process binds it.

The app's host and hotreload share one process and its signals. Once the runtime is up, .NET owns the signal
handlers, and the host's console lifetime cancels SIGINT/SIGTERM/SIGQUIT to shut down gracefully, so Python would
never hear them: `RuntimeSignals` registers hotreload with .NET's own PosixSignalRegistration, beside the host.
To stop such an app (a restart, or `q`), hotreload sends the process SIGTERM, as `dotnet watch` and process
managers stop theirs, and waits for the entry point to return.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from . import processes
from .app import AppExit
from .build import REUSE_VARIABLE
from .report import Reporter
from .session import Outcome, OutcomeKind, Session

POLICIES = ("ask", "auto", "never")
RESTART_COUNT_VARIABLE = "HOTRELOAD_RESTARTS"
HELP = "keys: r restart the app (fresh process, state lost), q quit, h help; Ctrl-C quits"
QUESTION = "restart the app now (fresh process, its state is lost)? [y]es / [n]o / [a]lways / ne[v]er"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
APP_STOP_GRACE = 1.5
"""Seconds an app on the generic host gets to shut down gracefully (stop 2 s after Ctrl-C, all in)."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop hotreload as Ctrl-C does (KeyboardInterrupt in the main thread), instead of killing
    it on the spot with its children left running. Installed before the runtime loads, which keeps them.

    SIGINT too: Python leaves it ignored when hotreload was started with it ignored (a background job of a
    non-interactive shell, `nohup ... &`), and then Ctrl-C, or an editor's or CI's SIGINT, would do nothing."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in STOP_SIGNALS[1:]:
        signal.signal(sig, _interrupt)


def ignore_stop_signals() -> None:
    """While stopping: a second Ctrl-C must not cut the clean-up short."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def shut_down() -> None:
    """End every process hotreload started, with its tree, and remove the runtime's files: before exit or exec."""
    from .runtime import remove_runtime_files

    processes.stop_all()
    remove_runtime_files()
    sys.stdout.flush()
    sys.stderr.flush()


class RuntimeSignals:
    """Stop signals as .NET delivers them once it owns the handlers (see the module docstring).

    `on_stop(name)` is called for SIGINT, SIGTERM, SIGQUIT and SIGHUP. While `expected` is set (hotreload sent the
    signal itself, to stop the app's host), the signal is only the host's."""

    def __init__(self, on_stop: Any) -> None:
        self.on_stop = on_stop
        self.expected = False
        self.heard: str | None = None  # the stop signal .NET delivered, which the app's host heard too
        self.registrations: list[Any] = []

    def install(self) -> None:
        from System import Action  # type: ignore[import-not-found]
        from System.Runtime.InteropServices import (  # type: ignore[import-not-found]
            PosixSignal,
            PosixSignalContext,
            PosixSignalRegistration,
        )

        self._handler = Action[PosixSignalContext](self._handle)  # kept: .NET holds only a weak link to Python
        for sig in (PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGQUIT, PosixSignal.SIGHUP):
            self.registrations.append(PosixSignalRegistration.Create(sig, self._handler))

    def _handle(self, context: Any) -> None:
        # Cancelled, always: hotreload stops on its own terms. Not cancelled, .NET would hand the signal back to
        # Python's handler after the host's, and that KeyboardInterrupt could land in the middle of stopping and
        # end the process by the signal, with its clean-up cut short (seen: exit status -2).
        context.Cancel = True
        if self.expected:
            return  # ours, sent for the app's host to stop on
        self.heard = str(context.Signal)
        with contextlib.suppress(Exception):  # a signal handler must not throw into .NET
            self.on_stop(self.heard)

    def close(self) -> None:
        for registration in self.registrations:
            registration.Dispose()
        self.registrations.clear()


@contextlib.contextmanager
def _cbreak(stream: Any) -> Iterator[bool]:
    """Single keys without Enter on a terminal (Ctrl-C still interrupts); restored on the way out."""
    try:
        import termios
        import tty

        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield False
        return
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Console:
    """Runs the watch loop's foreground: waits for keys or a restart, and carries it out."""

    def __init__(self, session: Session, reporter: Reporter, policy: str, argv: list[str],
                 stdin: Any = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"--restart must be one of {', '.join(POLICIES)}")
        self.session = session
        self.report = reporter
        self.policy = policy
        self.argv = argv
        self.stdin = stdin or sys.stdin
        self.cwd = os.getcwd()  # the app runs in its project folder; a restart runs hotreload from here again
        self.interactive = bool(getattr(self.stdin, "isatty", lambda: False)())
        self.asking = False
        self.action: str | None = None  # "restart" or "quit", once decided
        self.reason = ""
        self.decided = threading.Event()
        session.outcome_listeners.append(self.on_outcome)
        session.exit_listeners.append(self.on_exit)
        self.signals = RuntimeSignals(lambda name: self.decide("quit", name))

    def started(self) -> None:
        """Once the session has started the runtime: hear stop signals through .NET too."""
        self.signals.install()

    # ---- events ----------------------------------------------------------------------------------
    def on_outcome(self, outcome: Outcome) -> None:
        if outcome.needs_restart:
            why = {OutcomeKind.REFUSED: "a rude edit", OutcomeKind.FAILED: "a failed update"}.get(
                outcome.kind, f"an edit to {', '.join(outcome.next_call)}, which runs at startup," if outcome.next_call
                else "an edit to module-level code that ran at startup")
            self.offer_restart(f"{why} needs a restart")
        elif outcome.kind in ("applied", "no-change") and self.session.app_exit is not None:
            self.decide("restart", "the app had stopped; starting it again with the new build")

    def on_exit(self, exit: AppExit) -> None:
        if self.action is not None:
            return  # stopping or restarting: the app was stopped on purpose
        self.report.info("still watching: the next good save starts the app again"
                         + ("; r restarts it now" if self.interactive else ""), "waiting")

    def offer_restart(self, why: str) -> None:
        if self.policy == "auto":
            self.decide("restart", why)
        elif self.policy == "never":
            self.report.info(f"{why}; not restarting (--restart=never)" + ("; r restarts" if self.interactive else ""),
                             "restart-declined")
        else:
            self.reason = why
            self.asking = True
            self.report.warn(f"{why}: {QUESTION}", "question")

    def answer(self, key: str) -> None:
        """A key pressed (or the first letter of a line when stdin is not a terminal)."""
        key = key.lower()
        if self.asking and key in "ynav":
            self.asking = False
            if key == "a":
                self.policy = "auto"
            elif key == "v":
                self.policy = "never"
            if key in "ya":
                self.decide("restart", self.reason)
            else:
                self.report.info("not restarting; the app keeps running the last code that applied", "restart-declined")
        elif key == "r":
            self.decide("restart", "restart asked for")
        elif key == "q":
            self.decide("quit", "quit asked for")
        elif key in ("h", "?"):
            self.report.info(HELP, "help")

    def decide(self, action: str, reason: str) -> None:
        if self.action is None:
            self.action, self.reason = action, reason
            self.decided.set()

    # ---- foreground --------------------------------------------------------------------------------
    def _read_keys(self, cbreak: bool) -> None:
        while self.action is None:
            try:
                data = self.stdin.read(1) if cbreak else self.stdin.readline()
            except (OSError, ValueError):
                return
            if not data:
                return  # end of input: keys are over, the loop goes on
            if data.strip():
                self.answer(data.strip()[0])

    def run(self) -> str:
        """Block until quit or restart (Ctrl-C quits); returns the action. Restart does not return (exec)."""
        if self.interactive:
            self.report.info(HELP, "help")
        with _cbreak(self.stdin) if self.interactive else contextlib.nullcontext(False) as cbreak:
            threading.Thread(target=self._read_keys, args=(cbreak,), name="hotreload-keys", daemon=True).start()
            try:
                while not self.decided.wait(0.2):
                    pass
            except KeyboardInterrupt as exc:
                self.decide("quit", str(exc) or "Ctrl-C")
        assert self.action is not None
        if self.action == "restart":
            self.restart()
        ignore_stop_signals()
        self.report.info("stopping", "stopping")
        self.stop_app()
        self.session.stop()
        shut_down()
        return self.action

    def stop_app(self) -> None:
        """An app on the generic host shuts down gracefully (in-flight requests end, the port is released): sent
        SIGTERM unless a stop signal already reached it, and given APP_STOP_GRACE seconds. Other apps are stopped by
        the process's exit or exec."""
        app = self.session.app
        if app is None or not app.running or not app.hosted:
            return
        if self.signals.heard not in ("SIGINT", "SIGTERM", "SIGQUIT"):  # its console lifetime has not heard one
            self.signals.expected = True
            os.kill(os.getpid(), signal.SIGTERM)
        if not app.join(APP_STOP_GRACE):
            self.report.warn(f"the app did not shut down within {APP_STOP_GRACE} s; ending it", "app-stop-timeout")

    def restart(self) -> None:
        count = int(os.environ.get(RESTART_COUNT_VARIABLE, "0")) + 1
        self.report.warn(f"restarting ({self.reason}): a fresh process with the new build; the app's state is lost",
                         "restart", reason=self.reason, restart=count)
        self.stop_app()
        self.session.stop()
        shut_down()  # nothing of this process may outlive the exec: no one would wait for it or stop it
        os.environ[RESTART_COUNT_VARIABLE] = str(count)
        fingerprint = self.session.restart_fingerprint()
        if fingerprint:  # the new process starts from the build of the last save when nothing changed since
            os.environ[REUSE_VARIABLE] = fingerprint
        else:
            os.environ.pop(REUSE_VARIABLE, None)
        for sig in STOP_SIGNALS:  # an ignored signal stays ignored across exec; the new process needs them all
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(self.cwd)
        os.execv(sys.executable, [sys.executable, "-m", "hotreload", *self.argv])
