"""Browser refresh for ASP.NET Core apps under `hotreload watch`, as `dotnet watch` does it.

In Development, a web app's HTML pages get a small script (no change to the app's code), and open pages follow
the session: they reload after each applied update, and after a restart once the server is back; a stylesheet
saved under wwwroot is swapped in place, any other file saved there reloads the page.

How: `browser_refresh/` (shipped in this package) is a small C# assembly, built once with `dotnet build` into a
cache folder keyed by its sources. It is a hosting startup: named in ASPNETCORE_HOSTINGSTARTUPASSEMBLIES and
resolvable through `HostedApp.extra`, the web host loads it itself, and its startup filter puts its middleware
first in the pipeline. The middleware serves the script and a Server-Sent Events stream, and inserts the script
tag into HTML responses. hotreload tells the pages what to do through its static `RefreshHub.Notify`, called
through reflection (hotreload's own code, never the app's).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from . import processes
from .app import HostedApp
from .build import BUILD_TIMEOUT, BUILD_TIMEOUT_VARIABLE
from .errors import HotReloadError
from .launch import apply_environment
from .report import Reporter
from .runtime import app_frameworks
from .session import Outcome, OutcomeKind, Session
from .watch import SourceWatcher

ASSEMBLY = "HotReload.BrowserRefresh"
HUB_TYPE = "HotReload.BrowserRefresh.RefreshHub"
SOURCES = Path(__file__).resolve().parent / "browser_refresh"
SOURCE_FILES = ("HotReload.BrowserRefresh.csproj", "BrowserRefresh.cs", "refresh.js")
HOSTING_STARTUP_VARIABLE = "ASPNETCORE_HOSTINGSTARTUPASSEMBLIES"
WEB_FRAMEWORK = "Microsoft.AspNetCore.App"
STATIC_FOLDER = "wwwroot"
STATIC_DEBOUNCE = 0.1
"""Seconds without a new event that end a burst of saves under wwwroot (a build tool writing many files)."""
STATUS = "browser refresh: pages reload after each update"


class BrowserRefreshError(HotReloadError):
    """The middleware could not be built: the message says why (the session goes on without browser refresh)."""


# ---- the middleware assembly ------------------------------------------------------------------------------------
def cache_root() -> Path:
    """`$XDG_CACHE_HOME/hotreload/browser-refresh`, else `~/.cache/hotreload/browser-refresh`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hotreload" / "browser-refresh"


def sources_hash(folder: Path = SOURCES) -> str:
    """What the built assembly depends on: the bytes of each source file, with its name."""
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cached_assembly(root: Path | None = None) -> Path:
    """Where the middleware's DLL for these sources is (or will be) in the cache."""
    return (root or cache_root()) / sources_hash() / "out" / f"{ASSEMBLY}.dll"


def looks_like_web_project(project: Path) -> bool:
    """An ASP.NET Core project by its file (the web SDK or the framework reference), before it is built."""
    try:
        text = project.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return False
    return "Microsoft.NET.Sdk.Web" in text or WEB_FRAMEWORK in text


def built_assembly(root: Path | None = None, timeout: float | None = None) -> tuple[Path, bool]:
    """The middleware's DLL and whether it was built now (False: reused from the cache). The build runs in a
    private folder beside the cache entry and is renamed into place whole, so another hotreload building at the
    same time, or a build cut short, never leaves a half-written entry. Raises BrowserRefreshError."""
    root = root or cache_root()
    dll = cached_assembly(root)
    entry = dll.parent.parent
    if dll.exists():
        return dll, False
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=root))
    except OSError as exc:
        raise BrowserRefreshError(f"cannot create the cache folder {root} ({exc.strerror}); set XDG_CACHE_HOME "
                                  "to a writable folder") from None
    try:
        for name in SOURCE_FILES:
            shutil.copyfile(SOURCES / name, work / name)
        limit = timeout if timeout is not None else processes.seconds_from_env(BUILD_TIMEOUT_VARIABLE, BUILD_TIMEOUT)
        cmd = ["dotnet", "build", str(work / SOURCE_FILES[0]), "-c", "Release", "-o", str(work / "out"), "--nologo",
               "-v:q", "-clp:NoSummary", "-nodeReuse:false", "--disable-build-servers",
               "-p:ImportDirectoryBuildProps=false", "-p:ImportDirectoryBuildTargets=false"]
        try:
            done = processes.run(cmd, "`dotnet build` of the browser refresh middleware", limit,
                                 BUILD_TIMEOUT_VARIABLE, "the app runs without browser refresh", cwd=work)
        except (processes.StepTimedOut, processes.Stopped) as exc:
            raise BrowserRefreshError(str(exc)) from None
        if done.returncode != 0 or not (work / "out" / dll.name).exists():
            output = (done.stdout + done.stderr).strip()[-1500:] or "no output"
            raise BrowserRefreshError(f"`dotnet build` of {SOURCES / SOURCE_FILES[0]} failed: {output}")
        try:
            os.rename(work, entry)
        except OSError:
            if not dll.exists():  # not another hotreload's build that got there first
                raise
        return dll, True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def with_hosting_startup(current: str | None, name: str = ASSEMBLY) -> str:
    """ASPNETCORE_HOSTINGSTARTUPASSEMBLIES with `name` appended once (`;`-separated, as the web host reads it)."""
    names = [n.strip() for n in (current or "").split(";") if n.strip()]
    return ";".join(names if name in names else [*names, name])


def without_hosting_startup(current: str | None, name: str = ASSEMBLY) -> str:
    return ";".join(n.strip() for n in (current or "").split(";") if n.strip() and n.strip() != name)


def app_environment(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The environment name the web host will see: ASPNETCORE_ENVIRONMENT, else DOTNET_ENVIRONMENT, else
    Production (the host's default)."""
    env = os.environ if environ is None else environ
    return env.get("ASPNETCORE_ENVIRONMENT") or env.get("DOTNET_ENVIRONMENT") or "Production"


def is_web_app(dll: str | os.PathLike[str]) -> bool:
    config = os.path.splitext(os.fspath(dll))[0] + ".runtimeconfig.json"
    return any(name == WEB_FRAMEWORK for name, _ in app_frameworks(config))


# ---- wwwroot -----------------------------------------------------------------------------------------------------
class StaticWatcher(SourceWatcher):
    """Every file under wwwroot but editors' temporary and backup files; a burst is reported once."""

    TEMPORARY_SUFFIXES = (".swp", ".swx", ".swo", ".tmp", ".crdownload", "~")

    def is_source(self, path: Path) -> bool:
        name = path.name
        if name.startswith((".", "#")) or name.endswith(self.TEMPORARY_SUFFIXES) or name.isdigit():  # vim's 4913
            return False
        return self._wanted_dir(path.parent)


def static_messages(root: Path, changed: set[Path]) -> list[str]:
    """What the pages are told about files saved under `root`: `reload <path>...` when any is not a stylesheet
    (the page reloads once, after re-fetching them), else `css <path>...`. Paths are relative to `root`, URL-quoted
    (no spaces)."""
    rel = sorted(quote(p.relative_to(root).as_posix()) for p in changed if p.is_relative_to(root))
    if not rel:
        return []
    if all(p.lower().endswith(".css") for p in rel):
        return ["css " + " ".join(rel)]
    return ["reload " + " ".join(rel)]


class BrowserRefresh:
    """Browser refresh for one `hotreload watch` session (see the module docstring); `attach` before start."""

    def __init__(self, reporter: Reporter) -> None:
        self.report = reporter
        self.active = False
        self.assembly: Path | None = None
        self.static_root: Path | None = None
        self.project_dir = Path.cwd()
        self._watcher: StaticWatcher | None = None
        self._notify: Any = None
        self._prebuild: threading.Thread | None = None
        self._built: tuple[Path, bool] | None = None
        self._build_error: Exception | None = None
        self._lock = threading.Lock()

    def attach(self, session: Session) -> BrowserRefresh:
        # A restart execs with this process's environment: the name set for the previous app goes, and is set
        # again if this app gets browser refresh too (otherwise the host would look for an assembly no one gives).
        inherited = os.environ.get(HOSTING_STARTUP_VARIABLE)
        if inherited is not None and ASSEMBLY in inherited.split(";"):
            rest = without_hosting_startup(inherited)
            if rest:
                os.environ[HOSTING_STARTUP_VARIABLE] = rest
            else:
                del os.environ[HOSTING_STARTUP_VARIABLE]
        self.project_dir = session.project.parent
        if looks_like_web_project(session.project) and not cached_assembly().exists():
            # built beside the app's first build rather than after it: the app starts sooner the first time
            self._prebuild = threading.Thread(target=self._build, name="hotreload-browser-build", daemon=True)
            self._prebuild.start()
        session.start_listeners.append(self.on_start)
        session.outcome_listeners.append(self.on_outcome)
        session.stop_listeners.append(self.stop)
        return self

    # ---- session events ---------------------------------------------------------------------------------------
    def on_start(self, app: HostedApp) -> None:
        """The app is loaded and its entry point not yet run; the launch profile's environment is set."""
        if not is_web_app(app.path):
            return
        environment = app_environment()
        if environment.lower() != "development":
            self.report.info(f"browser refresh: off (the app's environment is {environment}, not Development)",
                             "browser-refresh-off", environment=environment)
            return
        if os.environ.get("ASPNETCORE_PREVENTHOSTINGSTARTUP", "").strip().lower() in ("true", "1"):
            self.report.info("browser refresh: off (ASPNETCORE_PREVENTHOSTINGSTARTUP is set: the web host loads no "
                             "hosting startup assembly)", "browser-refresh-off", reason="hosting startup prevented")
            return
        building = self._prebuild.is_alive() if self._prebuild is not None else not cached_assembly().exists()
        if building:
            self.report.info(f"browser refresh: building its middleware (once, into {cache_root()})",
                             "browser-refresh-build")
        if self._prebuild is not None:
            self._prebuild.join()
        else:
            self._build()
        if self._built is None:
            self.report.warn(f"browser refresh: off, its middleware could not be built: {self._build_error}",
                             "browser-refresh-off", reason=str(self._build_error))
            return
        dll, built = self._built
        self.assembly = dll
        app.extra[ASSEMBLY] = str(dll)
        apply_environment({HOSTING_STARTUP_VARIABLE: with_hosting_startup(os.environ.get(HOSTING_STARTUP_VARIABLE))})
        self.active = True
        root = self.project_dir / STATIC_FOLDER  # the app runs in its project folder, its content root
        watching = ""
        if root.is_dir():
            try:
                watcher = StaticWatcher(root, self.on_static_change, debounce=STATIC_DEBOUNCE)
                watcher.start()
                self._watcher, self.static_root = watcher, root
                watching = f"; watching {STATIC_FOLDER}/ (stylesheets swapped in place)"
            except OSError as exc:
                self.report.warn(f"browser refresh: cannot watch {root} ({exc}); pages still reload after updates",
                                 "warning")
        self.report.info(STATUS + watching, "browser-refresh", assembly=str(dll), built=built,
                         static=str(self.static_root) if self.static_root else None)

    def _build(self) -> None:
        try:
            self._built = built_assembly()
        except (BrowserRefreshError, OSError) as exc:
            self._build_error = exc

    def on_outcome(self, outcome: Outcome) -> None:
        """After an applied update, open pages reload. One that needs a restart is left to the restart: the
        pages reload when they reconnect to the new process."""
        if not self.active or outcome.kind != OutcomeKind.APPLIED or outcome.needs_restart:
            return
        pages = self.notify("reload")
        if pages:
            self.report.info(f"browser refresh: reloading {_pages(pages)}", "browser-reload", pages=pages,
                             generation=outcome.generation)

    def on_static_change(self, changed: set[Path]) -> None:
        if self.static_root is None:
            return
        for message in static_messages(self.static_root, changed):
            pages = self.notify(message)
            kind, _, quoted = message.partition(" ")
            paths = [unquote(p) for p in quoted.split()]
            what = "stylesheet swapped in" if kind == "css" else "reloading"
            self.report.info(f"browser refresh: {', '.join(paths)} changed; {what} {_pages(pages)}", "browser-static",
                             kind=kind, paths=paths, pages=pages)

    def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    # ---- the pages --------------------------------------------------------------------------------------------
    def notify(self, message: str) -> int:
        """Send `message` to every open page through RefreshHub.Notify; how many got it (0 before the web host
        has loaded the middleware, or when it cannot be reached)."""
        method = self._hub_notify()
        if method is None:
            return 0
        from System import Array, Object, String  # type: ignore[import-not-found]

        try:
            return int(method.Invoke(None, Array[Object]([String(message)])))
        except Exception:  # noqa: BLE001 - Notify never throws; a reflection fault must not stop the session
            return 0

    def _hub_notify(self) -> Any:
        with self._lock:
            if self._notify is None:
                from System import AppDomain  # type: ignore[import-not-found]

                for asm in AppDomain.CurrentDomain.GetAssemblies():
                    if str(asm.GetName().Name) == ASSEMBLY:
                        hub = asm.GetType(HUB_TYPE)
                        self._notify = hub.GetMethod("Notify") if hub is not None else None
                        break
            return self._notify


def _pages(count: int) -> str:
    return f"{count} page" + ("" if count == 1 else "s")


def attach(session: Session, reporter: Reporter) -> BrowserRefresh:
    """Browser refresh for `session` (`hotreload watch`): set up now, active from the app's start when it is an
    ASP.NET Core app in Development."""
    return BrowserRefresh(reporter).attach(session)
