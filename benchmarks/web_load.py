"""Edits under load: `hotreload watch --json` serves a copy of tests/web_app while a load client keeps requesting
`/` and `/items`, and edits land one after another.

The app listens on a free port of 127.0.0.1 (its launch profile's URL and `--urls` both set to it). The load client
is pure Python: `--threads` threads, each with its own keep-alive `http.client` connection, alternating `/` and
`/items`, paced to `--rate` requests per second in all (0: as fast as they go), bounded by `--max-requests` and
`--max-seconds`. A request fails when it raises (refused, reset, timed out) or answers anything but 200.

Edit k (k = 1..N, `--edits`) is a plain write of Handlers.fs: odd k rewrite the string `Handlers.hello` returns
("Hello from F# (edit k)"), even k add an item {Id = k; Name = "added k"} to the list `Handlers.items` returns (the
JSON `/items` serves). After each save the script waits for hotreload's outcome event (`applied`, or `built`,
`refused`, `compile-error`, `failed`), then for the first response of the load client with the new body (its
arrival time minus the save's is the edit's latency), then reads `/count`: it counts its own requests in memory, so
it must keep counting from edit to edit (a restart would start it again). Only then does the next edit land.

Reported: requests (total, failed, per second), save -> `applied` event and save -> first new response p50/p90
(also without the first save, which may wait for the warm-up of hotreload's compiler, begun as the app started),
request latency p50/p99/max between the first save and the last edit's new response, every edit's record. The exit
code is 1 unless every request succeeded, every save ended in `applied`, every new body was served and `/count`
kept counting. `tests/e2e/test_web_load.py` runs `run()` with 20 edits and asserts the same.

The watcher runs in its own process group, ended as a whole on every way out (also on errors, Ctrl-C and SIGTERM);
a final `ps` check reports (and kills) anything of ours still running.

    .venv/bin/python benchmarks/web_load.py [--edits 20] [--threads 2] [--rate 200] [--json out.json]
    .venv/bin/python benchmarks/web_load.py --quick --json out.json      # CI: 6 edits
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script it is sys.path[0]; imported (the e2e test), it goes last
    sys.path.append(str(HERE))

import latency  # the watcher, ps check, percentiles and machine note of the latency benchmark

REPO = HERE.parent
WEB_APP = REPO / "tests" / "web_app"
START_TIMEOUT_S = 300.0
OUTCOME_TIMEOUT_S = 120.0  # save -> hotreload's outcome event
SERVED_TIMEOUT_S = 30.0  # outcome -> the first response with the new body
HTTP_TIMEOUT_S = 10.0
OUTCOMES = ("applied", "built", "refused", "compile-error", "failed")

_HELLO = re.compile(r'(let hello \(\) = )"([^"\n]*)"')
_ITEMS = re.compile(r"(let items \(\) : Item list = \[)(.*)(\])")


@dataclass
class Edit:
    """One save: what it changes, and how to recognise the response that shows it."""

    k: int
    kind: str  # "hello" or "items"
    path: str  # the endpoint that shows it
    expected: Any  # the body ("hello") or the parsed JSON ("items")

    def matches(self, body: bytes) -> bool:
        text = body.decode("utf-8", "replace")
        if self.kind == "hello":
            return bool(text == self.expected)
        try:
            return bool(json.loads(text) == self.expected)
        except ValueError:
            return False


class Tracker:
    """Told of every response by the load threads: the arrival of the first one showing the current edit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.edit: Edit | None = None
        self.first: dict[int, float] = {}
        self.seen = threading.Event()
        self.old_after_new = 0  # responses still showing the old body after the new one was served (informational)

    def expect(self, edit: Edit) -> None:
        with self.lock:
            self.edit = edit
            self.seen.clear()

    def observe(self, path: str, status: int, body: bytes, arrived: float) -> None:
        edit = self.edit
        if edit is None or path != edit.path or status != 200:
            return
        matched = edit.matches(body)
        with self.lock:
            if matched and edit.k not in self.first:
                self.first[edit.k] = arrived
                self.seen.set()
            elif not matched and edit.k in self.first:
                self.old_after_new += 1


@dataclass
class LoadStats:
    requests: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # (at most the first 20 kept in full)
    failed: int = 0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (sent at, latency s)


class LoadClient:
    """Threads with keep-alive connections requesting `/` and `/items` until stopped or a bound is reached."""

    PATHS = ("/", "/items")

    def __init__(self, port: int, tracker: Tracker, threads: int, rate: float, max_requests: int,
                 max_seconds: float) -> None:
        self.port = port
        self.tracker = tracker
        self.threads = threads
        self.interval = threads / rate if rate > 0 else 0.0  # per thread
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.stats = LoadStats()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.workers: list[threading.Thread] = []
        self.started = 0.0
        self.bound_reached = ""

    def start(self) -> None:
        self.started = time.perf_counter()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            t.start()
            self.workers.append(t)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.workers:
            t.join(HTTP_TIMEOUT_S + 5)

    def running(self) -> bool:
        return any(t.is_alive() for t in self.workers)

    def _take(self) -> bool:
        """Count one more request, or say a bound is reached."""
        with self.lock:
            if self.stats.requests >= self.max_requests:
                self.bound_reached = self.bound_reached or f"{self.max_requests} requests"
                return False
            if time.perf_counter() - self.started > self.max_seconds:
                self.bound_reached = self.bound_reached or f"{self.max_seconds:.0f} s"
                return False
            self.stats.requests += 1
            return True

    def _fail(self, sent: float, path: str, what: str) -> None:
        with self.lock:
            self.stats.failed += 1
            if len(self.stats.failures) < 20:
                self.stats.failures.append({"t": round(sent - self.started, 3), "path": path, "error": what})

    def _run(self, index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        n = index
        next_at = time.perf_counter()
        while not self.stop_event.is_set() and self._take():
            path = self.PATHS[n % 2]
            n += 1
            sent = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                arrived = time.perf_counter()
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                self._fail(sent, path, f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                    conn = None
                self.stop_event.wait(0.05)  # no tight loop against a server that is gone
                continue
            self.stats.samples.append((sent, arrived - sent))  # list.append is atomic
            if response.status != 200:
                self._fail(sent, path, f"HTTP {response.status}")
            self.tracker.observe(path, response.status, body, arrived)
            if self.interval:
                next_at = max(next_at + self.interval, arrived - self.interval)  # no burst to catch up after a stall
                self.stop_event.wait(max(0.0, next_at - time.perf_counter()))
        if conn is not None:
            conn.close()


def http_get(port: int, path: str) -> tuple[int, bytes] | None:
    """One request on its own connection; None when it fails."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def read_count(port: int) -> int | None:
    got = http_get(port, "/count")
    if got is None or got[0] != 200:
        return None
    match = re.search(rb"(\d+)", got[1])
    return int(match.group(1)) if match else None


def copy_app(root: Path, url: str) -> Path:
    """A copy of tests/web_app whose launch profiles listen on free ports ("http", the one used, on `url`)."""
    dest = root / "WebApp"
    shutil.copytree(WEB_APP, dest, ignore=shutil.ignore_patterns("bin", "obj", ".hotreload"))
    settings = dest / "Properties" / "launchSettings.json"
    if settings.exists():
        data = json.loads(settings.read_text(encoding="utf-8-sig"))
        for name, profile in data.get("profiles", {}).items():
            if isinstance(profile, dict) and "applicationUrl" in profile:
                profile["applicationUrl"] = url if name == "http" else f"http://127.0.0.1:{latency.free_port()}"
        settings.write_text(json.dumps(data, indent=2))
    handlers = (dest / "Handlers.fs").read_text(encoding="utf-8")
    if len(_HELLO.findall(handlers)) != 1 or len(_ITEMS.findall(handlers)) != 1:
        raise SystemExit(f"{WEB_APP / 'Handlers.fs'}: expected one `let hello () = \"...\"` and one "
                         "`let items () : Item list = [ ... ]` line to edit")
    return dest / "WebApp.fsproj"


def make_edit(k: int, items: list[Any]) -> tuple[Edit, Callable[[str], str]]:
    """Edit k and the rewrite of Handlers.fs that makes it from the previous edit's text (`items`: what /items
    serves now; an items edit adds one to the list, so they add up)."""
    if k % 2:
        body = f"Hello from F# (edit {k})"
        return Edit(k, "hello", "/", body), lambda text: _HELLO.sub(lambda m: f'{m.group(1)}"{body}"', text, 1)
    expected = [*items, {"id": k, "name": f"added {k}"}]

    def add_item(text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            return f'{m.group(1)}{m.group(2).rstrip()}; {{ Id = {k}; Name = "added {k}" }} {m.group(3)}'
        return _ITEMS.sub(sub, text, 1)

    return Edit(k, "items", "/items", expected), add_item


def event_of(line: str) -> dict[str, Any] | None:
    """hotreload's JSON status line as a dict; None for the app's own output."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "event" in record else None


def is_event(*names: str) -> Callable[[str], bool]:
    def match(line: str) -> bool:
        record = event_of(line)
        return record is not None and record["event"] in names
    return match


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _pct(values: Sequence[float], q: float) -> float | None:
    value = latency.percentile(values, q)
    return None if value is None else round(value, 4)


def run(edits: int = 20, threads: int = 2, rate: float = 200.0, max_requests: int = 500_000,
        max_seconds: float = 900.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the watcher and the load, land `edits` edits, stop everything; the results as a JSON-able dict (its
    "ok" says whether every check passed, "problems" what did not)."""
    port = latency.free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1", PYTHONUNBUFFERED="1")
    tracker = Tracker()
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    doc: dict[str, Any] = {"edits_asked": edits, "threads": threads, "rate_per_s": rate,
                           "max_requests": max_requests, "max_seconds": max_seconds, "url": url}
    load: LoadClient | None = None
    watcher: latency.Watcher | None = None
    with tempfile.TemporaryDirectory(prefix="hotreload-web-load-") as tmp:
        root = Path(tmp)
        try:
            project = copy_app(root, url)
            tool = latency.Tool("hotreload", "hotreload watch --json", WEB_APP, project.name, "Handlers.fs",
                                '"event": "watching"', None, lambda p: [], dotnet_watch=False)
            argv = [sys.executable, "-m", "hotreload", "watch", str(project), "--json", "--restart", "never",
                    "--", "--urls", url]
            watcher = latency.Watcher(tool, project.parent, env, argv)
            log(f"hotreload watch --json on a copy of tests/web_app at {url}; waiting for the first build...")
            if (watcher.wait_for(is_event("ready"), 0, START_TIMEOUT_S) is None
                    or not _wait_serving(watcher, port, START_TIMEOUT_S)):
                raise RuntimeError(f"the app did not come up in {START_TIMEOUT_S:.0f} s; last lines:\n"
                                   + watcher.tail())
            got = http_get(port, "/items")
            if got is None or got[0] != 200 or not got[1].lstrip().startswith(b"["):
                raise RuntimeError(f"/items did not answer a JSON list: {got!r}")
            items: list[Any] = json.loads(got[1])
            count = read_count(port)
            counts = [count]
            load = LoadClient(port, tracker, threads, rate, max_requests, max_seconds)
            load.start()
            time.sleep(2.0)  # the load runs before the first edit too
            handlers = project.parent / "Handlers.fs"
            window_start = time.perf_counter()
            for k in range(1, edits + 1):
                if not load.running():
                    problems.append(f"the load client stopped before edit {k} ({load.bound_reached or 'done'})")
                    break
                edit, rewrite = make_edit(k, items)
                if edit.kind == "items":
                    items = edit.expected
                text = handlers.read_text(encoding="utf-8")
                new_text = rewrite(text)
                if new_text == text:
                    raise RuntimeError(f"edit {k} changed nothing in Handlers.fs")
                tracker.expect(edit)
                start = watcher.mark()
                with open(handlers, "w", encoding="utf-8") as f:
                    f.write(new_text)
                saved = time.perf_counter()
                record: dict[str, Any] = {"edit": k, "kind": edit.kind}
                outcome = watcher.wait_for(is_event(*OUTCOMES), start, OUTCOME_TIMEOUT_S)
                if outcome is None:
                    record["outcome"] = None
                    problems.append(f"edit {k}: no outcome event in {OUTCOME_TIMEOUT_S:.0f} s")
                else:
                    event = event_of(outcome[1]) or {}
                    record["outcome"] = event.get("event")
                    record["event_s"] = round(outcome[0] - saved, 4)
                    record["generation"] = event.get("generation")
                    record["stages_ms"] = event.get("ms")
                    if record["outcome"] != "applied":
                        problems.append(f"edit {k}: {record['outcome']}: {event.get('message', '')[:300]}")
                if tracker.seen.wait(SERVED_TIMEOUT_S if record["outcome"] == "applied" else 1.0):
                    record["served_s"] = round(tracker.first[k] - saved, 4)
                else:
                    record["served_s"] = None
                    problems.append(f"edit {k}: the new {edit.path} body was never served")
                count = read_count(port)
                record["count"] = count
                if count is None or (counts[-1] is not None and count <= counts[-1]):
                    problems.append(f"edit {k}: /count went from {counts[-1]} to {count}: state not kept")
                counts.append(count)
                records.append(record)
                shown = "-" if record["served_s"] is None else f"{record['served_s']:.3f} s"
                log(f"  edit {k:>2}/{edits} {edit.kind:<5} {record['outcome'] or 'no outcome':<8} "
                    f"new {edit.path:<6} served after {shown:>8}  (/count {count}, {load.stats.requests} requests, "
                    f"{load.stats.failed} failed)")
                time.sleep(0.2)
            window_end = time.perf_counter()
            time.sleep(1.0)  # a little load after the last edit too
        finally:
            if load is not None:
                load.stop()
            if watcher is not None:
                cut = watcher.mark()  # what stopping it prints (the app's exit) is not part of the run
                watcher.stop()
                events = [e for e in (event_of(line) for line in watcher.texts()[:cut]) if e is not None]
                restarts = [e for e in events if e["event"] in ("restart", "restarted", "app-exit")]
                if restarts:
                    problems.append(f"the app restarted or exited: {[e['message'] for e in restarts]}")
                latency.leftovers(root, [watcher.pgid])
    assert load is not None
    stats = load.stats
    window = [lat for sent, lat in stats.samples if window_start <= sent <= window_end]
    served = [r["served_s"] for r in records if r.get("served_s") is not None]
    applied = [r["event_s"] for r in records if r.get("event_s") is not None]
    elapsed = max(window_end - window_start, 1e-9)
    if stats.failed:
        problems.append(f"{stats.failed} failed request(s), e.g. {stats.failures[:3]}")
    doc.update({
        "ok": not problems and len(records) == edits,
        "problems": problems,
        "requests": stats.requests,
        "failed_requests": stats.failed,
        "failures": stats.failures,
        "requests_during_edits": len(window),
        "requests_per_s": round(len(window) / elapsed, 1),
        "edits": len(records),
        "applied": sum(r.get("outcome") == "applied" for r in records),
        "served_p50_s": _pct(served, 50),
        "served_p90_s": _pct(served, 90),
        "served_after_first_p50_s": _pct(served[1:], 50),  # the first may wait for the compiler's warm-up
        "served_after_first_p90_s": _pct(served[1:], 90),
        "applied_event_p50_s": _pct(applied, 50),
        "applied_event_p90_s": _pct(applied, 90),
        "request_p50_ms": _ms(latency.percentile(window, 50)),
        "request_p99_ms": _ms(latency.percentile(window, 99)),
        "request_max_ms": _ms(max(window, default=None)),
        "old_body_after_new": tracker.old_after_new,
        "load_bound_reached": load.bound_reached or None,
        "counts": [r.get("count") for r in records],
        "records": records,
        "machine": latency.machine(),
    })
    return doc


def _wait_serving(watcher: latency.Watcher, port: int, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and watcher.proc.poll() is None:
        got = http_get(port, "/")
        if got is not None and got[0] == 200:
            return True
        time.sleep(0.2)
    return False


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM takes the Ctrl-C path, so the finally blocks stop the load and the watcher's process group."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--edits", type=int, default=20, help="edits, one after another (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="load threads, one connection each (default 2)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="requests per second in all (default 200; 0: as fast as the threads go)")
    parser.add_argument("--max-requests", type=int, default=500_000, help="load bound: requests (default 500000)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="load bound: seconds (default 900)")
    parser.add_argument("--quick", action="store_true", help="6 edits, at most 300 s of load (CI)")
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.edits, args.max_seconds = min(args.edits, 6), min(args.max_seconds, 300.0)
    if args.edits < 1 or args.threads < 1:
        parser.error("--edits and --threads must be at least 1")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        doc = run(args.edits, args.threads, args.rate, args.max_requests, args.max_seconds,
                  log=lambda text: print(text, flush=True))
    except KeyboardInterrupt:
        print("interrupted; load and watcher stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"web_load: {exc}", file=sys.stderr)
        return 1

    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    print()
    print(f"requests: {doc['requests']} in all, {doc['failed_requests']} failed; {doc['requests_during_edits']} "
          f"during the edits ({doc['requests_per_s']}/s, {args.threads} thread(s))")
    print(f"edits: {doc['edits']}, applied {doc['applied']}; /count after each: {doc['counts']}")
    print(f"save -> applied event: p50 {s(doc['applied_event_p50_s'])}, p90 {s(doc['applied_event_p90_s'])}")
    print(f"save -> first new response: p50 {s(doc['served_p50_s'])}, p90 {s(doc['served_p90_s'])} (after the "
          f"first edit: p50 {s(doc['served_after_first_p50_s'])}, p90 {s(doc['served_after_first_p90_s'])})")
    print(f"request latency during the edits: p50 {doc['request_p50_ms']} ms, p99 {doc['request_p99_ms']} ms, "
          f"max {doc['request_max_ms']} ms")
    for problem in doc["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
