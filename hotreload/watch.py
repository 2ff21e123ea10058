"""Turn editor saves into "rebuild now" signals, and run rebuilds one at a time.

Editors save in many ways (in place, write-temp-then-rename, vim's rename-write-delete) and each save fires a burst
of file system events. `SourceWatcher` folds a burst into one callback naming the F# source files whose content
really changed; `SerialWorker` runs the rebuild so that updates never overlap and the last run always starts after
the last save.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

SOURCE_SUFFIXES = frozenset({".fs", ".fsi", ".fsproj"})
"""File kinds whose change can change the compiled assembly."""
SOURCE_NAMES = frozenset({"Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props",
                          "global.json"})
"""MSBuild files imported implicitly by every project below them, and the SDK's pin."""
CSHARP_SUFFIXES = frozenset({".cs", ".csproj"})
"""A C# project's sources (in an F# app's closure: their edits need a restart)."""
IGNORED_DIRS = frozenset({"bin", "obj", ".git", ".hotreload"})
"""Build output and tool state: they change on every build and must never trigger one."""

# Only these reach the handler; on Linux this also narrows the inotify mask (no open/read/attrib noise). "Closed"
# is a close after writing (inotify's IN_CLOSE_WRITE): the writer is done with the file.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent, DirDeletedEvent,
    DirMovedEvent,
]

Digest = bytes | None
"""Content hash of a file, or None when it does not exist (or cannot be read)."""

_UNKNOWN = object()


def _digest(path: Path) -> Digest:
    """Hash the content, so a save that writes the same bytes does not trigger a rebuild."""
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
    except OSError:
        return None


def _abs(path: Path) -> Path:
    """Absolute but not symlink-resolved: watchdog reports paths under the root exactly as it was given."""
    return Path(os.path.abspath(path))


class SourceWatcher:
    """Watch `root` recursively and call `on_change(paths)` once per burst of real source changes.

    A burst ends when `debounce` seconds pass without a new event, or `ceiling` seconds after its first event, so
    a tool that writes continuously still gets rebuilds. `on_change` runs on one background thread, never
    concurrently with itself. Relative `ignore` folders are taken relative to `root`. `suffixes` are the file kinds
    that count (F# sources and projects by default). `watch_files` adds single files outside `root` (a source
    linked from another folder, a Directory.Build.props above the project), watched through their folders without
    recursion. Editors finish a save's
    burst (write, rename, delete) within a few milliseconds; 50 ms covers it and stays small next to a build. A
    save that lands in two bursts costs one extra build, never a lost edit (the last build starts after it).

    When every pending file's last event says its writer is done (closed after writing, or renamed into place,
    as in-place and atomic saves end) and the file is there, the burst ends `settled` seconds after that event
    instead: a save is compiled ~40 ms sooner, and the short wait still folds files written one after another
    (a checkout, a rename across files) into one build. Where the platform reports no closes (not Linux), the
    debounce alone ends bursts.
    """

    def __init__(self, root: Path, on_change: Callable[[set[Path]], None], ignore: Iterable[Path] = (),
                 debounce: float = 0.05, ceiling: float = 1.0, suffixes: frozenset[str] = SOURCE_SUFFIXES,
                 settled: float = 0.01) -> None:
        self.root = _abs(Path(root))
        self.suffixes = suffixes
        self.files: set[Path] = set()  # single files outside root
        self._folders: set[Path] = set()  # their folders, watched without recursion
        self.on_change = on_change
        self.ignore = tuple(_abs(p if Path(p).is_absolute() else self.root / p) for p in ignore)
        self.debounce = debounce
        self.settled = min(settled, debounce)
        self.ceiling = max(ceiling, debounce)
        self._cond = threading.Condition()
        self._hashes: dict[Path, Digest] = {}  # content last reported (or seeded); missing key = never seen
        self._pending: set[Path] = set()
        self._done: set[Path] = set()  # pending files whose last event ended their writing (closed, renamed in)
        self._first_event = 0.0
        self._last_event = 0.0
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching; changes from now on are reported (the caller builds the current state itself)."""
        if self._observer is not None:
            raise RuntimeError("SourceWatcher already started")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="hotreload-watch", daemon=True)
        self._thread.start()
        observer = Observer()
        observer.schedule(_Handler(self), str(self.root), recursive=True, event_filter=_EVENT_FILTER)
        observer.start()  # watches are installed when this returns
        self._observer = observer
        # Seed after the watches exist: a file saved meanwhile is already pending and is then left unseeded,
        # so it is reported (one rebuild too many) rather than missed.
        self._seed()
        files, self.files = self.files, set()
        self.watch_files(files)

    def watch_files(self, files: Iterable[Path]) -> None:
        """Watch these files too (those under `root` already are); their changes are reported like the others."""
        new = {_abs(Path(f)) for f in files} - self.files
        new = {f for f in new if not self._wanted_dir(f.parent)}
        self.files |= new
        if self._observer is None:
            return  # scheduled by start()
        for folder in sorted({f.parent for f in new} - self._folders):
            if folder.is_dir():
                self._observer.schedule(_Handler(self), str(folder), recursive=False, event_filter=_EVENT_FILTER)
                self._folders.add(folder)
        for path in new:
            digest = _digest(path)
            with self._cond:
                if path not in self._pending and path not in self._hashes:
                    self._hashes[path] = digest

    def stop(self) -> None:
        """Stop watching and drop unreported changes; waits for a running `on_change` unless called from it."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive() and threading.current_thread() is not observer:
                observer.join()
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._done.clear()
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- filtering ------------------------------------------------------------------------------------------
    def is_source(self, path: Path) -> bool:
        """True for a file under root whose change matters to the build and that is not build output (or one of
        the single files watched)."""
        if path in self.files:
            return True
        if path.suffix.lower() not in self.suffixes and path.name not in SOURCE_NAMES:
            return False
        return self._wanted_dir(path.parent)

    def _wanted_dir(self, folder: Path) -> bool:
        try:
            rel = folder.relative_to(self.root)
        except ValueError:
            return False
        if any(part in IGNORED_DIRS for part in rel.parts):
            return False
        return not any(folder == ig or folder.is_relative_to(ig) for ig in self.ignore)

    def _seed(self) -> None:
        """Remember the content of existing sources, so a first save that changes nothing is dropped too."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            folder = Path(dirpath)
            dirnames[:] = [d for d in dirnames if self._wanted_dir(folder / d)]
            for name in filenames:
                path = folder / name
                if not self.is_source(path):
                    continue
                digest = _digest(path)
                with self._cond:
                    if path not in self._pending and path not in self._hashes:
                        self._hashes[path] = digest

    # ---- events (watchdog's thread) -------------------------------------------------------------------------
    def _event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # A folder deleted or moved away: inotify reports no per-file events when it leaves the tree.
            if event.event_type in ("deleted", "moved"):
                self._folder_gone(_abs(Path(os.fsdecode(event.src_path))))
            return
        for raw, done in ((event.src_path, event.event_type == "closed"), (event.dest_path, True)):
            if raw:
                path = _abs(Path(os.fsdecode(raw)))
                if self.is_source(path):
                    self._note(path, done)

    def _folder_gone(self, folder: Path) -> None:
        with self._cond:
            known = [p for p in self._hashes if p.is_relative_to(folder)]
        for path in known:
            self._note(path)

    def _note(self, path: Path, done: bool = False) -> None:
        """Queue `path` unless its content equals what was last reported (a touch, or the tail of a burst);
        `done`: this event ends its writer's work on it (a close after writing, a rename into place)."""
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                return
            if path in self._pending:
                self._mark(path, done)
                self._last_event = now
                self._cond.notify_all()
                return
            known = self._hashes.get(path, _UNKNOWN)
        # Safe to drop: if the content read now was already reported, any later write fires a later event.
        if known is not _UNKNOWN and _digest(path) == known:
            return
        with self._cond:
            if self._stopping:
                return
            if not self._pending:
                self._first_event = now
            self._pending.add(path)
            self._mark(path, done)
            self._last_event = now
            self._cond.notify_all()

    def _mark(self, path: Path, done: bool) -> None:
        """Record whether `path`'s latest event finished it (a deleted or moved-away file never is). Holds _cond."""
        if done and path.exists():
            self._done.add(path)
        else:
            self._done.discard(path)

    # ---- debounce and report (own thread) -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._pending:
                    self._cond.wait()
                while not self._stopping:
                    wait = self.settled if self._pending <= self._done else self.debounce
                    due = min(self._last_event + wait, self._first_event + self.ceiling)
                    remaining = due - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return
                batch, self._pending = self._pending, set()
                self._done.clear()
            changed = self._confirm(batch)
            if not changed:
                continue
            try:
                self.on_change(changed)
            except Exception:
                log.exception("source change handler failed for %s", sorted(map(str, changed)))

    def _confirm(self, batch: set[Path]) -> set[Path]:
        """Keep the paths whose content differs from the last report, and record the new content."""
        changed: set[Path] = set()
        for path in batch:
            digest = _digest(path)
            with self._cond:
                known = self._hashes.get(path, _UNKNOWN)
                if known is _UNKNOWN and digest is None:
                    continue  # created and deleted within one burst: nothing for the build to see
                if digest != known:
                    self._hashes[path] = digest
                    changed.add(path)
        return changed


class _Handler(FileSystemEventHandler):
    """Forward watchdog events to the watcher; kept separate so the watcher's API stays small."""

    def __init__(self, watcher: SourceWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self.watcher._event(event)
        except Exception:  # an exception here would kill watchdog's thread and end all watching
            log.exception("failed to handle %r", event)


class SerialWorker:
    """Run `job` on a thread of its own, one run at a time, with at most one follow-up queued.

    Requests that arrive during a run collapse into a single follow-up that starts after the run ends, so the
    last run always starts after the last request: the running app ends up matching the last save.
    """

    def __init__(self, job: Callable[[], None]) -> None:
        self.job = job
        self._cond = threading.Condition()
        self._pending = False
        self._running = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="hotreload-worker", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a run; never blocks. Ignored after `stop()`."""
        with self._cond:
            if self._stopping:
                log.debug("run requested after stop; ignored")
                return
            self._pending = True
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        """A run is in progress."""
        return self._running

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in progress or queued; False if `timeout` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and not self._pending, timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Drop a queued follow-up and wait (up to `timeout`) for a run in progress to finish."""
        with self._cond:
            self._stopping = True
            self._pending = False
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._pending:
                    self._cond.wait()
                if self._stopping:
                    return
                self._pending = False
                self._running = True
            try:
                self.job()
            except Exception:
                log.exception("background job failed; waiting for the next request")
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
