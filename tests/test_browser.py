"""Browser refresh (hotreload.browser): when it turns on, what the pages are told, and the middleware's HTML
injection called on the runtime. The whole loop in a real browser is tests/e2e/test_browser_refresh.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hotreload import browser
from hotreload.browser import (
    ASSEMBLY,
    HOSTING_STARTUP_VARIABLE,
    StaticWatcher,
    app_environment,
    is_web_app,
    static_messages,
    with_hosting_startup,
    without_hosting_startup,
)
from hotreload.report import Reporter


def test_the_hosting_startup_name_is_appended_once() -> None:
    assert with_hosting_startup(None) == ASSEMBLY
    assert with_hosting_startup("") == ASSEMBLY
    assert with_hosting_startup("Their.Startup") == f"Their.Startup;{ASSEMBLY}"
    assert with_hosting_startup(f"Their.Startup; {ASSEMBLY}") == f"Their.Startup;{ASSEMBLY}"
    assert without_hosting_startup(f"A;{ASSEMBLY};B") == "A;B"


def test_a_restart_drops_the_name_it_inherited(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The exec'd process inherits the variable; the host must not look for the assembly unless it is given."""
    session = SimpleNamespace(project=tmp_path / "App.fsproj", start_listeners=[], outcome_listeners=[],
                              stop_listeners=[])
    monkeypatch.setenv(HOSTING_STARTUP_VARIABLE, f"Their.Startup;{ASSEMBLY}")
    refresh = browser.attach(session, Reporter())  # type: ignore[arg-type]
    assert os.environ[HOSTING_STARTUP_VARIABLE] == "Their.Startup"
    assert session.start_listeners == [refresh.on_start] and session.stop_listeners == [refresh.stop]
    monkeypatch.setenv(HOSTING_STARTUP_VARIABLE, ASSEMBLY)
    browser.attach(session, Reporter())  # type: ignore[arg-type]
    assert HOSTING_STARTUP_VARIABLE not in os.environ


def test_the_environment_is_the_web_hosts() -> None:
    assert app_environment({}) == "Production"
    assert app_environment({"DOTNET_ENVIRONMENT": "Development"}) == "Development"
    assert app_environment({"DOTNET_ENVIRONMENT": "Development", "ASPNETCORE_ENVIRONMENT": "Staging"}) == "Staging"


def test_only_apps_on_the_aspnetcore_framework_are_web_apps(tmp_path: Path) -> None:
    def app(frameworks: list[dict[str, str]]) -> Path:
        dll = tmp_path / f"App{len(frameworks)}.dll"
        options = {"tfm": "net10.0", "frameworks": frameworks}
        dll.with_suffix(".runtimeconfig.json").write_text(json.dumps({"runtimeOptions": options}))
        return dll

    assert is_web_app(app([{"name": "Microsoft.NETCore.App", "version": "10.0.0"},
                           {"name": "Microsoft.AspNetCore.App", "version": "10.0.0"}]))
    assert not is_web_app(app([{"name": "Microsoft.NETCore.App", "version": "10.0.0"}]))
    assert not is_web_app(tmp_path / "Missing.dll")


def test_what_the_pages_are_told_about_wwwroot(tmp_path: Path) -> None:
    root = tmp_path / "wwwroot"
    assert static_messages(root, {root / "site.css"}) == ["css site.css"]
    assert static_messages(root, {root / "css" / "a b.css", root / "site.css"}) == ["css css/a%20b.css site.css"]
    assert static_messages(root, {root / "site.css", root / "js" / "app.js"}) == ["reload js/app.js site.css"]
    assert static_messages(root, {tmp_path / "Program.fs"}) == []


def test_editor_temporaries_under_wwwroot_are_not_changes(tmp_path: Path) -> None:
    watcher = StaticWatcher(tmp_path, lambda paths: None)
    assert watcher.is_source(tmp_path / "site.css") and watcher.is_source(tmp_path / "img" / "logo.svg")
    for name in (".site.css.swp", "site.css~", "4913", "#site.css#", "site.css.tmp"):
        assert not watcher.is_source(tmp_path / name), name


@pytest.mark.runtime
def test_the_middleware_builds_once_and_inserts_the_script_before_the_last_body_end(dotnet_runtime: Any) -> None:
    dll, _ = browser.built_assembly()
    again, built = browser.built_assembly()
    assert (again, built) == (dll, False)  # reused from the cache

    from System import Array, Byte  # type: ignore[import-not-found]
    from System.Reflection import Assembly  # type: ignore[import-not-found]

    injection = Assembly.LoadFrom(str(dll)).GetType("HotReload.BrowserRefresh.HtmlInjection")
    inject, is_html = injection.GetMethod("Inject"), injection.GetMethod("IsHtml")
    tag = '<script src="/_hotreload/refresh.js"></script>'

    def run(html: str) -> str:
        result = inject.Invoke(None, [Array[Byte](list(html.encode()))])
        return bytes(result).decode()

    assert run("<html><body><p>x</p></body></html>") == f"<html><body><p>x</p>{tag}</body></html>"
    assert run("<BODY>a</BODY >\n") == f"<BODY>a{tag}</BODY >\n"
    assert run("<p>no body end</p>") == f"<p>no body end</p>{tag}"
    assert run("<body>'</body>' in text</body>") == f"<body>'</body>' in text{tag}</body>"  # the last one
    assert run("<body><bodyguard></bodyguard>") == f"<body><bodyguard></bodyguard>{tag}"
    assert run("<body>é ü</body>") == f"<body>é ü{tag}</body>"
    assert run("") == tag
    for content_type, html in [("text/html", True), ("text/html; charset=utf-8", True), ("TEXT/HTML", True),
                               ("text/html; charset=utf-16", False), ("text/plain", False),
                               ("application/json", False), ("application/xhtml+xml", False), (None, False)]:
        assert bool(is_html.Invoke(None, [content_type])) is html, content_type
