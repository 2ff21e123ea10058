"""Method-body edits of every shape, applied to a live F# project through the real Session.

Each test builds a small project, checks the old behaviour, saves edits the way a user does (write the file,
rebuild, diff, delta, ApplyUpdate, verify) and then calls the updated code through reflection. Several
edits share one project to keep the number of builds (~3 s each) down. Edits keep every line where it was
unless the test is about moving lines: closure class names carry source line numbers.
"""

from __future__ import annotations

from typing import Any

import pytest

from hotreload.session import OutcomeKind

pytestmark = pytest.mark.runtime


def text_of(p: Any, file: str, *pairs: tuple[str, str]) -> str:
    """`file` with each `old -> new` replacement made once (each `old` must occur)."""
    text = p.source(file)
    for old, new in pairs:
        assert old in text, f"{old!r} not in {file}"
        text = text.replace(old, new, 1)
    return text


def edit(p: Any, file: str, *pairs: tuple[str, str]) -> Any:
    """Save `file` with the replacements made and require the edit to be applied."""
    return p.edit(file, text_of(p, file, *pairs))


def updated(outcome: Any) -> list[str]:
    """The updated methods as the Outcome names them (printed: pytest shows it when a test fails)."""
    print(outcome.methods)
    return sorted(outcome.methods)


# ---- 1. pattern matching ---------------------------------------------------------------------------------

PATTERNS = """module Demo.Patterns

type Shape =
    | Circle of r: int
    | Rect of w: int * h: int
    | Empty

type Colour = Red | Green | Blue

type Point = { X: int; Y: int }

let (|Even|Odd|) (n: int) = if n % 2 = 0 then Even else Odd

let (|Positive|_|) (n: int) = if n > 0 then Some n else None

let shapeOf (k: int) = match k with 0 -> Circle 3 | 1 -> Rect(2, 5) | _ -> Empty

let shapeCode (k: int) =
    match shapeOf k with
    | Circle r -> r * 10
    | Rect (w, h) -> w * h
    | Empty -> -1

let colourCode (k: int) =
    let c = match k with 0 -> Red | 1 -> Green | _ -> Blue
    match c with
    | Red -> 1
    | Green -> 2
    | Blue -> 3

let pointCode (x: int) (y: int) =
    match { X = x; Y = y } with
    | { X = 0; Y = 0 } -> 100
    | { X = 0 } -> 200
    | { X = a; Y = b } -> a + b

let parity (n: int) =
    match n with
    | Even -> "even"
    | Odd -> "odd"

let doubledPositive (n: int) =
    match n with
    | Positive p -> p * 2
    | _ -> 0

let size (n: int) =
    match n with
    | x when x > 10 -> "big"
    | x when x < 0 -> "negative"
    | _ -> "small"
"""


def test_pattern_matching_unions_records_active_patterns_guards(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": PATTERNS})
    m = "Demo.Patterns."
    assert [p.call(m + "shapeCode", k) for k in (0, 1, 2)] == [30, 10, -1]
    assert [p.call(m + "colourCode", k) for k in (0, 1, 2)] == [1, 2, 3]
    assert [p.call(m + "pointCode", *xy) for xy in ((0, 0), (0, 5), (3, 4))] == [100, 200, 7]
    assert [p.call(m + "parity", n) for n in (3, 4)] == ["odd", "even"]
    assert [p.call(m + "doubledPositive", n) for n in (5, -5)] == [10, 0]
    assert [p.call(m + "size", n) for n in (50, -1, 5)] == ["big", "negative", "small"]

    # unions with fields (construction and match) and without fields
    out = edit(p, "Lib.fs", ("Circle 3", "Circle 4"), ("r * 10", "r * 11"), ("w * h", "w + h"),
               ("Green -> 2", "Green -> 20"), ("Blue -> 3", "Blue -> 30"))
    assert [p.call(m + "shapeCode", k) for k in (0, 1, 2)] == [44, 7, -1]
    assert [p.call(m + "colourCode", k) for k in (0, 1, 2)] == [1, 20, 30]
    assert updated(out) == [m + "colourCode", m + "shapeCode", m + "shapeOf"]

    # records in patterns; `when` guards
    out = edit(p, "Lib.fs", ("{ X = 0 } -> 200", "{ X = 0 } -> 300"), ("a + b", "a * b"),
               ("x when x > 10", "x when x > 100"), ('"negative"', '"neg"'))
    assert [p.call(m + "pointCode", *xy) for xy in ((0, 0), (0, 5), (3, 4))] == [100, 300, 12]
    assert [p.call(m + "size", n) for n in (50, 500, -1)] == ["small", "big", "neg"]
    assert updated(out) == [m + "pointCode", m + "size"]

    # the active patterns themselves, and a consumer of one
    out = edit(p, "Lib.fs", ("n % 2 = 0", "n % 3 = 0"), ("Some n", "Some (n + 1)"), ('"even"', '"EVEN"'))
    assert [p.call(m + "parity", n) for n in (3, 4)] == ["EVEN", "odd"]
    assert [p.call(m + "doubledPositive", n) for n in (5, -5)] == [12, 0]
    assert updated(out) == [m + "parity", m + "|Even|Odd|", m + "|Positive|_|"]


# ---- 2. loops, mutable locals, ranges, arrays ------------------------------------------------------------

LOOPS = """module Demo.Loops

let sumTo (n: int) =
    let mutable total = 0
    for i in 1 .. n do
        total <- total + i
    total

let countdown (n: int) =
    let mutable k = n
    let mutable steps = 0
    while k > 0 do
        k <- k - 2
        steps <- steps + 1
    steps

let stepped (n: int) =
    let mutable acc = 0
    for i in 0 .. 3 .. n do
        acc <- acc + i
    acc

let downTo (n: int) =
    let mutable s = ""
    for i = n downto 1 do
        s <- s + string i
    s

let squares (n: int) =
    let arr = Array.zeroCreate<int> n
    for i in 0 .. arr.Length - 1 do
        arr.[i] <- i * i
    arr.[n - 1] + arr.Length

let rangeSum (n: int) = [| 1 .. n |] |> Array.sum

let forIn (n: int) =
    let mutable acc = 0
    for x in [| 1; 2; n |] do
        acc <- acc + x
    acc

let listFor (n: int) =
    let mutable acc = 0
    for x in [ n .. n + 2 ] do
        acc <- acc * 10 + x
    acc

let pick (i: int) =
    let table = [| 10; 20; 30; 40 |]
    table.[i]

let byteAt (i: int) =
    let bytes = [| 1uy; 2uy; 3uy; 4uy; 5uy; 6uy; 7uy; 8uy; 9uy; 10uy; 11uy; 12uy; 13uy; 14uy; 15uy; 16uy; 17uy |]
    int bytes.[i] + bytes.Length
"""


def test_loops_mutable_locals_ranges_arrays(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": LOOPS})
    m = "Demo.Loops."
    calls = {"sumTo": 4, "countdown": 7, "stepped": 10, "downTo": 3, "squares": 4, "rangeSum": 4, "forIn": 5,
             "listFor": 1}
    assert {f: p.call(m + f, arg) for f, arg in calls.items()} == {
        "sumTo": 10, "countdown": 4, "stepped": 18, "downTo": "321", "squares": 13, "rangeSum": 10, "forIn": 8,
        "listFor": 123}

    out = edit(p, "Lib.fs", ("total + i", "total + i * 2"), ("k - 2", "k - 3"), ("0 .. 3 .. n", "0 .. 5 .. n"),
               ("downto 1", "downto 2"), ("i * i", "i * i * i"), ("[| 1 .. n |]", "[| 0 .. 2 .. n |]"),
               ("[| 1; 2; n |]", "[| 5; 6; n |]"), ("[ n .. n + 2 ]", "[ n .. n + 3 ]"))
    assert {f: p.call(m + f, arg) for f, arg in calls.items()} == {
        "sumTo": 20, "countdown": 3, "stepped": 15, "downTo": "32", "squares": 31, "rangeSum": 6, "forIn": 16,
        "listFor": 1234}
    assert updated(out) == [m + f for f in
                            ("countdown", "downTo", "forIn", "listFor", "rangeSum", "squares", "stepped", "sumTo")]

    # constant array literals: a short one is built element by element...
    assert p.call(m + "pick", 1) == 20
    out = edit(p, "Lib.fs", ("[| 10; 20; 30; 40 |]", "[| 11; 22; 33; 44 |]"))
    assert p.call(m + "pick", 1) == 22
    assert updated(out) == [m + "pick"]

    # ...a longer one is copied from a data blob (a static field with an RVA) by RuntimeHelpers.InitializeArray
    assert p.call(m + "byteAt", 1) == 19
    out = edit(p, "Lib.fs", ("1uy; 2uy; 3uy;", "1uy; 92uy; 3uy;"))
    assert p.call(m + "byteAt", 1) == 109
    assert updated(out) == [m + "byteAt"]


# ---- 3. exceptions ---------------------------------------------------------------------------------------

EXCEPTIONS = """module Demo.Exceptions

let cleanups = ref 0
let mutable trail = ""

let parse (s: string) =
    try int s with _ -> -1

let safeDiv (a: int) (b: int) =
    try a / b
    with
    | :? System.DivideByZeroException -> -100
    | _ -> -200

let guarded (n: int) =
    try
        if n < 0 then failwith "neg"
        n * 2
    finally
        cleanups.Value <- cleanups.Value + 1

let cleanupCount () = cleanups.Value

let nested (s: string) =
    trail <- ""
    try
        try
            int s
        finally
            trail <- trail + "inner"
    with _ ->
        trail <- trail + "+caught"
        -7

let lastTrail () = trail

let messageOf (n: int) =
    try
        if n > 0 then failwithf "bad %d" n else "ok"
    with Failure msg -> msg
"""


def test_try_with_try_finally_nested(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": EXCEPTIONS})
    m = "Demo.Exceptions."
    assert [p.call(m + "parse", s) for s in ("12", "x")] == [12, -1]
    assert [p.call(m + "safeDiv", 6, b) for b in (3, 0)] == [2, -100]
    assert p.call(m + "guarded", 3) == 6
    assert p.call(m + "cleanupCount") == 1
    assert p.call(m + "nested", "x") == -7
    assert p.call(m + "lastTrail") == "inner+caught"
    assert p.call(m + "messageOf", 4) == "bad 4"

    out = edit(p, "Lib.fs", ("with _ -> -1", "with _ -> -2"), ("-100", "-101"), ("n * 2", "n * 3"),
               ("cleanups.Value + 1", "cleanups.Value + 10"), ('"inner"', '"INNER"'), ('"+caught"', '"+got"'),
               ("-7", "-8"), ('"bad %d"', '"worse %d!"'), ("Failure msg -> msg", 'Failure msg -> msg + "?"'))
    assert [p.call(m + "parse", s) for s in ("12", "x")] == [12, -2]
    assert [p.call(m + "safeDiv", 6, b) for b in (3, 0)] == [2, -101]
    assert p.call(m + "guarded", 3) == 9
    assert p.call(m + "cleanupCount") == 11
    with pytest.raises(RuntimeError, match="neg"):
        p.call(m + "guarded", -1)
    assert p.call(m + "cleanupCount") == 21  # the finally block ran (new code) although the body threw
    assert p.call(m + "nested", "x") == -8
    assert p.call(m + "lastTrail") == "INNER+got"
    assert p.call(m + "nested", "5") == 5
    assert p.call(m + "lastTrail") == "INNER"
    assert p.call(m + "messageOf", 4) == "worse 4!?"
    assert updated(out) == [m + f for f in ("guarded", "messageOf", "nested", "parse", "safeDiv")]


# ---- 4. closures, pipelines, partial application ---------------------------------------------------------

CLOSURES = """module Demo.Closures

let adder (a: int) = fun (b: int) -> fun (c: int) -> a + b + c

let useAdder (x: int) = adder x 10 100

let captured (n: int) =
    let offset = n * 2
    let f = fun x -> (fun y -> x + y + offset)
    (f 1) 2

let counter (n: int) =
    let count = ref 0
    let bump k = count.Value <- count.Value + k
    for i in 1 .. n do bump i
    count.Value

let pipeline (n: int) =
    [1 .. n] |> List.map (fun x -> x * 2) |> List.filter (fun x -> x % 3 <> 0) |> List.fold (fun acc x -> acc + x) 0

let add3 (a: int) (b: int) (c: int) = a * 100 + b * 10 + c

let partial (n: int) =
    let f = add3 1
    let g = f 2
    g n

let composed (n: int) = (((+) 1) >> ((*) 2)) n

let nestedMap (k: int) =
    [1; 2] |> List.map (fun x -> [10; 20] |> List.map (fun y -> x * y + k) |> List.sum) |> List.sum
"""


def test_closures_pipelines_partial_application(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": CLOSURES})
    m = "Demo.Closures."
    assert p.call(m + "useAdder", 1) == 111
    assert p.call(m + "captured", 5) == 13
    assert p.call(m + "counter", 4) == 10
    assert p.call(m + "pipeline", 4) == 14  # 2 4 6 8 -> 2 4 8
    assert p.call(m + "partial", 3) == 123
    assert p.call(m + "composed", 4) == 10
    assert p.call(m + "nestedMap", 1) == 94

    out = edit(p, "Lib.fs", ("a + b + c", "a + b * c"), ("x + y + offset", "x * y + offset"),
               ("count.Value + k", "count.Value + k * k"), ("x * 2", "x * 5"), ("acc + x", "acc + x + 1"),
               ("add3 1", "add3 2"), ("((*) 2)", "((*) 3)"), ("x * y + k", "x * y - k"))
    assert p.call(m + "useAdder", 1) == 1001
    assert p.call(m + "captured", 5) == 12
    assert p.call(m + "counter", 4) == 30
    assert p.call(m + "pipeline", 4) == 38  # 5 10 15 20 -> 5 10 20, each + 1
    assert p.call(m + "partial", 3) == 223
    assert p.call(m + "composed", 4) == 15
    assert p.call(m + "nestedMap", 1) == 86
    # `adder`'s curried lambdas are compiled as parameters of `adder` itself
    assert updated(out) == sorted([m + "adder", m + "composed", m + "partial", "Demo.Closures/f@9.Invoke",
                                   "Demo.Closures/bump@14.Invoke", "Demo.Closures/pipeline@19.Invoke",
                                   "Demo.Closures/Pipe #1 stage #1 at line 19@19.Invoke",
                                   "Demo.Closures/Pipe #1 stage #1 at line 31@31-1.Invoke"])


# ---- 5. inline functions ---------------------------------------------------------------------------------

INLINE = """module Demo.Inline

let inline scale (x: int) = x * 3

let inline twice ([<InlineIfLambda>] f: int -> int) (x: int) = f (f x)

let inline addTwice (a: ^T) (b: ^T) : ^T = a + b + b

let useA (n: int) = scale n + 1

let useB (n: int) = scale (n + 1) * 2

let useC (n: int) = twice (fun v -> scale v) n

let useInt (n: int) = addTwice n 3

let useFloat (x: float) = addTwice x 0.5

let unrelated (n: int) = n - 1
"""


def test_inline_functions_update_every_caller(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": INLINE})
    m = "Demo.Inline."
    assert p.call(m + "scale", 2) == 6
    assert p.call(m + "useA", 2) == 7
    assert p.call(m + "useB", 2) == 18
    assert p.call(m + "useC", 2) == 18

    # In Debug builds F# (9+) does not inline an `inline` function whose body needs no inlining: the callers
    # call it, their IL does not change, and updating the function's own body changes every caller.
    out = edit(p, "Lib.fs", ("x * 3", "x * 4"))
    assert p.call(m + "scale", 2) == 8
    assert p.call(m + "useA", 2) == 9
    assert p.call(m + "useB", 2) == 24
    assert p.call(m + "useC", 2) == 32
    assert updated(out) == [m + "scale"]

    assert p.call(m + "useInt", 1) == 7
    assert p.call(m + "useFloat", 1.0) == 2.0

    # statically resolved type parameters: the body is inlined into each caller even in Debug
    out = edit(p, "Lib.fs", ("a + b + b", "a + a + b"))
    assert p.call(m + "useInt", 1) == 5
    assert p.call(m + "useFloat", 1.0) == 2.5
    # Debug builds inline it into one `<addTwice>__debug@<line>` copy per call site, which the callers call
    assert updated(out) == sorted([m + "addTwice", m + "addTwice$W", m + "<addTwice>__debug@15",
                                   m + "<addTwice>__debug@17-1"])


# ---- 6. string formatting and unicode --------------------------------------------------------------------

TEXT = """module Demo.Text

let fmtInt (n: int) = sprintf "n=%d" n

let fmtMix (n: int) (s: string) = sprintf "%s:%05d" s n

let fmtFloat (x: float) = sprintf "%.2f" x

let interp (n: int) = $"value {n}"

let interpFmt (x: float) = $"{x:F1}|%d{int x}"

let interpTyped (n: int) = $"%d{n} items"

let netFormat (n: int) = System.String.Format("{0}-{1}", n, n + 1)

let greeting () = "héllo ☃ 日本"

let tick (s: string) = s + " ✓"
"""


def test_string_formatting_and_unicode_literals(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": TEXT})
    m = "Demo.Text."
    assert p.call(m + "fmtInt", 255) == "n=255"
    assert p.call(m + "fmtMix", 42, "a") == "a:00042"
    assert p.call(m + "fmtFloat", 3.14159) == "3.14"
    assert p.call(m + "interp", 7) == "value 7"
    assert p.call(m + "interpFmt", 2.25) == "2.2|2" or p.call(m + "interpFmt", 2.25) == "2.3|2"
    assert p.call(m + "interpTyped", 3) == "3 items"
    assert p.call(m + "netFormat", 1) == "1-2"
    assert p.call(m + "greeting") == "héllo ☃ 日本"
    assert p.call(m + "tick", "a") == "a ✓"

    # same argument types, different format strings and literals
    out = edit(p, "Lib.fs", ('"n=%d"', '"n=%x"'), ('"%s:%05d"', '"%s/%-5d|"'), ('"%.2f"', '"%.4f"'),
               ('$"value {n}"', '$"value {n * 2}!"'), ("{x:F1}", "{x:F3}"), ('%d{n} items', '%d{n} things'),
               ('"{0}-{1}"', '"{1}+{0}"'), ("héllo ☃ 日本", "héllo ☃ 日本 ü∑ 😀"), (" ✓", " ✗"))
    assert p.call(m + "fmtInt", 255) == "n=ff"
    assert p.call(m + "fmtMix", 42, "a") == "a/42   |"
    assert p.call(m + "fmtFloat", 3.14159) == "3.1416"
    assert p.call(m + "interp", 7) == "value 14!"
    assert p.call(m + "interpFmt", 2.25) == "2.250|2"
    assert p.call(m + "interpTyped", 3) == "3 things"
    assert p.call(m + "netFormat", 1) == "2+1"
    assert p.call(m + "greeting") == "héllo ☃ 日本 ü∑ 😀"
    assert p.call(m + "tick", "a") == "a ✗"
    assert updated(out) == [m + f for f in ("fmtFloat", "fmtInt", "fmtMix", "greeting", "interp", "interpFmt",
                                            "interpTyped", "netFormat", "tick")]


def test_format_strings_with_other_arguments(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": TEXT})
    m = "Demo.Text."
    assert p.call(m + "interpTyped", 3) == "3 items"
    assert p.call(m + "fmtInt", 255) == "n=255"

    # other argument types, same count: another PrintfFormat instantiation
    out = edit(p, "Lib.fs", ('$"%d{n} items"', '$"%s{string n}/%.1f{float n}"'))
    assert p.call(m + "interpTyped", 3) == "3/3.0"
    assert updated(out) == [m + "interpTyped"]

    # more arguments than before: F# builds the curried printf call from closures (fmtInt@3, ...)
    out = edit(p, "Lib.fs", ('sprintf "n=%d" n', 'sprintf "n=%x (%s) %b" n "hex" true'))
    assert p.call(m + "fmtInt", 255) == "n=ff (hex) true"
    print(updated(out))


# ---- 7. class, record and union members ------------------------------------------------------------------

CLASSES = """module Demo.Classes

type Counter(start: int) =
    let mutable n = start
    member this.Next() =
        n <- n + 1
        n
    member this.Doubled = n * 2
    static member Scale(k: int) = k * 3
    override this.ToString() = sprintf "Counter(%d)" n

type Rect = { W: int; H: int }
    with member this.Area = this.W * this.H

type Shape =
    | Square of int
    | Tri of int
    member this.Sides = match this with Square _ -> 4 | Tri _ -> 3
    member this.Perimeter() = match this with Square s -> 4 * s | Tri s -> 3 * s

let makeCounter (start: int) = Counter(start)
let counterNext (start: int) = (makeCounter start).Next()
let counterDoubled (start: int) = (makeCounter start).Doubled
let counterText (start: int) = (makeCounter start).ToString()
let rectArea (w: int) (h: int) = { W = w; H = h }.Area
let squareSides () = (Square 2).Sides
let triPerimeter (s: int) = (Tri s).Perimeter()
"""


def test_class_record_union_members(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": CLASSES})
    m = "Demo.Classes."
    live = p.call(m + "makeCounter", 10)  # an instance created before the edits
    assert live.Next() == 11
    assert p.call(m + "counterNext", 1) == 2
    assert p.call(m + "counterDoubled", 4) == 8
    assert p.call(m + "Counter.Scale", 2) == 6
    assert p.call(m + "counterText", 5) == "Counter(5)"
    assert p.call(m + "rectArea", 2, 3) == 6
    assert p.call(m + "squareSides") == 4
    assert p.call(m + "triPerimeter", 2) == 6

    out = edit(p, "Lib.fs", ("n <- n + 1", "n <- n + 5"), ("n * 2", "n * 20"), ("k * 3", "k * 30"),
               ('"Counter(%d)"', '"C<%d>"'), ("this.W * this.H", "this.W * this.H + 1"),
               ("Square _ -> 4", "Square _ -> 40"), ("3 * s", "30 * s"))
    c = "Demo.Classes/Counter."
    assert live.Next() == 16  # the existing instance runs the new method body
    assert live.Doubled == 320
    assert str(live.ToString()) == "C<16>"
    assert p.call(m + "counterNext", 1) == 6
    assert p.call(m + "counterDoubled", 4) == 80
    assert p.call(m + "Counter.Scale", 2) == 60
    assert p.call(m + "counterText", 5) == "C<5>"
    assert p.call(m + "rectArea", 2, 3) == 7
    assert p.call(m + "squareSides") == 40
    assert p.call(m + "triPerimeter", 2) == 60
    assert updated(out) == sorted([c + "Next", c + "get_Doubled", c + "Scale", c + "ToString",
                                   "Demo.Classes/Rect.get_Area", "Demo.Classes/Shape.get_Sides",
                                   "Demo.Classes/Shape.Perimeter"])

    # the primary constructor's body: new instances only
    out = edit(p, "Lib.fs", ("let mutable n = start", "let mutable n = start + 100"))
    assert p.call(m + "counterNext", 1) == 106
    assert live.Next() == 21
    assert updated(out) == [c + ".ctor"]


# ---- 8. generics -----------------------------------------------------------------------------------------

GENERICS = """module Demo.Generic

let pick<'T> (a: 'T) (b: 'T) (flag: bool) = if flag then a else b

let pickInt (flag: bool) = pick 1 2 flag

let pickStr (flag: bool) = pick "one" "two" flag

let describe (x: 'T) = "[" + x.ToString() + "]"

let describeBoth (n: int) = describe n + describe (string n) + describe (float n)

type Box<'T>(value: 'T) =
    member this.Wrap(prefix: string) = prefix + "(" + value.ToString() + ")"
    member this.Count(items: 'T list) = List.length items + 1

let boxInt (n: int) = Box<int>(n).Wrap("int")

let boxStr (s: string) = Box<string>(s).Wrap("str")

let boxCount () = Box<int>(0).Count [1; 2; 3]
"""


def test_generic_functions_and_generic_class(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": GENERICS})
    m = "Demo.Generic."
    assert [p.call(m + "pickInt", f) for f in (True, False)] == [1, 2]
    assert [p.call(m + "pickStr", f) for f in (True, False)] == ["one", "two"]
    assert p.call(m + "describeBoth", 2) == "[2][2][2]"
    assert p.call(m + "boxInt", 5) == "int(5)"
    assert p.call(m + "boxStr", "s") == "str(s)"
    assert p.call(m + "boxCount") == 4

    out = edit(p, "Lib.fs", ("if flag then a else b", "if not flag then a else b"),
               ('"[" + x.ToString() + "]"', '"<" + x.ToString() + ">"'),
               ('prefix + "(" + value.ToString() + ")"', 'prefix + "{" + value.ToString() + "}"'),
               ("List.length items + 1", "List.length items + 10"))
    assert [p.call(m + "pickInt", f) for f in (True, False)] == [2, 1]
    assert [p.call(m + "pickStr", f) for f in (True, False)] == ["two", "one"]
    assert p.call(m + "describeBoth", 2) == "<2><2><2>"
    assert p.call(m + "boxInt", 5) == "int{5}"
    assert p.call(m + "boxStr", "s") == "str{s}"
    assert p.call(m + "boxCount") == 13
    assert updated(out) == ["Demo.Generic.describe", "Demo.Generic.pick", "Demo.Generic/Box`1.Count",
                            "Demo.Generic/Box`1.Wrap"]


# ---- 9. async, task and seq computation expressions ------------------------------------------------------

FLOWS = """module Demo.Flows

open System.Threading.Tasks

let work (n: int) = async {
    let! a = async { return n + 1 }
    let! b = async { return a * 2 }
    return a + b
}

let runWork (n: int) = work n |> Async.RunSynchronously

let taskWork (n: int) = task {
    let! a = Task.FromResult(n + 10)
    do! Task.Delay(1)
    return a * 3
}

let runTask (n: int) = (taskWork n).Result

let numbers (n: int) = seq {
    yield n
    for i in 1 .. 3 do
        yield i * 10
    yield! [100; 200]
}

let sumNumbers (n: int) = numbers n |> Seq.toList |> List.sum
"""


def test_async_task_seq_bodies(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": FLOWS})
    m = "Demo.Flows."
    assert p.call(m + "runWork", 1) == 6
    assert p.call(m + "runTask", 1) == 33
    assert p.call(m + "sumNumbers", 1) == 361

    out = edit(p, "Lib.fs", ("return n + 1", "return n + 2"), ("return a + b", "return a + b + 1000"),
               ("n + 10", "n + 20"), ("return a * 3", "return a * 5"), ("yield i * 10", "yield i * 11"),
               ("[100; 200]", "[300; 200]"))
    assert p.call(m + "runWork", 1) == 1009
    assert p.call(m + "runTask", 1) == 105
    assert p.call(m + "sumNumbers", 1) == 1 + 66 + 500
    assert updated(out) == ["Demo.Flows/numbers@22.GenerateNext", "Demo.Flows/taskWork@16-4.Invoke",
                            "Demo.Flows/taskWork@16.Invoke", "Demo.Flows/work@6-1.Invoke", "Demo.Flows/work@8-6.Invoke"]


# ---- 10. two files, and a file that is not the last one --------------------------------------------------

FILE_A = """module Demo.A

let baseValue () = 10

let inline bump (x: int) = x + 1

let greet (name: string) = "hi " + name
"""

FILE_B = """module Demo.B

let total (n: int) = Demo.A.baseValue () + n

let bumped (n: int) = Demo.A.bump n * 2

let hello () = Demo.A.greet "bob"
"""


def test_edits_in_first_file_and_in_two_files_at_once(fsharp_project: Any) -> None:
    p = fsharp_project({"A.fs": FILE_A, "B.fs": FILE_B})
    assert p.call("Demo.B.total", 1) == 11
    assert p.call("Demo.B.bumped", 1) == 4
    assert p.call("Demo.B.hello") == "hi bob"

    out = edit(p, "A.fs", ("() = 10", "() = 20"), ('"hi "', '"hey "'))  # A.fs is not the last file
    assert updated(out) == ["Demo.A.baseValue", "Demo.A.greet"]
    assert p.call("Demo.B.total", 1) == 21
    assert p.call("Demo.B.hello") == "hey bob"

    # both files saved before one rebuild; the inline function in A is inlined into B
    (p.folder / "A.fs").write_text(text_of(p, "A.fs", ("x + 1", "x + 5")))
    out = edit(p, "B.fs", ("bump n * 2", "bump n * 3"), ("() + n", "() + n * 2"))
    assert updated(out) == ["Demo.A.bump", "Demo.B.bumped", "Demo.B.total"]
    assert p.call("Demo.B.bumped", 1) == 18
    assert p.call("Demo.B.total", 1) == 22


# ---- 11. lines moving down above a function with a lambda ------------------------------------------------

SHIFT = """module Demo.Shift

let top (n: int) = n + 1

let mapped (n: int) = [1; 2; 3] |> List.map (fun x -> x * n) |> List.sum

let after (n: int) = [n] |> List.map (fun x -> x + 1) |> List.head
"""


def test_lines_inserted_above_a_lambda(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": SHIFT})
    m = "Demo.Shift."
    assert p.call(m + "mapped", 2) == 12
    assert p.call(m + "after", 5) == 6

    # target behaviour (closure class names carry the line number, which moved): applied
    out = edit(p, "Lib.fs", ("let mapped", "// a comment\n// another one\n\nlet mapped"), ("x * n", "x * n + 1"))
    assert p.call(m + "mapped", 2) == 15
    assert p.call(m + "after", 5) == 6
    assert p.call(m + "top", 5) == 6
    assert any(name.endswith(".Invoke") for name in updated(out))

    # and the moved closures keep being editable
    out = edit(p, "Lib.fs", ("x + 1", "x + 2"))
    assert p.call(m + "after", 5) == 7
    assert any(name.endswith(".Invoke") for name in updated(out))

    # lines inserted with no other change: nothing to run differently, only sequence points to update...
    out = p.save("Lib.fs", text_of(p, "Lib.fs", ("let after", "\n\n// moved again\nlet after")))
    assert out.kind == OutcomeKind.NO_CHANGE, f"{out.kind}: {[str(r) for r in out.refusals]} {out.message}"
    assert "line numbers updated" in out.message  # stack traces follow the moved code
    assert p.call(m + "after", 5) == 7
    assert p.call(m + "mapped", 2) == 15
    # ...and the closure that moved without being recompiled differently is still found by the next edit
    out = edit(p, "Lib.fs", ("x + 2", "x + 3"))
    assert p.call(m + "after", 5) == 8
    assert any(name.endswith(".Invoke") for name in updated(out))


# ---- 12. a lambda added, a lambda removed ----------------------------------------------------------------

LAMBDAS = """module Demo.Lambdas

let plain (n: int) = n * 2

let withLambda (n: int) = [n; n + 1] |> List.map (fun x -> x * 2) |> List.last

let other (n: int) = [n] |> List.map (fun x -> x - 1) |> List.head
"""


def test_lambda_added_to_a_function_without_one(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": LAMBDAS})
    m = "Demo.Lambdas."
    assert p.call(m + "plain", 5) == 10
    out = edit(p, "Lib.fs", ("= n * 2", "= [n] |> List.map (fun x -> x * 3) |> List.head"))
    assert p.call(m + "plain", 5) == 15
    assert p.call(m + "other", 5) == 4
    assert m + "plain" in updated(out)
    out = edit(p, "Lib.fs", ("x * 3", "x * 4"))  # the added closure can be edited again
    assert p.call(m + "plain", 5) == 20
    assert updated(out) == ["Demo.Lambdas/Pipe #1 stage #1 at line 3@3.Invoke"]


def test_lambda_removed(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": LAMBDAS})
    m = "Demo.Lambdas."
    assert p.call(m + "withLambda", 5) == 12
    out = edit(p, "Lib.fs", ("[n; n + 1] |> List.map (fun x -> x * 2) |> List.last", "(n + 1) * 2 + 100"))
    assert updated(out) == [m + "withLambda"]
    assert p.call(m + "withLambda", 5) == 112
    assert p.call(m + "other", 5) == 4


# ---- 13. a comment-only change ---------------------------------------------------------------------------

QUIET = """module Demo.Quiet

let f (n: int) = n + 1 // first comment

let g (n: int) = [n] |> List.map (fun x -> x * 2) |> List.head // a lambda on the same line
"""


def test_comment_change_on_the_same_line_is_no_change(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": QUIET})
    m = "Demo.Quiet."
    assert p.call(m + "f", 1) == 2
    out = p.save("Lib.fs", text_of(p, "Lib.fs", ("// first comment", "// second, longer comment (* x *)"),
                                   ("// a lambda", "// still a lambda")))
    assert out.kind == OutcomeKind.NO_CHANGE, f"{out.kind}: {out.methods} {[str(r) for r in out.refusals]}"
    assert p.call(m + "f", 1) == 2
    assert p.call(m + "g", 3) == 6
    out = edit(p, "Lib.fs", ("n + 1", "n + 7"), ("x * 2", "x * 5"))  # the session still applies real edits
    assert p.call(m + "f", 1) == 8
    assert p.call(m + "g", 3) == 15
