"""The warm F# compiler process: the SDK's own FSharp.Compiler.Service, loaded once, compiling on request.

`dotnet build` pays MSBuild start-up and a cold compiler on every save. This process keeps the compiler loaded and
JIT-compiled between saves. It is a process of its own, not part of the host, so the compiler's caches never weigh
on the app's process, and its working directory is the project folder, as fsc's is under MSBuild (fsc records a
document path relative to it in the PDB; anywhere else the output would differ from `dotnet build`'s).

It compiles with the references' imports kept between compiles (hotreload.fsc_driver), which halves a small app's
warm compile; where the SDK's compiler does not have the internals that needs, or a `verify` compile's output is
not byte-identical to the public compile's, or a compile crashes there, it uses the public
`FSharpChecker.Compile` from then on, and says so in the reply's `note`. HOTRELOAD_KEEP_IMPORTS=0 turns it off.
It also type-checks only the edited files and the files that depend on them (hotreload.fsc_checkpoints); the
warm-up tries that on the project itself and compares it with the full compile (else a project's first such compile is compared), then
every SPOT_CHECK_EVERY-th such compile is compared with a full public compile; a difference turns that off.

Protocol (one JSON object per line): the worker first says `{"ready": true, "driver": "kept imports" | "public",
"note": str | null}`; then for each request `{"args": [fsc arguments], "cwd": folder, "verify": bool,
"state_as": str, "warm_up": bool}` (cwd optional: the project folder of the compile, as MSBuild runs fsc in it; a
solution's libraries are compiled by the same worker; verify: compile with both paths and compare; state_as: the
output whose kept state the compile uses, default its own; warm_up: see `FscService.warm_up`) it answers `{"ok": bool, "errors": [[file, line, column,
code, message], ...], "failure": str | null, "seconds": float, "phases": [[step, seconds], ...], "driver": str,
"note": str | null}`. End of input ends the worker; so does SIGTERM (to its process
group, with what it started), when it is busy or hung past its deadline.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import processes
from .build import sdk_fsharp_dir
from .fsc_driver import DriverUnavailable, KeptImportsCompiler
from .runtime import start_runtime

KEEP_IMPORTS_VARIABLE = "HOTRELOAD_KEEP_IMPORTS"
INCREMENTAL_DIFFERS = ("a compile that type-checked only the edited files and their dependents differed from a full "
                       "compile: the full compile's output is used, and every file is type-checked from now on")
SPOT_CHECK_EVERY = 20
"""A project's first compile that type-checks only some files, then every 20th, is compared with a full public
compile (it costs that save one more compile): a difference turns the incremental type check off, said."""


class FscService:
    """FSharpChecker.Compile from the SDK's FSharp.Compiler.Service, in its own AssemblyLoadContext."""

    def __init__(self, folder: Path) -> None:
        from System import Array, Func, Object  # type: ignore[import-not-found]
        from System.Reflection import Assembly, AssemblyName  # type: ignore[import-not-found]
        from System.Runtime.Loader import AssemblyLoadContext  # type: ignore[import-not-found]

        context = AssemblyLoadContext("hotreload-fsc", False)

        def resolve(ctx: Any, name: Any) -> Any:
            path = folder / f"{name.Name}.dll"
            return ctx.LoadFromAssemblyPath(str(path)) if path.exists() else None

        self._resolve = Func[AssemblyLoadContext, AssemblyName, Assembly](resolve)  # kept alive: a delegate
        context.add_Resolving(self._resolve)
        service = context.LoadFromAssemblyPath(str(folder / "FSharp.Compiler.Service.dll"))
        core = context.LoadFromAssemblyPath(str(folder / "FSharp.Core.dll"))
        checker_type = service.GetType("FSharp.Compiler.CodeAnalysis.FSharpChecker")
        create = next(m for m in checker_type.GetMethods() if m.Name == "Create")
        self._checker = create.Invoke(None, Array[Object]([None] * create.GetParameters().Length))
        self._compile = next(m for m in checker_type.GetMethods()
                             if m.Name == "Compile" and m.GetParameters()[0].ParameterType.IsArray)
        run = next(m for m in core.GetType("Microsoft.FSharp.Control.FSharpAsync").GetMethods()
                   if m.Name == "RunSynchronously")
        self._run = run.MakeGenericMethod(self._compile.ReturnType.GetGenericArguments()[0])
        self.driver: KeptImportsCompiler | None = None
        self._incremental_compiles: dict[str, int] = {}  # output path -> compiles that checked only some files
        self.note: str | None = None
        if os.environ.get(KEEP_IMPORTS_VARIABLE, "1") != "0":
            try:
                self.driver = KeptImportsCompiler(self._checker, service, core)
                if self.driver.optimizer is None and self.driver.optimizer_note != "HOTRELOAD_KEEP_OPTIMIZATION=0":
                    self.note = (f"{self.driver.optimizer_note}: every file is optimized again on each save "
                                 "(the compiler's own optimization phase)")
            except DriverUnavailable as exc:
                self.note = (f"{exc}: compiling with the public FSharpChecker.Compile, which reads every reference "
                             "again on each save")

    @property
    def driver_name(self) -> str:
        return "kept imports" if self.driver is not None else "public"

    def _give_up_driver(self, why: str) -> str:
        self.driver = None
        self.note = f"{why}: compiling with the public FSharpChecker.Compile from now on (slower, same output)"
        return self.note

    def compile(self, args: list[str], verify: bool = False, state_as: str | None = None) -> dict[str, Any]:
        """One compile; with `verify`, also the public compile of the same arguments, whose output the kept-imports
        compile must equal byte for byte (else the public path is used from then on). `state_as`: the output
        whose kept state this compile uses (hotreload.fsc_driver)."""
        return self._compile_once(args, verify, state_as)

    def warm_up(self, args: list[str], state_as: str) -> dict[str, Any]:
        """The warm-up (output to a scratch folder, state kept for `state_as`, the real output): a `verify`
        compile, then the incremental type check tried on this very project, the later half of its files checked
        again as after an edit in the middle, whose output must equal the full compile's byte for byte. Passed,
        that project's next compile that checks only some files (a save's) need not be compared with a full
        compile; failed, the incremental check is off (said). Sources saved meanwhile leave the question open."""
        before = _sources(args)
        reply = self._compile_once(args, True, state_as)
        if self.driver is None or not reply["ok"] or reply.get("note"):
            return reply
        expected = _outputs(args)
        self.driver.checks.recheck_second_half = True
        again = self.driver.compile(args, state_as)
        checked = again.get("typecheck") or {}
        if not again["ok"] or _sources(args) != before or checked.get("checked") == checked.get("files"):
            return reply  # nothing to conclude: a later save's compile is spot-checked as before
        if _outputs(args) == expected:
            self._incremental_compiles[state_as] = 1  # counts as the project's first (checked) such compile
        else:
            self.driver.checks.refused_everywhere = True
            reply["note"] = INCREMENTAL_DIFFERS
        reply["warm_up_typecheck"] = checked
        return reply

    def _compile_once(self, args: list[str], verify: bool, state_as: str | None = None) -> dict[str, Any]:
        note = None
        if self.driver is not None and verify:
            reference = self.public_compile(args)
            expected = _outputs(args) if reference["ok"] else None
            reply = self.driver.compile(args, state_as)
            if reply["ok"] != reference["ok"] or (expected is not None and _outputs(args) != expected):
                note = self._give_up_driver("the compile with kept imports differed from the public compile")
                reply = self.public_compile(args)  # its output is the one left on disk
            elif reply["failure"] and not reply["errors"]:
                note = self._give_up_driver(f"the compile with kept imports failed ({reply['failure']})")
                reply = self.public_compile(args)
        elif self.driver is not None:
            reply = self.driver.compile(args, state_as)
            if reply["failure"] and not reply["errors"]:
                note = self._give_up_driver(f"the compile with kept imports failed ({reply['failure']})")
                reply = self.public_compile(args)
            elif reply["ok"] and self._spot_check(state_as or _output(args), reply):
                note = self._compare_with_public(args, reply)
        else:
            reply = self.public_compile(args)
        reply["driver"], reply["note"] = self.driver_name, note
        return reply

    def _spot_check(self, out: str, reply: dict[str, Any]) -> bool:
        """Whether this compile of `out`, which type-checked only some files (hotreload.fsc_checkpoints), is one
        compared with a full public compile: a project's first such compile (unless its warm-up compared one),
        then every SPOT_CHECK_EVERY-th."""
        checked = reply.get("typecheck")
        if not checked or checked["checked"] == checked["files"]:
            return False
        count = self._incremental_compiles[out] = self._incremental_compiles.get(out, 0) + 1
        return count % SPOT_CHECK_EVERY == 1

    def _compare_with_public(self, args: list[str], reply: dict[str, Any]) -> str | None:
        """The public compile of the same arguments, over the output just written: the same bytes, or the type
        check is done in full from now on (and the public compile's output is the one on disk)."""
        written = _outputs(args)
        started = time.perf_counter()
        reference = self.public_compile(args)
        reply["seconds"] += time.perf_counter() - started
        reply["spot_checked"] = True
        if reference["ok"] and _outputs(args) == written:
            return None
        assert self.driver is not None
        self.driver.checks.refused_everywhere = True
        return INCREMENTAL_DIFFERS

    def public_compile(self, args: list[str]) -> dict[str, Any]:
        from System import Array, Console, Object, String  # type: ignore[import-not-found]
        from System.IO import StringWriter  # type: ignore[import-not-found]

        start = time.perf_counter()
        timed = "--times" in args  # fsc prints its phase table to Console.Out: kept for the reply, not the log
        saved, captured = (Console.Out, StringWriter()) if timed else (None, None)
        if timed:
            Console.SetOut(captured)
        try:
            computation = self._compile.Invoke(self._checker,
                                               Array[Object]([Array[String](["fsc.exe", *args]), None]))
            result = self._run.Invoke(None, Array[Object]([computation, None, None]))
        finally:
            if timed:
                Console.SetOut(saved)
        errors = [[str(d.FileName), int(d.StartLine), int(d.StartColumn) + 1, str(d.ErrorNumberText), str(d.Message)]
                  for d in result.Item1 if str(d.Severity) == "Error"]
        failure = None if result.Item2 is None else str(result.Item2.Value)
        reply: dict[str, Any] = {"ok": not errors and failure is None, "errors": errors, "failure": failure,
                                 "seconds": time.perf_counter() - start, "phases": []}
        if captured is not None:
            reply["phases"] = parse_times(str(captured.ToString()))
        return reply


def _output(args: list[str]) -> str:
    return next((a.split(":", 1)[1] for a in args if a.startswith(("-o:", "--out:"))), "")


def _sources(args: list[str]) -> list[bytes | None]:
    """The compile's source files' contents (None: unreadable), to tell whether they changed between compiles."""
    def read(path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except OSError:
            return None
    return [read(a) for a in args if not a.startswith("-") and a.endswith((".fs", ".fsi"))]


def _outputs(args: list[str]) -> list[bytes]:
    """The assembly and symbols a compile of `args` wrote."""
    out = Path(_output(args))
    return [p.read_bytes() for p in (out, out.with_suffix(".pdb")) if p.exists()]


def parse_times(text: str) -> list[tuple[str, float]]:
    """fsc's `--times` table -> [(phase, seconds)] for its top-level phases (rows `|Name |elapsed|duration|...`;
    the `|>` rows are sub-steps of the row after them)."""
    out: list[tuple[str, float]] = []
    for line in text.splitlines():
        if "Cache name" in line:
            break  # the compiler's cache statistics follow the phases
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or line.startswith("|>") or len(cells) < 3:
            continue
        try:
            out.append((cells[0], float(cells[2])))
        except ValueError:
            continue  # the header and the cache table
    return out


def main(argv: list[str]) -> int:
    os.chdir(argv[0])
    processes.nest()  # this process leads a group its hotreload ends as a whole: its children stay in it
    # The protocol owns the real stdout; anything the compiler or runtime prints goes to stderr (the log).
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    start_runtime()
    service = FscService(sdk_fsharp_dir())
    protocol.write(json.dumps({"ready": True, "driver": service.driver_name, "note": service.note}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("cwd"):
                os.chdir(request["cwd"])
            if request.get("warm_up"):
                reply = service.warm_up(request["args"], str(request["state_as"]))
            else:
                reply = service.compile(request["args"], bool(request.get("verify")), request.get("state_as"))
        except Exception as exc:  # noqa: BLE001 - any compiler crash is reported, the worker stays up
            reply = {"ok": False, "errors": [], "failure": f"{type(exc).__name__}: {exc}", "seconds": 0.0}
        protocol.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C in the terminal reaches the whole process group; the host reports it
        raise SystemExit(130) from None
