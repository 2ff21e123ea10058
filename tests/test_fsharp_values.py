"""`Session.call` speaks F# (hotreload.fsharp_values): generic functions, and Python values <-> F# lists, arrays,
seqs, options, tuples, maps, sets, records and unions, on a real F# library hosted by one Session."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from live_project import LiveProject

import hotreload
from hotreload.app import AppError
from hotreload.fsharp_values import UnionCase
from hotreload.runtime import RuntimeInfo

pytestmark = pytest.mark.runtime

VALUES = """namespace Demo

type Person = { Name: string; Age: int }

type Team = { Lead: Person; Members: Person list; Motto: string option }

type Color = Red = 0 | Green = 1

type Shape =
    | Circle of radius: float
    | Rect of float * float
    | Dot

module Values =
    // generic
    let pair (a: 'a) (b: 'b) = (a, b)
    let first (xs: 'a list) = List.head xs
    let same (a: 'a) (b: 'a) = [a; b]
    let wrap (x: 'a) = Some x
    let keys (m: Map<'k, 'v>) = m |> Map.toList |> List.map fst
    let nothing () : 'a list = []
    let typeNames (a: 'a) (b: 'b) = typeof<'a>.Name + "," + typeof<'b>.Name
    let elementType (xs: 'a[]) (o: 'b option) (t: 'a * 'b) = typeof<'a>.Name + "," + typeof<'b>.Name
    // collections
    let tryFind k (m: Map<string, int>) = Map.tryFind k m
    let inverse (m: Map<string, int>) = m |> Map.toSeq |> Seq.map (fun (k, v) -> v, k) |> Map.ofSeq
    let total (xs: int64 list) = List.sum xs
    let lengths (xs: string list list) = xs |> List.map List.length
    let sumArray (xs: float[]) = Array.sum xs
    let squares n = Array.init n (fun i -> i * i)
    let count (xs: seq<string>) = Seq.length xs
    let dictTotal (d: System.Collections.Generic.IDictionary<string, int>) = Seq.sum d.Values
    let toSet (xs: int list) = Set.ofList xs
    let setSize (s: Set<string>) = s.Count
    let resizeCount (xs: ResizeArray<int>) = xs.Count
    let resize () = ResizeArray [1; 2]
    let dictionary () = dict [("a", 1)] |> System.Collections.Generic.Dictionary
    // scalars
    let colorValue (c: Color) = int c
    let code (c: char) = int c
    let doubled (d: decimal) = d * 2m
    let orMinus (x: System.Nullable<int>) = if x.HasValue then x.Value else -1
    // options
    let orZero (x: int option) = defaultArg x 0
    let maybeLength (s: string option) = s |> Option.map String.length
    let vwrap (x: int) = ValueSome x
    let vnone () : int voption = ValueNone
    // tuples
    let swap (a: 'a, b: 'b) = (b, a)
    let firstOf (p: int * string) = fst p  // compiled as firstOf(p_0, p_1), as F# does for a tupled group
    let firsts (ps: (int * string) list) = List.map fst ps
    let big () = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    let bigSums (ts: (int * int * int * int * int * int * int * int * int) list) =
        ts |> List.map (fun (a, b, c, d, e, f, g, h, i) -> a + b + c + d + e + f + g + h + i)
    let structPair () = struct (1, "one")
    // records and unions
    let person name age = { Name = name; Age = age }
    let older (p: Person) = { p with Age = p.Age + 1 }
    let team () = { Lead = person "Ada" 36; Members = [person "Alan" 41]; Motto = None }
    let area s = match s with Circle r -> 3.0 * r * r | Rect (w, h) -> w * h | Dot -> 0.0
    let circle r = Circle r
    let rect w h = Rect (w, h)
    let dot () = Dot
    let safeDiv (a: int) (b: int) = if b = 0 then Error "division by zero" else Ok (a / b)
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, dotnet_runtime: RuntimeInfo) -> Iterator[hotreload.Session]:
    """One library build and Session for the whole module: building F# costs seconds."""
    project = LiveProject(tmp_path_factory.mktemp("fsharp_values"), {"Values.fs": VALUES}, name="FsValues")
    yield project.session
    project.close()


def call(s: hotreload.Session, name: str, *args: Any, **kwargs: Any) -> Any:
    return s.call(f"Demo.Values.{name}", *args, **kwargs)


def test_generic_functions_infer_their_type_arguments(session: hotreload.Session) -> None:
    assert call(session, "pair", 1, "x") == (1, "x")
    assert call(session, "typeNames", 1, "x") == "Int32,String"
    assert call(session, "typeNames", 2**40, [1.5]) == "Int64,FSharpList`1"
    assert call(session, "first", [[1, 2], []]) == [1, 2]  # 'a = int list, from the non-empty element
    assert call(session, "same", 1, 2.5) == [1.0, 2.5]  # ints and floats together: float
    assert call(session, "same", 1, "a") == [1, "a"]  # otherwise mixed: obj
    assert call(session, "wrap", 3) == 3
    assert call(session, "keys", {"x": 1, "y": 2}) == ["x", "y"]
    assert call(session, "elementType", [1, 2], None, (3, 4.5)) == "Int32,Double"  # 'a[], 'b option, 'a * 'b


def test_type_arguments_given_explicitly(session: hotreload.Session) -> None:
    import System  # type: ignore[import-not-found]

    assert call(session, "typeNames", 1, 2, type_args=[float, "int64"]) == "Double,Int64"
    assert call(session, "pair", 1, 2, type_args=[float, "System.Int64"]) == (1.0, 2)
    assert call(session, "typeNames", 1, True, type_args=[System.Int16, System.Type.GetType("System.Object")]) \
        == "Int16,Object"
    assert call(session, "typeNames", 1, "Dot", type_args=[None, "Demo.Shape"]) == "Int32,Shape"  # None: inferred
    assert call(session, "nothing", type_args=[str]) == []


def test_generic_errors_say_to_pass_type_args(session: hotreload.Session) -> None:
    with pytest.raises(AppError, match=r"Demo.Values.nothing is generic \('a\) and the arguments do not "
                                                 r"say what 'a is: pass type_args="):
        call(session, "nothing")
    with pytest.raises(AppError, match=r"Demo.Values.first is generic .* what 'a is"):
        call(session, "first", [])
    with pytest.raises(AppError, match=r"first threw System.ArgumentException: The input list was empty"):
        call(session, "first", [], type_args=[int])
    with pytest.raises(AppError, match=r"pair has 2 type parameter\(s\) \('a, 'b\); type_args gives 1"):
        call(session, "pair", 1, 2, type_args=[int])
    with pytest.raises(AppError, match=r"total is not generic: leave out type_args"):
        call(session, "total", [1], type_args=[int])
    with pytest.raises(AppError, match=r"type_args\[0\]: no type named 'Demo.Nope'"):
        call(session, "wrap", 1, type_args=["Demo.Nope"])


def test_lists_arrays_seqs_sets_and_maps(session: hotreload.Session) -> None:
    assert call(session, "total", [1, 2, 2**40]) == 2**40 + 3  # elements become int64, as the parameter says
    assert call(session, "lengths", [["a", "b"], [], ["c"]]) == [2, 0, 1]
    assert call(session, "sumArray", [1, 2.5]) == 3.5
    assert call(session, "squares", 4) == [0, 1, 4, 9]
    assert call(session, "count", ["a", "b", "c"]) == 3
    assert call(session, "dictTotal", {"a": 1, "b": 2}) == 3
    assert call(session, "toSet", [3, 1, 3]) == frozenset({1, 3})
    assert call(session, "setSize", {"a", "b"}) == 2
    assert call(session, "tryFind", "a", {"a": 1}) == 1
    assert call(session, "tryFind", "b", {"a": 1}) is None
    assert call(session, "inverse", {"a": 1, "b": 2}) == {1: "a", 2: "b"}
    assert call(session, "resizeCount", [1, 2, 3]) == 3
    assert call(session, "resize") == [1, 2]
    assert call(session, "dictionary") == {"a": 1}


def test_scalars(session: hotreload.Session) -> None:
    assert call(session, "colorValue", "Green") == call(session, "colorValue", 1) == 1
    assert call(session, "code", "A") == 65
    assert call(session, "doubled", Decimal("1.25")) == Decimal("2.50")
    assert call(session, "doubled", 2) == Decimal(4)
    assert call(session, "orMinus", None) == -1 and call(session, "orMinus", 4) == 4


def test_options(session: hotreload.Session) -> None:
    assert call(session, "orZero", None) == 0
    assert call(session, "orZero", 5) == 5  # a plain value is Some value
    assert call(session, "maybeLength", "abc") == 3
    assert call(session, "maybeLength", None) is None
    assert call(session, "vwrap", 3) == 3
    assert call(session, "vnone") is None


def test_tuples(session: hotreload.Session) -> None:
    assert call(session, "swap", (1, "a")) == ("a", 1)  # a tupled group: one tuple, as F# calls it...
    assert call(session, "swap", 1, "a") == ("a", 1)  # ...or its items one by one, as .NET compiles it
    assert call(session, "firstOf", (7, "seven")) == 7
    assert call(session, "elementType", [1], None, (3, 4.5)) == call(session, "elementType", [1], None, 3, 4.5)
    assert call(session, "firsts", [(1, "a"), (2, "b")]) == [1, 2]  # System.Tuple values inside a list
    assert call(session, "big") == (1, 2, 3, 4, 5, 6, 7, 8, 9)  # more than 7: nested in TRest
    assert call(session, "bigSums", [tuple(range(1, 10)), (0,) * 9]) == [45, 0]
    assert call(session, "structPair") == (1, "one")


def test_records_and_unions(session: hotreload.Session) -> None:
    ada = call(session, "person", "Ada", 36)
    assert ada == {"Name": "Ada", "Age": 36}
    assert call(session, "older", ada) == {"Name": "Ada", "Age": 37}  # a dict of the fields is the record
    assert call(session, "team") == {"Lead": ada, "Members": [{"Name": "Alan", "Age": 41}], "Motto": None}

    circle = call(session, "circle", 2.0)
    assert circle == ("Circle", 2.0) and circle.case == "Circle" and circle.radius == 2.0
    assert isinstance(circle, UnionCase) and repr(circle) == "Circle(case='Circle', radius=2.0)"
    assert call(session, "rect", 2.0, 3.0) == ("Rect", 2.0, 3.0)
    assert call(session, "dot") == "Dot"  # a case without fields: its name
    assert call(session, "area", circle) == 12.0
    assert call(session, "area", ("Rect", 2, 3)) == 6.0
    assert call(session, "area", "Dot") == 0.0
    assert call(session, "safeDiv", 7, 2) == ("Ok", 3)
    assert call(session, "safeDiv", 7, 0) == ("Error", "division by zero")


def test_conversion_errors_name_the_function_and_parameter(session: hotreload.Session) -> None:
    cases: list[tuple[tuple[Any, ...], str]] = [
        (("pair", 1), r"Demo.Values.pair takes 2 argument\(s\) \(a: 'a, b: 'b\); got 1"),
        (("total", [1, "a"]), r"Demo.Values.total: argument 1 \(xs\) wants int64 list; xs\[1\]: 'a' cannot be int64"),
        (("total", 5), r"argument 1 \(xs\) wants int64 list; 5 is not a list"),
        (("person", "Ada", 3.5), r"person: argument 2 \(age\) wants int; 3.5 cannot be int"),
        (("orZero", 2**40), r"argument 1 \(x\) wants int option; 1099511627776 does not fit in int"),
        (("older", {"Name": "Ada"}), r"argument 1 \(p\) wants Person; .* not a dict of exactly the fields Name, Age"),
        (("area", ("Square", 1.0)), r"argument 1 \(s\) wants Shape; Shape has no case 'Square' \(cases: Circle, Rect"),
        (("area", ("Circle",)), r"case Circle has 1 field\(s\) \(radius: float\), got 0"),
        (("firstOf", (1, 2)), r"firstOf: argument 1 \(p_1\) wants string; 2 cannot be string"),
        (("firsts", [(1, 2)]), r"firsts: argument 1 \(ps\) wants \(int \* string\) list; ps\[0\]\[1\]: 2 cannot be"),
        (("elementType", [1], None), (r"elementType takes 3 argument\(s\) \(xs: 'a\[\], o: 'b option, \(t_0: 'a, "
                                      r"t_1: 'b\)\), a tuple for each parenthesized group, or its 4 parameters one by "
                                      r"one; got 2")),
        (("sumArray", [[1.0]]), r"sumArray: argument 1 \(xs\) wants float\[\]; xs\[0\]: \[1.0\] cannot be float"),
    ]
    for (name, *args), message in cases:
        with pytest.raises(AppError, match=message):
            call(session, name, *args)

