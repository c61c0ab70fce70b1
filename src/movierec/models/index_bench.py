"""``movierec bench index``: brute force, FAISS IVF, FAISS HNSW and ScaNN on synthetic catalogues.

For each catalogue size and each repetition (a new seed: new embeddings, new index training),
one run:

1. draws item embeddings and two query sets from one seeded structure
   (:mod:`movierec.models.index_bench_data`) and computes the exact top-k of both by brute force;
2. builds each index (timed, all cores, as an offline build runs) and records its memory;
3. tunes its search setting on the *tuning* queries: from the cheapest setting up, the first
   whose recall@k reaches the target plus a margin (for ScaNN, per re-scoring depth; the
   fastest of those is kept), each rung also timed on single queries (the recall-latency curve);
4. measures the chosen setting on the *evaluation* queries: recall@k against brute force,
   single-query latency (p50, p99) with each of ``threads`` thread counts (1: as a service
   worker asks, one thread per library per worker), and
   throughput in batches of ``batch`` queries with ``batch_threads`` threads.

:mod:`movierec.models.index_bench_report` aggregates the repetitions (mean, min, max), checks
the targets and prints the table; the CLI writes the JSON and the plot.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from movierec.models.index_bench_backends import Brute, batches, make
from movierec.models.index_bench_data import synthetic_catalogue
from movierec.models.index_bench_options import BenchOptions

TUNING_MARGIN = 0.02  # tuned this far above the target, so the fresh evaluation queries still reach it
LADDER_QUERIES = 200  # single queries timed per rung of a tuning ladder (for the recall-latency curve)
WARMUP_QUERIES = 20


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (exact top-k rows) found in the same row of ``found``.

    Negative entries of ``found`` are empty slots and never count; 1.0 for no rows.
    """
    if truth.size == 0:
        return 1.0
    hits = [np.intersect1d(f[f >= 0], t).size / t.size for f, t in zip(found, truth)]
    return float(np.mean(hits))


def percentiles_ms(seconds: list[float], cpu_seconds: list[float] | None = None) -> dict[str, float]:
    """p50, p99 and mean of per-query wall seconds, in milliseconds; with ``cpu_seconds``
    also the p99 of the CPU time the queries took (what other work on the machine cannot inflate)."""
    values = np.asarray(seconds, np.float64) * 1000.0
    out = {
        "p50_ms": round(float(np.percentile(values, 50)), 4),
        "p99_ms": round(float(np.percentile(values, 99)), 4),
        "mean_ms": round(float(values.mean()), 4),
    }
    if cpu_seconds is not None:
        out["cpu_p99_ms"] = round(float(np.percentile(np.asarray(cpu_seconds, np.float64) * 1000.0, 99)), 4)
    return out


@contextlib.contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """BLAS and OpenMP (FAISS) limited to ``threads`` threads inside the block."""
    import faiss
    from threadpoolctl import threadpool_limits

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def single_query_seconds(
    search_one: Callable[[np.ndarray, int], Any], queries: np.ndarray, k: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each query asked alone, after :data:`WARMUP_QUERIES` unmeasured
    ones. CPU: the calling thread's, which is all of a query's work when it runs on one thread
    (and neither other processes nor idle library threads spinning can inflate it)."""
    for query in queries[:WARMUP_QUERIES]:
        search_one(query, k)
    wall, cpu = [], []
    for query in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        search_one(query, k)
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return wall, cpu


def batch_search(backend: Any, queries: np.ndarray, k: int, size: int, threads: int) -> tuple[np.ndarray, float]:
    """Every query in batches of ``size``: ``(rows, queries per second)``."""
    search = backend.search_batch_parallel if threads > 1 and hasattr(backend, "search_batch_parallel") else None
    found = []
    start = time.perf_counter()
    for chunk in batches(queries, size):
        found.append(search(chunk, k) if search else backend.search(chunk, k))
    seconds = time.perf_counter() - start
    return np.concatenate(found), len(queries) / max(seconds, 1e-9)


def proc_bytes(path: str, key: str) -> int:
    """A ``key: N kB`` line of a Linux ``/proc`` file, in bytes (0 when there is none)."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes() -> int:
    """This process's resident memory."""
    return proc_bytes("/proc/self/status", "VmRSS")


def tune(backend: Any, queries: np.ndarray, truth: np.ndarray, options: BenchOptions) -> tuple[dict, list[dict]]:
    """The fastest search setting whose recall@k on ``queries`` reaches the target plus
    :data:`TUNING_MARGIN`, and every rung tried (recall, single-query p50/p99).

    Rungs are tried from the cheapest up, and a group of rungs (ScaNN: one re-scoring depth)
    stops at its first success. When nothing reaches the aim, the most accurate rung is kept.
    """
    aim = min(options.target_recall + TUNING_MARGIN, 1.0)
    tried: list[dict[str, Any]] = []
    done_groups: set[Any] = set()
    for setting in backend.ladder():
        group = setting.get("reorder")
        if group in done_groups:
            continue
        backend.use(setting)
        with thread_limit(options.batch_threads):
            found, _ = batch_search(backend, queries, options.k, options.batch, options.batch_threads)
        with thread_limit(options.threads[0]):
            wall, cpu = single_query_seconds(backend.search_one, queries[:LADDER_QUERIES], options.k)
        timing = percentiles_ms(wall, cpu if options.threads[0] == 1 else None)
        row = {**setting, "recall": round(recall_at_k(found, truth), 4), **timing}
        tried.append(row)
        if row["recall"] >= aim:
            done_groups.add(group)
            if group is None:
                break
    good = [row for row in tried if row["recall"] >= aim]
    best = min(good, key=lambda row: row["p50_ms"]) if good else max(tried, key=lambda row: row["recall"])
    return {key: best[key] for key in backend.ladder()[0]}, tried


def measure(backend: Any, eval_queries: np.ndarray, truth: np.ndarray, options: BenchOptions) -> dict[str, Any]:
    """Recall@k, single-query latency (per thread count) and batch throughput of ``backend``
    as it is set now; the headline latency is the first thread count's."""
    with thread_limit(options.batch_threads):
        found, qps = batch_search(backend, eval_queries, options.k, options.batch, options.batch_threads)
    by_threads = {}
    for threads in options.threads:
        with thread_limit(threads):
            wall, cpu = single_query_seconds(backend.search_one, eval_queries, options.k)
        by_threads[str(threads)] = percentiles_ms(wall, cpu if threads == 1 else None)  # CPU: one thread's work
    return {
        "recall": round(recall_at_k(found, truth), 4),
        **by_threads[str(options.threads[0])],
        "latency_by_threads": by_threads,
        "batch_qps": round(qps, 1),
    }


def run_one(n_items: int, repeat: int, options: BenchOptions, progress: bool) -> list[dict[str, Any]]:
    """Every chosen index over one seeded catalogue of ``n_items`` items: one row per index."""
    seed = options.seed + repeat
    items, tune_queries, eval_queries = synthetic_catalogue(n_items, options.dim, options.queries, seed, options.themes)
    exact = Brute(options.rules, options.k)
    exact.build(items)
    with thread_limit(options.batch_threads):
        truth_tune = exact.search(tune_queries, options.k)
        truth_eval = exact.search(eval_queries, options.k)
    rows = []
    for kind in options.indexes:
        backend = exact if kind == "brute" else make(kind, options.rules, options.k)
        before = rss_bytes()
        label = f"{kind} {n_items:,} items (seed {seed})"
        with (
            tqdm(total=n_items, desc=f"build {label}", unit="item", file=sys.stderr, disable=not progress) as bar,
            thread_limit(options.batch_threads),
        ):
            start = time.perf_counter()
            backend.build(items, progress=bar)
            build_seconds = time.perf_counter() - start
        row: dict[str, Any] = {
            "n_items": n_items,
            "index": kind,
            "repeat": repeat,
            "seed": seed,
            "build_seconds": round(build_seconds, 3),
            "index_bytes": backend.index_bytes(),
            "rss_growth_bytes": max(rss_bytes() - before, 0),
            "structure": backend.structure(),
        }
        if kind == "brute":
            row["setting"], row["ladder"] = {}, []
        else:
            if progress:
                print(f"tuning {label}", file=sys.stderr, flush=True)
            row["setting"], row["ladder"] = tune(backend, tune_queries, truth_tune, options)
            backend.use(row["setting"])
        row.update(measure(backend, eval_queries, truth_eval, options))
        rows.append(row)
        del backend
    return rows


def estimated_peak_bytes(n_items: int, options: BenchOptions, per_item: dict[str, float]) -> int:
    """A size's peak memory, extrapolated from the bytes per item measured at a smaller size
    (or, before any, from the indexes' layouts): the embeddings, the largest index and its
    build's scratch copy, and one block of brute-force scores."""
    vector = options.dim * 4
    layout = {
        "brute": 0.0,
        "faiss-ivf": vector + 8,
        "faiss-hnsw": vector + 2 * options.rules.hnsw_m * 4 * 1.1 + 12,
        "scann": 2.2 * vector,
    }
    largest = max(per_item.get(kind, layout[kind]) for kind in options.indexes)
    return int(n_items * (2 * vector + 2 * largest) + Brute.QUERY_CHUNK * n_items * 4 * 2)


def available_bytes() -> int:
    """The memory the kernel says is available for new work (``MemAvailable``)."""
    return proc_bytes("/proc/meminfo", "MemAvailable")


def run_index_bench(options: BenchOptions, progress: bool = True) -> dict[str, Any]:
    """Measure every size and repetition; return the raw rows and the memory decisions.

    Each size runs only when its estimated peak memory fits ``max_memory_share`` of the
    memory available when it starts; otherwise it is listed under ``skipped`` with both
    numbers.

    Returns:
        ``{"options", "rows", "sizes"}``: the options (rules included), one row per
        (size, repetition, index), and one memory decision per size.
    """
    options.check()
    rows: list[dict[str, Any]] = []
    decisions = []
    per_item: dict[str, float] = {}
    for n_items in sorted(options.sizes):
        estimate = estimated_peak_bytes(n_items, options, per_item)
        available = available_bytes()
        runs = available == 0 or estimate <= options.max_memory_share * available
        decisions.append(
            {"n_items": n_items, "estimated_peak_bytes": estimate, "available_bytes": available, "run": runs}
        )
        if not runs:
            print(
                f"skipping {n_items:,} items: estimated peak {estimate / 2**30:.1f} GiB is over "
                f"{options.max_memory_share:.0%} of the {available / 2**30:.1f} GiB available",
                file=sys.stderr,
            )
            continue
        for repeat in range(options.repeats):
            found = run_one(n_items, repeat, options, progress)
            rows.extend(found)
            for row in found:
                per_item[row["index"]] = max(per_item.get(row["index"], 0.0), row["index_bytes"] / n_items)
    settings = asdict(options)
    settings["rules"] = options.rules.as_dict()
    return {"options": settings, "rows": rows, "sizes": decisions}
