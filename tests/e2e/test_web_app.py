"""End to end: an F# ASP.NET Core app (tests/web_app) under `hotreload watch`, as an F# web developer runs it.

It starts as `dotnet run` starts it (same listening URL, environment and content root, no crit or error line),
edits to handlers, JSON and HTML reach the live server with its in-memory state, edits to startup code are said
and restart the app on the same port, and one Ctrl-C or SIGTERM stops the server and hotreload within 2 s."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_testkit import (
    Running,
    app_log,
    copy_web_app,
    dotnet_run,
    edit,
    free_port,
    get,
    hotreload_watch,
    port_is_free,
    profile_url,
    wait_for_body,
)

pytestmark = pytest.mark.e2e

STARTUP_LINES = ("Now listening on:", "Hosting environment:", "Content root path:")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_web_app(tmp_path / "WebApp", free_port())


@pytest.fixture
def running() -> Iterator[list[Running]]:
    """Processes a test starts; all ended (with their trees) whatever the test did."""
    started: list[Running] = []
    yield started
    for proc in started:
        proc.kill()


def _startup(proc: Running) -> list[str]:
    proc.wait(text="Content root path:", timeout=180)
    time.sleep(0.5)  # anything logged right after start-up (a hosting startup failure is logged then)
    return [line for line in app_log(proc.lines()) if any(s in line for s in STARTUP_LINES)]


def _serving(project: Path, running: list[Running], *args: str, path: str = "/count",
             body: str = "count 1") -> tuple[str, Running]:
    """`hotreload watch` on the copy, ready and answering `path` with `body`: its URL and the process."""
    url = profile_url(project)
    watch = hotreload_watch(project, *args)
    running.append(watch)
    watch.wait("ready")
    wait_for_body(f"{url}{path}", body)
    return url, watch


def _errors(proc: Running) -> list[str]:
    return [line for line in app_log(proc.lines()) if line.startswith(("crit:", "fail:"))]


def test_starts_as_dotnet_run_does(project: Path, running: list[Running], tmp_path: Path) -> None:
    url = profile_url(project)
    # the SDK leaves two empty folders in its temp folder per run: the reference run's go to the test's own
    temp = tmp_path / "dotnet-run-tmp"
    temp.mkdir()
    reference = dotnet_run(project, env={"TMPDIR": str(temp)})
    running.append(reference)
    expected = _startup(reference)
    assert len(expected) == 3 and f"Now listening on: {url}" in expected[0], expected
    assert get(url)[1] == "Hello from F#"
    reference.kill()
    deadline = time.monotonic() + 10
    while not port_is_free(int(url.rsplit(":", 1)[1])) and time.monotonic() < deadline:
        time.sleep(0.1)

    watch = hotreload_watch(project)
    running.append(watch)
    profile = watch.wait("launch-profile")
    assert profile["profile"] == "http" and profile["url"] == url
    assert _startup(watch) == expected  # listening URL, environment (Development) and content root, in that order
    assert _errors(watch) == [] and _errors(reference) == []
    status, body = get(f"{url}/items")
    assert status == 200 and json.loads(body) == [{"id": 1, "name": "apple"}, {"id": 2, "name": "pear"}]
    assert get(f"{url}/site.css")[1].startswith("h1 {")  # static files from the content root's wwwroot


@pytest.mark.parametrize("how", ["--launch-profile", "--no-launch-profile"])
def test_launch_profile_options_as_dotnet_run(project: Path, running: list[Running], how: str) -> None:
    if how == "--launch-profile":
        args: tuple[str, ...] = ("--launch-profile", "staging")
        url, environment, env = profile_url(project, "staging"), "Staging", None
    else:
        port = free_port()
        args, url, environment = ("--no-launch-profile",), f"http://127.0.0.1:{port}", "Production"
        env = {"ASPNETCORE_URLS": url}
    watch = hotreload_watch(project, *args, env=env)
    running.append(watch)
    lines = _startup(watch)
    assert lines == [f"info: Now listening on: {url}", f"info: Hosting environment: {environment}",
                     f"info: Content root path: {project.parent}"], lines
    assert not watch.events("launch-profile") if how == "--no-launch-profile" else watch.events("launch-profile")


def test_a_launch_profile_that_is_not_there_is_said_before_building(project: Path, running: list[Running]) -> None:
    watch = hotreload_watch(project, "--launch-profile", "nope")
    running.append(watch)
    fatal = watch.wait("fatal", timeout=60)
    assert "no launch profile 'nope'" in fatal["message"] and "http, staging" in fatal["message"]
    assert watch.proc.wait(30) == 2
    assert not watch.events("building")


def test_edits_reach_the_live_server_with_its_state(project: Path, running: list[Running]) -> None:
    url, watch = _serving(project, running, path="/", body="Hello from F#")
    assert [get(f"{url}/count")[1] for _ in range(3)] == ["count 1", "count 2", "count 3"]
    handlers = project.parent / "Handlers.fs"

    edit(handlers, '"Hello from F#"', '"Hello, edited"')  # a handler body
    assert watch.wait("applied")["generation"] == 1
    assert get(f"{url}/")[1] == "Hello, edited"

    edit(handlers, 'sprintf "count %d" n', 'sprintf "count is %d" n')
    watch.wait("applied")
    assert get(f"{url}/count")[1] == "count is 4"  # the same process: the counter kept its value

    edit(handlers, 'let status () : obj = box {| healthy = true |}',  # a new record type, returned as JSON
         'type Status = { Healthy: bool; Version: string; Checks: string list }\n\n'
         'let status () : obj = box { Healthy = true; Version = "2"; Checks = [ "db"; "cache" ] }')
    watch.wait("applied")
    assert json.loads(get(f"{url}/status")[1]) == {"healthy": True, "version": "2", "checks": ["db", "cache"]}

    edit(handlers, '{ Id = 2; Name = "pear" }', '{ Id = 2; Name = "pear" }; { Id = 3; Name = "plum" }')  # JSON data
    watch.wait("applied")
    assert [i["name"] for i in json.loads(get(f"{url}/items")[1])] == ["apple", "pear", "plum"]

    edit(handlers, '<h1 id=\\"title\\">Welcome</h1>', '<h1 id=\\"title\\">Welcome back</h1>')  # HTML
    watch.wait("applied")
    assert "Welcome back" in get(f"{url}/page")[1]

    edit(handlers, 'let hello () = "Hello, edited"',  # an added function, called by an edited one
         'let greet name = sprintf "Hello, %s" name\n\nlet hello () = greet "added function"')
    watch.wait("applied")
    assert get(f"{url}/")[1] == "Hello, added function"
    assert get(f"{url}/count")[1] == "count is 5"
    assert not watch.events("restart") and not watch.events("startup-code") and _errors(watch) == []


def test_startup_edit_is_said_and_restarts_on_the_same_port(project: Path, running: list[Running]) -> None:
    url, watch = _serving(project, running, "--restart", "auto")
    edit(project.parent / "Program.fs", "    app.Run()",  # a route added in main: main already ran
         '    app.MapGet("/new", Func<string>(fun () -> "a new route")) |> ignore\n    app.Run()')
    said = watch.wait("startup-code")
    assert said["methods"] == ["WebApp.Program.main"] and "restart to pick it up" in said["message"]
    assert "restart" in watch.wait("restart")["message"]
    restarted = watch.wait("restarted")
    watch.wait("reused-build")  # the sources are those the save compiled: no second dotnet build
    took = wait_for_body(f"{url}/new", "a new route", timeout=120)  # the new process bound the port the old freed
    print(f"restart: {restarted['time'] - said['time'] + took:.2f} s from the save's verdict to the new route")
    assert get(f"{url}/count")[1] == "count 1"  # a fresh process: state starts over
    assert _errors(watch) == []


def test_startup_edit_under_restart_never_is_only_said(project: Path, running: list[Running]) -> None:
    url, watch = _serving(project, running, "--restart", "never")
    edit(project.parent / "Program.fs", "let builder = WebApplication.CreateBuilder(args)",
         "let builder = WebApplication.CreateBuilder(args)\n"
         "    Microsoft.Extensions.DependencyInjection.RoutingServiceCollectionExtensions.AddRouting(builder.Services)"
         " |> ignore")
    assert watch.wait("startup-code")["methods"] == ["WebApp.Program.main"]
    declined = watch.wait("restart-declined")
    assert "--restart=never" in declined["message"]
    assert get(f"{url}/count")[1] == "count 2"  # the same process keeps serving
    edit(project.parent / "Handlers.fs", "type Item = { Id: int; Name: string }",
         "type Item =\n    { Id: int; Name: string }\n    interface System.IDisposable with\n        member _.Dispose() = ()")
    refused = watch.wait("refused")
    assert any("WebApp.Handlers.Item" in r for r in refused["refusals"]) and "restart" in refused["message"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_stops_the_server_and_hotreload_within_2_s(project: Path, running: list[Running],
                                                               sig: signal.Signals) -> None:
    url, watch = _serving(project, running, path="/", body="Hello from F#")
    port = int(url.rsplit(":", 1)[1])
    start = time.monotonic()
    watch.signal(sig)
    code = watch.proc.wait(10)
    took = time.monotonic() - start
    assert took < 2.0, f"stopping took {took:.2f} s"
    assert code == 0
    assert watch.events("stopping") and not watch.events("waiting")  # not "still watching"
    assert any("Application is shutting down" in line for line in watch.lines())  # the host's graceful shutdown
    assert port_is_free(port)
