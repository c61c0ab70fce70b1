"""What the storage costs a request, per backend: ``python -m movierec.serving.bench_storage``.

Times, in one process and one run, the calls a request makes on the service's storage:

- ``items_of``: a user's feedback items, as every model request asks for them, when no
  feedback changed since (the steady state: the memo answers after the change signal) and
  right after feedback changed (the memo is dropped: one read of the database);
- ``add``: one feedback event (rate-limit count, insert, commit, change signal).

for SQLite (the change counter in shared memory), PostgreSQL with ``query`` (a read per
request, the default) and PostgreSQL with ``notify`` (LISTEN/NOTIFY); and, for ``notify``,
how long after a write another worker's read still misses it (the window that mode leaves). Without ``--database-url`` a throwaway
PostgreSQL server is started from Debian's binaries (see
:mod:`~movierec.serving.postgres_cluster`) on loopback, on this machine, so its CPU is
shared with the benchmark: a server on another host costs the service a network round trip
instead. Prints microseconds per call (wall clock and this process's CPU).

With ``--serve BUNDLE`` it measures the whole service instead: ``movierec bench serve`` (wrk)
against ``movierec serve --workers 2`` on the bundle, once per backend, and prints each
scenario's requests/s side by side.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec.serving.settings import Settings
from movierec.serving.storage import open_storage
from movierec.serving.store import EventStore

USER = 1  # the user whose items are read (given FEEDBACK events first)
FEEDBACK = 20


def _timed(call: Callable[[int], Any], n: int) -> dict[str, float]:
    """Microseconds per call of ``call(i)`` for i in range(n), wall clock and process CPU."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        call(i)
    return {
        "wall_us": round((time.perf_counter() - wall) / n * 1e6, 2),
        "cpu_us": round((time.process_time() - cpu) / n * 1e6, 2),
    }


def measure(location: str | Path, settings: Settings, calls: int) -> dict[str, dict[str, float]]:
    """The three costs on the storage at ``location`` (a SQLite path or a PostgreSQL URL)."""
    storage = open_storage(settings, location=location)
    store = EventStore(storage, settings)
    try:
        for item in range(FEEDBACK):
            store.add(USER, item, None, "view", item)
        deadline = time.monotonic() + 5
        while storage.changes.now() is None and settings.feedback_signal == "notify" and time.monotonic() < deadline:
            time.sleep(0.01)  # PostgreSQL: the listener connected
        store.items_of(USER)
        steady = _timed(lambda _: store.items_of(USER), calls)

        def after_change(_: int) -> None:
            storage.changes.advance()  # as after a commit: the next read asks the database
            store.items_of(USER)

        changed = _timed(after_change, max(1, calls // 10))
        added = _timed(lambda i: store.add(10_000 + i, 7, None, "view", i), max(1, calls // 20))
    finally:
        store.close()
        storage.close()
    return {"items_of (no change)": steady, "items_of (after a change)": changed, "add": added}


def notify_window(url: str, writes: int) -> dict[str, float]:
    """How long after a write returns another worker's next read still misses it (``notify``):
    milliseconds from ``add`` returning in one store until ``items_of`` in a second store (another
    connection, as another replica would be) shows the item, and the share of reads made at once
    that missed it."""
    settings = Settings(database_url=url, feedback_signal="notify")
    writer, reader = (EventStore(open_storage(settings, location=url), settings) for _ in range(2))
    delays, missed = [], 0
    try:
        deadline = time.monotonic() + 5
        while reader.storage.changes.now() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        for n in range(writes):
            user = 50_000 + n
            reader.items_of(user)  # remembered as empty
            writer.add(user, 1, None, "view", n)
            written = time.perf_counter()
            missed += reader.items_of(user) != [1]
            while reader.items_of(user) != [1]:
                time.sleep(0.0001)
            delays.append((time.perf_counter() - written) * 1000)
    finally:
        for store in (writer, reader):
            store.storage.close()
    delays.sort()
    return {
        "writes": writes,
        "missed_by_an_immediate_read": missed,
        "delay_ms_median": round(delays[len(delays) // 2], 3),
        "delay_ms_p99": round(delays[int(len(delays) * 0.99) - 1], 3),
        "delay_ms_max": round(delays[-1], 3),
    }


def run(database_url: str | None, calls: int) -> dict[str, Any]:
    """Measure every backend (starting a throwaway PostgreSQL server unless ``database_url`` is given)."""
    from movierec.serving.postgres_cluster import ThrowawayPostgres, postgres_bin

    server = None
    if database_url is None:
        folder = postgres_bin()
        if folder is None:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql), or pass --database-url")
        server = ThrowawayPostgres(folder)
    results: dict[str, Any] = {"calls": calls}
    try:
        with tempfile.TemporaryDirectory(prefix="movierec-bench-storage-") as tmp:
            results["sqlite"] = measure(Path(tmp) / "bench.sqlite", Settings(database_path=Path(tmp) / "x"), calls)
        for signal in ("query", "notify"):
            url = server.new_database()[1] if server is not None else database_url
            settings = Settings(database_url=url, feedback_signal=signal)
            results[f"postgresql ({signal})"] = measure(url, settings, calls)
        results["notify window"] = notify_window(server.new_database()[1] if server else database_url, 200)
    finally:
        if server is not None:
            server.stop()
    return results


def serve_comparison(bundle: Path, port: int, duration: int, warmup: int, out: Path) -> dict[str, dict[str, float]]:
    """Requests/s of every ``movierec bench serve`` scenario against ``movierec serve --workers 2`` on
    ``bundle``, once per backend (SQLite, PostgreSQL ``query``, PostgreSQL ``notify``) in turn, on a
    throwaway PostgreSQL server; each run's JSON is written into ``out``."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from movierec.serving.postgres_cluster import ThrowawayPostgres, postgres_bin

    folder = postgres_bin()
    if folder is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    out.mkdir(parents=True, exist_ok=True)
    server = ThrowawayPostgres(folder)
    rates: dict[str, dict[str, float]] = {}
    try:
        for name in ("sqlite", "query", "notify"):
            env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEREC_")}
            env.update(
                MOVIEREC_BUNDLE_DIR=str(Path(bundle).resolve()), MOVIEREC_DATABASE_PATH=str(out / f"{name}.sqlite")
            )
            if name != "sqlite":
                env.update(MOVIEREC_DATABASE_URL=server.new_database()[1], MOVIEREC_FEEDBACK_SIGNAL=name)
            with open(out / f"serve-{name}.log", "wb") as log:
                command = [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", "2"]
                process = subprocess.Popen(
                    command, env=env, cwd=out, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            try:
                deadline = time.monotonic() + 300
                while True:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the {name} server did not start; see {out / f'serve-{name}.log'}")
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(1)
                result = out / f"bench-{name}.json"
                bench = [sys.executable, "-m", "movierec.cli", "bench", "serve", "--url", f"http://127.0.0.1:{port}"]
                bench += ["--duration", str(duration), "--warmup", str(warmup), "--json", str(result)]
                subprocess.run(bench, env=env, check=True)
                scenarios = json.loads(result.read_text(encoding="utf-8"))["runs"][0]["scenarios"]
                rates[name] = {scenario: round(row["rps"]) for scenario, row in scenarios.items()}
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)
    finally:
        server.stop()
    return rates


def main(argv: list[str] | None = None) -> int:
    """Command line: print the table (and write JSON with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="python -m movierec.serving.bench_storage",
        description="Microseconds per storage call of a request, per backend (SQLite, PostgreSQL query and "
        "notify), and the window of the notify mode.",
    )
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database to use (default: start a throwaway server with Debian's binaries)",
    )
    parser.add_argument(
        "--calls", type=int, default=20_000, help="items_of calls timed per backend (default: %(default)s)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--serve",
        metavar="BUNDLE",
        help="instead, run `movierec bench serve` against `movierec serve --workers 2` on this bundle once per "
        "backend (needs wrk); each run's JSON goes to --out",
    )
    parser.add_argument("--port", type=int, default=8031, help="the port --serve uses (default: %(default)s)")
    parser.add_argument("--duration", type=int, default=10, help="--serve: seconds per scenario (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="--serve: warm-up seconds (default: %(default)s)")
    parser.add_argument(
        "--out", default="bench-storage", help="--serve: the folder for its files (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.serve:
        rates = serve_comparison(Path(args.serve), args.port, args.duration, args.warmup, Path(args.out))
        print(f"{'scenario':<14}" + "".join(f"{name + ' req/s':>16}" for name in rates))
        for scenario in next(iter(rates.values())):
            print(f"{scenario:<14}" + "".join(f"{rates[name][scenario]:>16}" for name in rates))
        return 0
    results = run(args.database_url, args.calls)
    print(f"{'backend':<22}{'call':<28}{'wall us':>10}{'CPU us':>10}")
    for backend, costs in results.items():
        if backend in ("calls", "notify window"):
            continue
        for call, cost in costs.items():
            print(f"{backend:<22}{call:<28}{cost['wall_us']:>10.2f}{cost['cpu_us']:>10.2f}")
    window = results["notify window"]
    print(
        f"notify: of {window['writes']} writes, {window['missed_by_an_immediate_read']} were missed by another "
        f"worker's read made at once; seen after {window['delay_ms_median']} ms (median), "
        f"{window['delay_ms_p99']} ms (p99), {window['delay_ms_max']} ms (max)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
