"""Module-level values computed again after an edit (issue 13, item 2): an edited or added `let x = ...` is run
again and stored where reads find it, with the values whose initializers read it, in the app's order; `let
mutable` values and values marked [<HotReloadKeep>] keep what they hold; top-level code that is not a value is
said, not run. Proven on the runtime: build real F#, apply, call, assert what the app now sees."""

from __future__ import annotations

from typing import Any

import pytest
from live_project import LiveProject

pytestmark = pytest.mark.runtime

CONFIG = """module Demo.Config

type HotReloadKeepAttribute() = inherit System.Attribute()

let name = "world"
let greeting = "Hello " + name
let mutable counter = 0
let squares = [ for i in 1 .. 3 -> i * i ]
let total = squares |> List.map (fun q -> q + 1) |> List.sum
[<HotReloadKeep>]
let cache = System.Collections.Generic.Dictionary<string, int>()
let describe () = sprintf "%s (%d)" greeting counter
let bump () = counter <- counter + 1; counter
let remember (k: string) = cache.[k] <- cache.Count; cache.Count
"""

PAGES = """module Demo.Pages

let banner = Demo.Config.greeting + "!"
let title () = banner
"""


@pytest.fixture
def project(fsharp_project: Any) -> LiveProject:
    p: LiveProject = fsharp_project({"Config.fs": CONFIG, "Pages.fs": PAGES}, name="Values")
    assert p.call("Demo.Pages.title") == "Hello world!"
    return p


def test_an_edited_value_and_the_values_that_read_it_are_computed_again(project: LiveProject) -> None:
    p = project
    assert p.call("Demo.Config.bump") == 1
    outcome = p.edit("Config.fs", CONFIG.replace('let name = "world"', 'let name = "F#"'))
    assert outcome.reevaluated == ["Demo.Config.greeting", "Demo.Pages.banner"]  # name is a constant: its getter changed
    assert p.call("Demo.Pages.title") == "Hello F#!"
    assert p.call("Demo.Config.describe") == "Hello F# (1)"  # the mutable counter kept its value
    assert not outcome.needs_restart


def test_a_closure_an_initializer_runs_recomputes_its_value(project: LiveProject) -> None:
    p = project
    assert p.call("Demo.Config.get_total") == 17
    outcome = p.edit("Config.fs", CONFIG.replace("q + 1", "q * 10"))
    assert outcome.reevaluated == ["Demo.Config.total"]
    assert p.call("Demo.Config.get_total") == 140


def test_an_added_value_is_computed_and_used(project: LiveProject) -> None:
    p = project
    text = CONFIG.replace('let describe () = sprintf "%s (%d)" greeting counter',
                          'let suffix = String.replicate 3 "?"\n'
                          'let describe () = sprintf "%s (%d)%s" greeting counter suffix')
    outcome = p.edit("Config.fs", text)
    assert "Demo.Config.suffix" in outcome.reevaluated
    assert p.call("Demo.Config.describe") == "Hello world (0)???"


def test_mutable_and_marked_values_keep_what_they_hold(project: LiveProject) -> None:
    p = project
    p.call("Demo.Config.bump")
    p.call("Demo.Config.bump")
    assert p.call("Demo.Config.remember", "a") == 1
    text = CONFIG.replace("let mutable counter = 0", "let mutable counter = 100") \
        .replace("Dictionary<string, int>()", "Dictionary<string, int>(16)")
    outcome = p.edit("Config.fs", text)
    assert outcome.reevaluated == []
    assert any("Demo.Config.counter keeps its value" in s for s in outcome.values_kept), outcome.values_kept
    assert any("Demo.Config.cache keeps its value" in s and "HotReloadKeep" in s for s in outcome.values_kept)
    assert p.call("Demo.Config.bump") == 3
    assert p.call("Demo.Config.remember", "b") == 2


def test_top_level_code_that_is_not_a_value_is_said(fsharp_project: Any) -> None:
    source = 'module Demo.Side\n\nlet log = ResizeArray<string>()\ndo log.Add "loaded"\nlet count () = log.Count\n'
    from hotreload.console import Console

    p: LiveProject = fsharp_project({"Side.fs": source}, name="Side")
    assert p.call("Demo.Side.count") == 1
    Console(p.session, p.session.report, "never", argv=[])  # the watch loop's restart policy hears the outcome
    outcome = p.edit("Side.fs", source.replace('do log.Add "loaded"', 'do log.Add "loaded twice"'))
    lines = p.session.report.lines  # type: ignore[attr-defined]
    assert any("an edit to module-level code that ran at startup needs a restart" in line for line in lines), lines
    assert outcome.reevaluated == []
    assert outcome.needs_restart
    assert any("top-level code of Demo.Side runs at startup" in s for s in outcome.startup_code), outcome.startup_code
    assert p.call("Demo.Side.count") == 1  # nothing ran


def test_an_initializer_that_throws_leaves_the_value_as_it_was(project: LiveProject) -> None:
    p = project
    outcome = p.edit("Config.fs", CONFIG.replace('let name = "world"', 'let name = "world"\nlet port = int "80"')
                     .replace('let greeting = "Hello " + name', 'let greeting = "Hello " + name + string port'))
    assert outcome.reevaluated == ["Demo.Config.port", "Demo.Config.greeting", "Demo.Pages.banner"]
    assert p.call("Demo.Pages.title") == "Hello world80!"
    outcome = p.edit("Config.fs", p.source("Config.fs").replace('int "80"', 'int "eighty"'))
    assert outcome.needs_restart and outcome.reevaluated == ["Demo.Config.greeting", "Demo.Pages.banner"]
    assert any("Demo.Config.port: computing its new value threw FormatException" in s and "keeps its previous value"
               in s for s in outcome.startup_code), outcome.startup_code
    assert p.call("Demo.Config.get_port") == 80
    assert p.call("Demo.Pages.title") == "Hello world80!"


def test_a_value_of_a_library_and_the_apps_value_that_reads_it(fsharp_project: Any, tmp_path: Any) -> None:
    """Across assemblies: the library's value is computed first, then the app's that reads it (tests/solution_app
    covers the rest of solutions; this one is small enough to build here)."""
    from live_project import FSPROJ

    from hotreload.session import Session

    lib, app = tmp_path / "Lib", tmp_path / "App"
    lib.mkdir()
    app.mkdir()
    (lib / "Lib.fsproj").write_text(FSPROJ.format(output="Library", name="Lib", items='    <Compile Include="Names.fs" />'))
    (lib / "Names.fs").write_text('module Demo.Names\n\nlet who = [ "lib"; "rary" ] |> String.concat ""\n')
    (app / "App.fsproj").write_text(FSPROJ.format(
        output="Library", name="App", items='    <Compile Include="Main.fs" />\n  </ItemGroup>\n  <ItemGroup>\n'
        '    <ProjectReference Include="../Lib/Lib.fsproj" />'))
    (app / "Main.fs").write_text('module Demo.Main\n\nlet hello = "hi " + Demo.Names.who\nlet get () = hello\n')
    from live_project import QuietReporter

    with Session(app / "App.fsproj", reporter=QuietReporter()) as s:
        assert s.call("Demo.Main.get") == "hi library"
        outcome = s.edit(lib / "Names.fs", '[ "lib"; "rary" ]', '[ "F#"; " lib" ]')
        assert outcome.reevaluated == ["Demo.Names.who", "Demo.Main.hello"]
        assert s.call("Demo.Main.get") == "hi F# lib"


def test_a_value_inserted_above_others_computes_only_itself(project: LiveProject) -> None:
    """The values below keep theirs: their code only moved, and the local variables it uses were renumbered
    (which changes the short forms of ldloc/stloc and the sizes branches jump over: found on a library)."""
    p = project
    outcome = p.edit("Config.fs", CONFIG.replace('let name = "world"\n',
                                                 'let name = "world"\nlet first = [ for i in 1 .. 2 -> i * 10 ]\n'))
    assert outcome.reevaluated == ["Demo.Config.first"]
    assert list(p.call("Demo.Config.get_first")) == [10, 20]
    assert p.call("Demo.Config.get_total") == 17
