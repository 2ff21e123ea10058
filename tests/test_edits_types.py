"""Record fields and union cases changed while the app runs (issue 13, item 3): a field added to a record is a new
field of the running type (records built before the save read its default value, and the save says so), with the
record's constructor replaced and its equality, comparison and printing updated; a field removed stays in the
running records, unused. Proven on the runtime: build real F#, apply, call, assert what the app now sees."""

from __future__ import annotations

from typing import Any

import pytest
from live_project import LiveProject

pytestmark = pytest.mark.runtime

TYPES = """module Demo.Types

type Person = { Name: string; Age: int }

let mutable saved = { Name = "ann"; Age = 3 }
let make (name: string) = { Name = name; Age = 40 }
let show (p: Person) = sprintf "%A" p
let showSaved () = show saved
let same () = make "bo" = make "bo"
let older () = compare (make "bo") saved
"""


def test_a_field_added_to_a_record(fsharp_project: Any) -> None:
    p: LiveProject = fsharp_project({"Types.fs": TYPES}, name="Records")
    assert p.call("Demo.Types.showSaved") == '{ Name = "ann"\n  Age = 3 }'
    text = TYPES.replace("type Person = { Name: string; Age: int }", "type Person = { Name: string; Age: int; Email: string }") \
        .replace('{ Name = name; Age = 40 }', '{ Name = name; Age = 40; Email = name + "@example.org" }') \
        .replace('let mutable saved = { Name = "ann"; Age = 3 }', 'let mutable saved = { Name = "ann"; Age = 3; Email = "" }')
    outcome = p.edit("Types.fs", text)
    assert outcome.record_fields == ["Demo.Types.Person.Email"]
    assert "+Demo.Types/Person..ctor" in outcome.methods and "-Demo.Types/Person..ctor" in outcome.methods
    assert outcome.values_kept and "Demo.Types.saved keeps its value" in outcome.values_kept[0]
    assert p.call("Demo.Types.showSaved") == '{ Name = "ann"\n  Age = 3\n  Email = null }'  # built before the save
    assert p.call("Demo.Types.show", p.call("Demo.Types.make", "cy")) == \
        '{ Name = "cy"\n  Age = 40\n  Email = "cy@example.org" }'
    assert p.call("Demo.Types.same") is True
    assert p.call("Demo.Types.older") == 1
    # removed again (the last field): the running records keep it, unused
    p.edit("Types.fs", TYPES)
    assert p.call("Demo.Types.show", p.call("Demo.Types.make", "di")) == '{ Name = "di"\n  Age = 40 }'
    assert p.call("Demo.Types.showSaved") == '{ Name = "ann"\n  Age = 3 }'


def test_a_field_inserted_between_others_renumbers_the_fields(fsharp_project: Any) -> None:
    """F# numbers a record's fields in an attribute on each property (printing and serializers read them): a field
    inserted before others changes the numbers of the fields after it, and the running properties follow."""
    p: LiveProject = fsharp_project({"Types.fs": TYPES}, name="Inserted")
    assert p.call("Demo.Types.showSaved") == '{ Name = "ann"\n  Age = 3 }'  # built (the module initialized) now
    text = TYPES.replace("type Person = { Name: string; Age: int }", "type Person = { Name: string; Tag: string; Age: int }") \
        .replace('{ Name = name; Age = 40 }', '{ Name = name; Tag = "new"; Age = 40 }') \
        .replace('let mutable saved = { Name = "ann"; Age = 3 }', 'let mutable saved = { Name = "ann"; Tag = ""; Age = 3 }')
    outcome = p.edit("Types.fs", text)
    assert outcome.record_fields == ["Demo.Types.Person.Tag"]
    assert "[attributes] Demo.Types/Person.Age" in outcome.methods
    assert p.call("Demo.Types.show", p.call("Demo.Types.make", "cy")) == '{ Name = "cy"\n  Tag = "new"\n  Age = 40 }'
    assert p.call("Demo.Types.showSaved") == '{ Name = "ann"\n  Tag = null\n  Age = 3 }'


def test_an_attribute_on_a_property_changes(fsharp_project: Any) -> None:
    source = ('module Demo.Props\n\ntype Named(name: string) =\n    member _.Name = name\n\n'
              'let describe () =\n    typeof<Named>.GetProperty("Name").GetCustomAttributes(false)\n'
              '    |> Array.map (fun a -> (a :?> System.ComponentModel.DescriptionAttribute).Description)\n'
              '    |> String.concat ","\n')
    p: LiveProject = fsharp_project({"Props.fs": source}, name="Props")
    assert p.call("Demo.Props.describe") == ""
    p.edit("Props.fs", source.replace("    member _.Name", '    [<System.ComponentModel.Description("the name")>]\n'
                                                        "    member _.Name"))
    assert p.call("Demo.Props.describe") == "the name"


UNIONS = """module Demo.Unions

type Shape =
    | Circle of float
    | Square of float
type Color = Red | Green | Blue

let mutable saved = [ Circle 1.0; Square 2.0 ]
let mutable favorite = Green
let area s = match s with Circle r -> 3.0 * r * r | Square a -> a * a
let total () = saved |> List.sumBy area
let name c = match c with Red -> "red" | Green -> "green" | Blue -> "blue"
let describe () = name favorite
let probe () = 0
"""


def test_union_case_changes_are_refused_naming_why(fsharp_project: Any) -> None:
    """A case added after the others fits the running values, but the runtime lists a constant added by hot reload
    twice to reflection (the case's tag), and F# printing and serializers of the union then fail: refused, with
    that reason. A case inserted before others would make the running values' tags name other cases."""
    from hotreload.refusal import RefusalKind

    p: LiveProject = fsharp_project({"Unions.fs": UNIONS}, name="Unions")
    appended = p.refuse("Unions.fs", UNIONS.replace("type Color = Red | Green | Blue", "type Color = Red | Green | Blue | Black")
                        .replace('| Blue -> "blue"', '| Blue -> "blue" | Black -> "black"'))
    expected = ("union case change in Demo.Unions.Color: case Black added after the others: the .NET runtime "
                "would list the new case's tag constant twice to reflection, which breaks F# printing (%A) and "
                "serializers of the union (restart the app to pick it up)")
    assert [str(r) for r in appended.refusals] == [expected]
    inserted = p.refuse("Unions.fs", UNIONS.replace("    | Circle of float\n", "    | Dot\n    | Circle of float\n")
                        .replace("match s with Circle", "match s with Dot -> 0.0 | Circle"))
    assert any(r.kind == RefusalKind.UNION_CASE and "inserted before others" in str(r) and "Demo.Unions.Shape" in str(r)
               for r in inserted.refusals), [str(r) for r in inserted.refusals]
    assert (p.call("Demo.Unions.total"), p.call("Demo.Unions.describe")) == (7.0, "green")  # nothing applied
