"""End to end: browser refresh of an ASP.NET Core app under `hotreload watch`, in a real headless browser.

`hotreload watch --json` runs a copy of tests/web_app (Development, a free port); Debian's chromium, driven by
playwright-core (tests/browser/page_watch.mjs), keeps /page open and reports every page load and every change of
the page's <h1>. The test never reloads the page itself: each new load is the injected script's doing.

Needs /usr/bin/chromium (`apt-get install -y chromium`, or HOTRELOAD_CHROMIUM) and playwright-core
(`npm install --prefix tests/browser`); without them the test fails and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from web_testkit import Output, free_port

REPO = Path(__file__).resolve().parents[2]
DRIVER_DIR = REPO / "tests" / "browser"
CHROMIUM = Path(os.environ.get("HOTRELOAD_CHROMIUM", "/usr/bin/chromium"))
SCRIPT_TAG = '<script src="/_hotreload/refresh.js"></script>'
BLUE, RED = "rgb(0, 0, 255)", "rgb(255, 0, 0)"
pytestmark = pytest.mark.e2e


def _copy_web_app(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the fixture whose launch profiles listen on free ports; the project and the http profile's URL."""
    app = tmp_path / "WebApp"
    shutil.copytree(REPO / "tests" / "web_app", app, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    settings = app / "Properties" / "launchSettings.json"
    data = json.loads(settings.read_text())
    for profile in data["profiles"].values():
        profile["applicationUrl"] = f"http://127.0.0.1:{free_port()}"
    settings.write_text(json.dumps(data, indent=2))
    return app / "WebApp.fsproj", data["profiles"]["http"]["applicationUrl"]


def _edit(path: Path, *pairs: tuple[str, str]) -> None:
    """One save of `path` with each (old, new) replaced."""
    text = path.read_text()
    for old, new in pairs:
        assert text.count(old) == 1, f"{path.name}: {old!r}"
        text = text.replace(old, new)
    path.write_text(text)


def _end(proc: subprocess.Popen[str]) -> None:
    """End `proc` and everything it started, whatever state it is in: Ctrl-C first, as a developer stops it (a
    SIGKILL leaves the hosted runtime's IPC files in /tmp), then SIGKILL for anything still there."""
    if proc.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
    with contextlib.suppress(psutil.Error):
        family = psutil.Process(proc.pid).children(recursive=True)
        for p in family:
            with contextlib.suppress(psutil.Error):
                p.kill()
    proc.kill()
    proc.wait(10)


class Lines(Output):
    """A process's stdout (see web_testkit.Output), waited on for JSON items that `match` accepts."""

    def wait(self, match: Callable[[dict[str, Any]], bool], what: str,  # type: ignore[override]
             timeout: float) -> dict[str, Any]:
        found = self.wait_for(lambda item: isinstance(item, dict) and match(item), what, timeout)
        assert isinstance(found, dict)
        return found

    def event(self, name: str, timeout: float = 120) -> dict[str, Any]:
        return self.wait(lambda e: e.get("event") == name, f"{name!r} event", timeout)


class Watch(Lines):
    """`hotreload watch PROJECT --json ...` with stdin not a terminal (so --restart auto)."""

    def __init__(self, project: Path, *args: str) -> None:
        super().__init__(subprocess.Popen([sys.executable, "-m", "hotreload", "watch", str(project), "--json", *args],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, cwd=project.parent))


class Browser(Lines):
    """tests/browser/page_watch.mjs: one page of headless chromium open on `url`, watching `selector`."""

    def __init__(self, url: str, selector: str) -> None:
        super().__init__(subprocess.Popen(["node", str(DRIVER_DIR / "page_watch.mjs"), url, selector, str(CHROMIUM)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, cwd=DRIVER_DIR))
        self.current: dict[str, Any] = {}  # the last load or change seen

    def next(self, what: str, match: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        def wanted(item: dict[str, Any]) -> bool:
            if item.get("event") == "error":
                raise AssertionError(f"the page or the driver failed: {item['message']}")
            if item.get("event") in ("load", "change"):
                self.current = item
                return match(item)
            return False

        return self.wait(wanted, what, timeout)

    def connected(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until the page now shown has had its hello (so hotreload's next notification reaches it)."""
        if self.current.get("server"):
            return self.current
        load = self.current.get("load")
        return self.next(f"the refresh script of load {load} connected",
                         lambda e: e["load"] == load and bool(e["server"]), timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the driver closes the browser and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        _end(self.proc)


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (`apt-get update && apt-get install -y chromium`)")
    if shutil.which("node") is None:
        missing.append("node (`apt-get install -y nodejs npm`)")
    if not (DRIVER_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        missing.append("playwright-core (`npm install --prefix tests/browser`)")
    if missing:
        pytest.fail("the browser refresh test drives a real headless browser; missing: " + "; ".join(missing))


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def _wait_for_server(url: str, watch: Watch, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if _get(url)[0] == 200:
                return
        if watch.proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s; hotreload said:\n"
                         + "\n".join(map(str, watch.seen[-25:])))


@pytest.fixture
def running() -> Iterator[list[Lines]]:
    """Processes a test starts; each is ended with its whole tree after the test, however it went."""
    started: list[Lines] = []
    yield started
    for lines in reversed(started):
        if isinstance(lines, Browser):
            lines.close()
        else:
            _end(lines.proc)


def test_open_page_follows_updates_stylesheets_and_restarts(tmp_path: Path, running: list[Lines]) -> None:
    _require_browser()
    project, base = _copy_web_app(tmp_path)
    app = project.parent
    watch = Watch(project)
    running.append(watch)
    on = watch.event("browser-refresh", timeout=300)  # the first use builds the middleware
    assert on["message"].startswith("browser refresh: pages reload after each update")
    assert on["static"] == str(app / "wwwroot")
    watch.event("ready")
    _wait_for_server(f"{base}/", watch)

    # (a) the HTML page gets the script, once, before </body>, with a Content-Length that fits; the rest is as the
    # app wrote it
    status, headers, body = _get(f"{base}/page")
    html = body.decode()
    assert status == 200 and html.count(SCRIPT_TAG) == 1 and html.endswith(SCRIPT_TAG + "</body></html>")
    assert int(headers["content-length"]) == len(body)
    status, headers, body = _get(f"{base}/items")
    assert headers["content-type"].startswith("application/json") and "cache-control" not in headers
    assert json.loads(body) == [{"id": 1, "name": "apple"}, {"id": 2, "name": "pear"}]
    assert _get(f"{base}/")[2] == b"Hello from F#"
    status, headers, body = _get(f"{base}/site.css")
    assert body == (app / "wwwroot" / "site.css").read_bytes()
    assert headers["cache-control"] == "no-cache"  # a static file is revalidated on each load: never a stale copy
    assert SCRIPT_TAG not in _get(f"{base}/page", {"Sec-Fetch-Dest": "empty"})[2].decode()  # a fetch() of HTML
    status, headers, script = _get(f"{base}/_hotreload/refresh.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"EventSource" in script

    browser = Browser(f"{base}/page", "#title")
    running.append(browser)
    first = browser.next("the first load", lambda e: e["event"] == "load", timeout=60)
    assert (first["load"], first["text"], first["color"]) == (1, "Welcome", BLUE)
    server = browser.connected()["server"]

    # (b) an update to the page's handler: the open page reloads by itself and shows it
    saved = time.time()
    _edit(app / "Handlers.fs", ('<h1 id=\\"title\\">Welcome</h1>', '<h1 id=\\"title\\">Hot reloaded</h1>'))
    applied = watch.event("applied")
    assert applied["methods"] == ["WebApp.Handlers.page"]
    assert watch.event("browser-reload")["pages"] == 1
    second = browser.next("a reload showing the update", lambda e: e["text"] == "Hot reloaded")
    assert second["event"] == "load" and second["load"] == 2 and second["color"] == BLUE
    print(f"update: page shows it {second['time'] / 1000 - saved:.2f} s after the save "
          f"(build {applied['ms']['build'] / 1000:.2f} s)")
    assert browser.connected()["server"] == server  # the same process

    # (c) a stylesheet saved under wwwroot: the new color shows in the same page load
    saved = time.time()
    _edit(app / "wwwroot" / "site.css", (BLUE, RED))
    static = watch.event("browser-static")
    assert (static["kind"], static["paths"], static["pages"]) == ("css", ["site.css"], 1)
    swapped = browser.next("the new color", lambda e: e["color"] == RED)
    assert swapped["event"] == "change" and swapped["load"] == 2 and swapped["origin"] == second["origin"]
    assert swapped["text"] == "Hot reloaded"
    print(f"stylesheet: new color {swapped['time'] / 1000 - saved:.2f} s after the save, no reload")

    # (d) an edit that needs a restart (an interface added to a running type: the runtime cannot): hotreload restarts
    # the app and the page reloads by itself once the new process serves it; the new text exists only in the new
    # process
    browser.connected()
    saved = time.time()
    record = ("type Item =\n    { Id: int; Name: string }\n"
              "    interface System.IDisposable with\n        member _.Dispose() = ()")
    _edit(app / "Handlers.fs", ("type Item = { Id: int; Name: string }", record),
          ('<h1 id=\\"title\\">Hot reloaded</h1>', '<h1 id=\\"title\\">Restarted</h1>'))
    assert "interface change in WebApp.Handlers.Item" in watch.event("refused")["refusals"][0]
    watch.event("restart")
    restarted = watch.event("restarted")
    after = browser.next("a reload from the restarted app", lambda e: e["text"] == "Restarted", timeout=180)
    assert after["event"] == "load" and after["load"] >= 3 and after["time"] / 1000 > restarted["time"]
    assert after["color"] == RED  # the stylesheet on disk
    assert browser.connected()["server"] != server  # a new process
    print(f"restart: page shows the new app {after['time'] / 1000 - saved:.2f} s after the save")


@pytest.mark.parametrize("how", ["--no-browser-refresh", "staging"])
def test_no_script_without_development_or_when_turned_off(tmp_path: Path, running: list[Lines], how: str) -> None:
    project, base = _copy_web_app(tmp_path)
    if how == "staging":
        base = json.loads((project.parent / "Properties" / "launchSettings.json").read_text())[
            "profiles"]["staging"]["applicationUrl"]
    watch = Watch(project, *(["--launch-profile", "staging"] if how == "staging" else [how]))
    running.append(watch)
    watch.event("ready", timeout=300)
    _wait_for_server(f"{base}/", watch)
    body = _get(f"{base}/page")[2].decode()
    assert "<h1 id=\"title\">Welcome</h1>" in body and "_hotreload" not in body
    assert _get(f"{base}/_hotreload/refresh.js")[0] == 404
    said = [e for e in watch.seen if isinstance(e, dict) and str(e.get("event", "")).startswith("browser-refresh")]
    if how == "staging":
        assert [e["event"] for e in said] == ["browser-refresh-off"] and said[0]["environment"] == "Staging"
    else:
        assert said == []
