"""Generated F# projects for the benchmarks, with a Python model of every function so a benchmark can check the
value the running code returns after an edit (a timing for an edit that did not take effect means nothing).

A project of n functions is split into files of at most 250 functions (at least two files), each file a module
`Gen.FileK` opening with a small record type. Functions rotate through six shapes: arithmetic, a match that
calls an earlier function, a List pipeline with lambdas, sprintf, a record and an Option, and a function that
calls two earlier ones (sometimes in the previous file). Every function takes an int and returns an int,
except the sprintf ones, which return a string. An edit changes one function's constant `b` and nothing else:
the file is regenerated from the model, so no other line moves.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

MAX_PER_FILE = 250
NAMESPACE = "Gen"

# Shapes, in rotation order.
ARITH, MATCH, PIPELINE, TEXT, RECORD, CALLS = "arith", "match", "pipeline", "text", "record", "calls"
SHAPES = (ARITH, MATCH, PIPELINE, TEXT, RECORD, CALLS)
LEAVES = (ARITH, PIPELINE, RECORD)  # int functions that call nothing: the only callees, so call depth stays <= 2

FSPROJ = """<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Library</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <AssemblyName>{name}</AssemblyName>
    <WarningLevel>3</WarningLevel>
    <TreatWarningsAsErrors>false</TreatWarningsAsErrors>
    <!-- a library does not copy FSharp.Core beside it otherwise; the host resolves it from the output -->
    <CopyLocalLockFileAssemblies>true</CopyLocalLockFileAssemblies>
  </PropertyGroup>
  <ItemGroup>
{items}
  </ItemGroup>
</Project>
"""


@dataclass
class Fn:
    """One generated top-level function and the constants its body is made of."""

    index: int
    file: int
    shape: str
    a: int
    b: int
    callees: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"f{self.index}"

    @property
    def module(self) -> str:
        return f"{NAMESPACE}.File{self.file}"

    @property
    def qualified(self) -> str:
        """The name `HostedApp.call` takes."""
        return f"{self.module}.{self.name}"


class ProjectFiles:
    """Writing a generated library project: its project file and each source file (`file_name(k)`, `source(k)`)."""

    folder: Path
    name: str
    file_count: int

    @property
    def project(self) -> Path:
        return self.folder / f"{self.name}.fsproj"

    def file_name(self, k: int) -> str:
        raise NotImplementedError

    def source(self, k: int) -> str:
        raise NotImplementedError

    def write(self) -> Path:
        """Write the project file and every source file; returns the project file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        items = "\n".join(f'    <Compile Include="{self.file_name(k)}" />' for k in range(self.file_count))
        self.project.write_text(FSPROJ.format(name=self.name, items=items))
        for k in range(self.file_count):
            self.write_file(k)
        return self.project

    def write_file(self, k: int) -> Path:
        path = self.folder / self.file_name(k)
        path.write_text(self.source(k))
        return path


class GeneratedProject(ProjectFiles):
    """A generated F# library project on disk and the model it was written from."""

    def __init__(self, folder: Path, functions: int, name: str = "Gen", seed: int = 1) -> None:
        self.folder = folder
        self.name = name
        rng = random.Random(seed * 1_000_003 + functions)
        files = 1 if functions < 4 else max(2, math.ceil(functions / MAX_PER_FILE))
        per_file = math.ceil(functions / files)
        self.fns: list[Fn] = []
        for i in range(functions):
            shape = SHAPES[i % len(SHAPES)]
            fn = Fn(i, i // per_file, shape, a=rng.randint(3, 12), b=rng.randint(1, 99))
            earlier = [j for j in range(max(0, i - 12), i) if self.fns[j].shape in LEAVES]
            if shape == MATCH and earlier:
                fn.callees = [rng.choice(earlier)]
            elif shape == CALLS and earlier:
                fn.callees = [rng.choice(earlier), rng.choice(earlier)]
            self.fns.append(fn)
        self.file_count = self.fns[-1].file + 1 if self.fns else 0

    # ---- writing ----------------------------------------------------------------------------------
    def file_name(self, k: int) -> str:
        return f"File{k}.fs"

    def source(self, k: int) -> str:
        lines = [f"module {NAMESPACE}.File{k}", "", "type Point = { X: int; Y: int }", ""]
        for fn in self.fns:
            if fn.file == k:
                lines.append(self._definition(fn))
                lines.append("")
        return "\n".join(lines)

    def _ref(self, caller: Fn, callee: int) -> str:
        target = self.fns[callee]
        return target.name if target.file == caller.file else target.qualified

    def _definition(self, fn: Fn) -> str:
        head = f"let {fn.name} (x: int) ="
        a, b = fn.a, fn.b
        if fn.shape == ARITH:
            return f"{head} x * {a} + {b}"
        if fn.shape == MATCH:
            other = f"{self._ref(fn, fn.callees[0])} x - 1" if fn.callees else "x * 2"
            return f"{head}\n    match x % 3 with\n    | 0 -> {a}\n    | 1 -> x + {b}\n    | _ -> {other}"
        if fn.shape == PIPELINE:
            return (f"{head}\n    [ 1 .. {a} ]\n    |> List.map (fun v -> v * x + {b})\n"
                    "    |> List.filter (fun v -> v % 2 = 0)\n    |> List.sum")
        if fn.shape == TEXT:
            return f'{head} sprintf "{fn.name} %d/%s" (x + {b}) (string ({a} * x))'
        if fn.shape == RECORD:
            return (f"{head}\n    let p = {{ X = x; Y = {a} }}\n"
                    f"    (if p.X > p.Y then Some(p.X - p.Y + {b}) else None) |> Option.defaultValue {b}")
        if fn.callees:
            first, second = (self._ref(fn, c) for c in fn.callees)
            return f"{head} {first} x + {second} (x + 1) + {b}"
        return f"{head} x + {b}"

    # ---- the model ------------------------------------------------------------------------------
    def expected(self, index: int, x: int) -> int | str:
        """What `f{index} x` returns, computed in Python (x >= 0: F#'s % and Python's agree there)."""
        fn = self.fns[index]
        a, b = fn.a, fn.b
        if fn.shape == ARITH:
            return x * a + b
        if fn.shape == MATCH:
            if x % 3 == 0:
                return a
            if x % 3 == 1:
                return x + b
            return self._int(fn.callees[0], x) - 1 if fn.callees else x * 2
        if fn.shape == PIPELINE:
            return sum(v for v in (w * x + b for w in range(1, a + 1)) if v % 2 == 0)
        if fn.shape == TEXT:
            return f"{fn.name} {x + b}/{a * x}"
        if fn.shape == RECORD:
            return x - a + b if x > a else b
        if fn.callees:
            return self._int(fn.callees[0], x) + self._int(fn.callees[1], x + 1) + b
        return x + b

    def _int(self, index: int, x: int) -> int:
        value = self.expected(index, x)
        assert isinstance(value, int)
        return value

    def pick(self, shape: str, file: int) -> Fn:
        """The function of `shape` nearest the middle of `file` (or of the whole project, if the file has none)."""
        candidates = [f for f in self.fns if f.shape == shape and f.file == file] or \
                     [f for f in self.fns if f.shape == shape]
        if not candidates:
            raise ValueError(f"no {shape} function in a project of {len(self.fns)}")
        return candidates[len(candidates) // 2]

    def probe(self, fn: Fn) -> int:
        """An argument that exercises the constant `b` in `fn` (for a match, the branch that uses it)."""
        return 7 if fn.shape == MATCH else 20  # 7 % 3 == 1; 20 is above every record's Y

    def edit_constant(self, fn: Fn) -> int | str:
        """Change `fn`'s constant `b` so that its result on `probe(fn)` changes, rewrite its file, and return
        the new expected result."""
        x = self.probe(fn)
        before = self.expected(fn.index, x)
        while True:
            fn.b += 1
            after = self.expected(fn.index, x)
            if after != before:
                break
        self.write_file(fn.file)
        return after
