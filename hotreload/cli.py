"""Command line: `hotreload watch PROJECT` (the live loop) and `hotreload delta OLD NEW -o DIR`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import HotReloadError
from .metadata.errors import BadImageError
from .report import JsonReporter, Reporter


def _watch(args: argparse.Namespace) -> int:
    from .browser import attach as browser_refresh
    from .console import Console, ignore_stop_signals, shut_down, stop_on_signals
    from .session import Session

    stop_on_signals()  # SIGTERM and SIGHUP stop cleanly, like Ctrl-C
    reporter = JsonReporter() if args.json else Reporter()
    policy = args.restart or ("ask" if sys.stdin.isatty() else "auto")
    restarts = os.environ.get("HOTRELOAD_RESTARTS")
    if restarts:
        reporter.info(f"restart #{restarts}: a fresh process, the app starts from scratch", "restarted",
                      restart=int(restarts))
    try:
        try:
            session = Session(args.project, app_args=args.app_args, reporter=reporter, run_entry_point=True,
                              watch=True, stack_lines=args.stack_lines, launch_profile=args.launch_profile,
                              launch_settings=not args.no_launch_profile)
            if not args.no_browser_refresh:  # an ASP.NET Core app in Development: open pages follow updates
                browser_refresh(session, reporter)
            console = Console(session, reporter, policy, args.argv)
            session.start()
            console.started()
        except HotReloadError as exc:  # the project, the SDK, the runtime or a setting: the message says what to do
            reporter.error(str(exc), "fatal")
            return 2
        except KeyboardInterrupt:
            return 130  # start() has stopped what it started
        reporter.info(f"restart policy: {policy}; Ctrl-C to stop", "ready", policy=policy)
        console.run()
    finally:  # on every way out, a crash of hotreload's own included: no process of ours is left behind
        ignore_stop_signals()
        shut_down()
    # The app's thread may still be inside .NET code; the runtime cannot be unloaded, so leave at once.
    os._exit(0)


def _delta(args: argparse.Namespace) -> int:
    from .baseline import Baseline
    from .delta import build_delta, load_build
    from .diff import diff_builds

    try:
        old, old_pdb = load_build(args.old)
        new, new_pdb = load_build(args.new)
        diff = diff_builds(old, new)  # rows and heaps are read lazily: corruption can surface here too
        if diff.refusals:
            for r in diff.refusals:
                print(f"hotreload delta: {r}", file=sys.stderr)
            return 1
        assert diff.new is not None
        delta = build_delta(Baseline(old, old_pdb), diff.new, new_pdb, diff)
    except (OSError, BadImageError) as exc:
        print(f"hotreload delta: cannot read the assemblies ({args.old}, {args.new}): {exc}; "
              "give two builds of the same project", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for ext, data in (("meta", delta.metadata), ("il", delta.il), ("pdb", delta.pdb)):
        (out / f"1.{ext}").write_bytes(data)
    print(f"wrote {out}/1.meta, 1.il, 1.pdb: " + ", ".join(delta.summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotreload", description="Hot reload for F# apps on .NET 10.")
    sub = parser.add_subparsers(dest="command", required=True)
    watch = sub.add_parser("watch", help="build, run and hot reload an F# project as you save")
    watch.add_argument("project", help="the .fsproj (or its folder)")
    watch.add_argument("--json", action="store_true", help="one JSON object per status line (for editors and CI)")
    watch.add_argument("--restart", choices=("ask", "auto", "never"),
                       help="after a rude edit or failed update: ask (default on a terminal), auto (default "
                            "otherwise: a fresh process, state lost) or never")
    watch.add_argument("--stack-lines", choices=("auto", "on", "off"),
                       help="the runtime's own stack traces of updated code: auto (default; only on runtime builds "
                            "where a test pinned the native update count hotreload resets), on (any runtime), off "
                            "(never write runtime state). hotreload's crash reports show file:line in every mode. "
                            "Also HOTRELOAD_STACK_LINES")
    watch.add_argument("--no-browser-refresh", action="store_true",
                       help="ASP.NET Core apps in Development: do not inject the script that reloads open pages after "
                            "each update or restart (and swaps stylesheets saved under wwwroot)")
    profile = watch.add_mutually_exclusive_group()
    profile.add_argument("--launch-profile", metavar="NAME",
                         help="the profile of Properties/launchSettings.json to run with, as `dotnet run "
                              "--launch-profile` (default: the first profile whose commandName is Project)")
    profile.add_argument("--no-launch-profile", action="store_true",
                         help="ignore Properties/launchSettings.json, as `dotnet run --no-launch-profile`")
    watch.add_argument("app_args", nargs="*", help="arguments for the app (after --)")
    watch.set_defaults(func=_watch)
    delta = sub.add_parser("delta", help="write the EnC delta between two builds (1.meta, 1.il, 1.pdb)")
    delta.add_argument("old")
    delta.add_argument("new")
    delta.add_argument("-o", "--output", required=True)
    delta.set_defaults(func=_delta)
    raw = list(argv if argv is not None else sys.argv[1:])
    # everything after `--` is the app's, whatever it looks like (argparse would take options among it for ours)
    ours, app_args = (raw[:raw.index("--")], raw[raw.index("--") + 1:]) if "--" in raw else (raw, [])
    args = parser.parse_args(ours)
    if args.command == "watch":
        args.app_args = list(args.app_args) + app_args
    args.argv = raw  # to run again on a restart
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
