"""A generated F# project shaped like a real one: many files, each using the types and functions of earlier files.

fsgen.py's projects are flat (independent functions in a few large files). Real projects have tens of files in
compile order, where a file opens earlier modules, builds their records, matches their unions and calls their
functions, so an edit in an early file is seen by many later ones. This generator writes `files` modules
`Shop.M{k}`, each with:

- a record `Item{k}` with a field of an earlier file's record type (types used across files);
- a union `Kind{k}` and a function matching on it;
- `open`s of up to three earlier modules, whose functions it calls unqualified;
- a leaf `basis{k}` and an editable `score{k} x = x * a + b + basis{j} x` (j an earlier file), whose result the
  Python model knows, so a benchmark can check that an edit took effect;
- filler functions of the usual shapes (pipelines with lambdas, sprintf, Option) so a file is ~`per_file` functions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from fsgen import ProjectFiles

NAMESPACE = "Shop"


@dataclass
class Module:
    """One generated file and the constants of its editable function."""

    index: int
    opens: list[int]
    a: int
    b: int
    c: int
    basis_of: int  # the file whose `basis` `score` calls (itself for the first file)
    filler: list[tuple[str, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{NAMESPACE}.M{self.index}"


class LayeredProject(ProjectFiles):
    """A generated multi-file F# library on disk and the model of its `score` functions."""

    def __init__(self, folder: Path, files: int = 100, per_file: int = 20, name: str = "Shop", seed: int = 1,
                 group: int = 0) -> None:
        """`group` > 0: the files form feature groups of that many files; the first group is the core, and a
        later group's file opens the previous file of its group, maybe one more of it, and one core file (an
        edit in a feature is seen by the rest of that feature only). 0: one chain, every file opens the one
        before it."""
        self.folder = folder
        self.name = name
        self.per_file = per_file
        rng = random.Random(seed * 7919 + files)
        self.modules: list[Module] = []
        for k in range(files):
            earlier = list(range(k)) if group <= 0 or k < group else list(range(k - k % group, k))
            opens = sorted(rng.sample(earlier, min(3 if group <= 0 or k < group else 2, len(earlier))))
            # mostly the previous few files, sometimes one far back: long dependency chains, as in real code
            if earlier and k - 1 not in opens:
                opens[-1 if opens else 0:] = [k - 1]
                opens = sorted(set(opens))
            if group > 0 and k >= group:
                opens = sorted({*opens, rng.randrange(group)})
            module = Module(k, opens, a=rng.randint(2, 9), b=rng.randint(1, 99), c=rng.randint(1, 50),
                            basis_of=opens[0] if opens else k)
            module.filler = [(("pipe", "text", "option", "record")[i % 4], rng.randint(2, 9))
                             for i in range(max(0, per_file - 6))]
            self.modules.append(module)

    @property
    def file_count(self) -> int:  # type: ignore[override]
        return len(self.modules)

    def file_name(self, k: int) -> str:
        return f"M{k}.fs"

    def source(self, k: int) -> str:
        m = self.modules[k]
        parent = m.opens[-1] if m.opens else None
        lines = [f"module {m.name}", ""]
        lines += [f"open {self.modules[j].name}" for j in m.opens]
        lines += ["", f"type Item{k} =", "    { Id: int", "      Name: string",
                  f"      Parent: {f'Item{parent}' if parent is not None else 'int'} option }}", "",
                  f"type Kind{k} =", f"    | Small{k} of int", f"    | Named{k} of string * int", f"    | Empty{k}", "",
                  f"let basis{k} (x: int) = x + {m.c}", "",
                  f"let score{k} (x: int) = x * {m.a} + {m.b} + basis{m.basis_of} x", ""]
        if parent is not None:
            lines += [f"let make{k} (x: int) : Item{k} =",
                      (f"    {{ Id = x; Name = sprintf \"item%d\" x; Parent = (if x % 2 = 0 then Some (make{parent} x) "
                       "else None) }"), ""]
        else:
            lines += [f"let make{k} (x: int) : Item{k} = {{ Id = x; Name = string x; Parent = None }}", ""]
        lines += [f"let weigh{k} (kind: Kind{k}) =", "    match kind with", f"    | Small{k} n -> n * 2",
                  f"    | Named{k} (s, n) -> s.Length + n", f"    | Empty{k} -> 0", ""]
        calls = " + ".join(f"score{j} x" for j in m.opens) or "x"
        lines += [f"let combined{k} (x: int) = {calls} + weigh{k} (Small{k} x)", ""]
        lines += [f"let describe{k} (item: Item{k}) =",
                  "    sprintf \"%d:%s:%b\" item.Id item.Name item.Parent.IsSome", ""]
        for i, (shape, v) in enumerate(m.filler):
            head = f"let fill{k}_{i} (x: int) ="
            if shape == "pipe":
                lines.append(f"{head}\n    [ 1 .. {v} ] |> List.map (fun y -> y * x) |> List.filter (fun y -> y % 2 = 0)"
                             " |> List.sum")
            elif shape == "text":
                lines.append(f"{head} sprintf \"fill{i} %d %s\" (x + {v}) (describe{k} (make{k} x))")
            elif shape == "option":
                lines.append(f"{head}\n    (if x > {v} then Some (combined{k} x) else None) |> Option.defaultValue {v}")
            else:
                lines.append(f"{head}\n    let item = make{k} (x + {v})\n    item.Id + weigh{k} (Named{k} (item.Name, {v}))")
            lines.append("")
        return "\n".join(lines)

    # ---- the model ------------------------------------------------------------------------------
    def score(self, k: int, x: int) -> int:
        m = self.modules[k]
        return x * m.a + m.b + x + self.modules[m.basis_of].c

    def qualified_score(self, k: int) -> str:
        return f"{self.modules[k].name}.score{k}"

    def edit_score(self, k: int) -> int:
        """Change file k's `score` constant (a body-only edit), rewrite the file; returns score k 10's new value."""
        self.modules[k].b += 1
        self.write_file(k)
        return self.score(k, 10)
