"""The ``movierec bench index`` command: options in, the table printed, the JSON and the plot written."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Any

from movierec.errors import ParamsError
from movierec.models.index_bench_options import KINDS, BenchOptions
from movierec.models.index_rules import IndexRules

SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_count(text: str) -> int:
    """``"100000"``, ``"100k"``, ``"1m"`` or ``"1_000_000"`` as an integer.

    Raises:
        ValueError: not a count.
    """
    value = text.strip().lower().replace("_", "").replace(",", "")
    scale = SUFFIXES.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in SUFFIXES else value
    return int(float(number) * scale) if scale > 1 else int(number)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (defaults: :class:`BenchOptions`; rules: ``params.yaml``)."""
    default = BenchOptions()
    p.add_argument(
        "--sizes",
        default="100k,1m",
        help="catalogue sizes, comma-separated (k and m suffixes allowed; a size whose estimated peak memory "
        "does not fit --max-memory-share of the memory available is skipped and listed as such) (default: %(default)s)",
    )
    p.add_argument("--dim", type=int, default=default.dim, help="embedding width (default: %(default)s)")
    p.add_argument("--k", type=int, default=default.k, help="results per query; recall@k (default: %(default)s)")
    p.add_argument("--queries", type=int, default=default.queries, help="tuning and evaluation queries, each")
    p.add_argument("--batch", type=int, default=default.batch, help="queries per batch for throughput")
    p.add_argument("--repeats", type=int, default=default.repeats, help="repetitions, each with the next seed")
    p.add_argument("--seed", type=int, default=default.seed, help="first seed (default: %(default)s)")
    p.add_argument("--indexes", default=",".join(KINDS), help="which indexes, comma-separated (default: %(default)s)")
    p.add_argument(
        "--threads",
        default="1",
        help="threads per single query, comma-separated; each is timed, the first is the table's (the service: "
        "1 per worker) (default: %(default)s)",
    )
    p.add_argument(
        "--batch-threads", type=int, default=default.batch_threads, help="threads for builds and batches (default: all)"
    )
    p.add_argument("--target-recall", type=float, help="recall@k each index is tuned to (default: index.target_recall)")
    p.add_argument("--themes", type=int, default=default.themes, help="clusters in the synthetic embedding space")
    p.add_argument(
        "--max-memory-share",
        type=float,
        default=default.max_memory_share,
        help="of the available memory a size may use",
    )
    p.add_argument("--faiss-lists-per-sqrt", type=float, help="override index.rules.faiss_lists_per_sqrt")
    p.add_argument("--scann-leaves-per-sqrt", type=float, help="override index.rules.scann_leaves_per_sqrt")
    p.add_argument("--hnsw-m", type=int, help="override index.rules.hnsw_m")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="write every number as JSON here")
    p.add_argument("--plot", metavar="PATH", help="write recall against p99 latency as a PNG here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def options_from(args: argparse.Namespace, index: dict[str, Any]) -> BenchOptions:
    """The run's options from the parsed arguments and the checked ``index`` section.

    Raises:
        ParamsError: a size is not a count or an option is out of range.
    """
    try:
        sizes = tuple(parse_count(s) for s in args.sizes.split(",") if s.strip())
    except ValueError:
        raise ParamsError(f"--sizes must be counts like 100k,1m; got {args.sizes!r}") from None
    try:
        threads = tuple(int(t) for t in str(args.threads).split(",") if t.strip())
    except ValueError:
        raise ParamsError(f"--threads must be counts like 1 or 1,2; got {args.threads!r}") from None
    rules = IndexRules.from_params(index).replace(
        faiss_lists_per_sqrt=args.faiss_lists_per_sqrt,
        scann_leaves_per_sqrt=args.scann_leaves_per_sqrt,
        hnsw_m=args.hnsw_m,
    )
    options = BenchOptions(
        sizes=sizes,
        dim=args.dim,
        k=args.k,
        queries=args.queries,
        batch=args.batch,
        repeats=args.repeats,
        seed=args.seed,
        indexes=tuple(s.strip() for s in args.indexes.split(",") if s.strip()),
        threads=threads,
        batch_threads=args.batch_threads,
        target_recall=args.target_recall if args.target_recall is not None else float(index["target_recall"]),
        themes=args.themes,
        max_memory_share=args.max_memory_share,
        rules=rules,
    )
    try:
        options.check()
    except ValueError as exc:
        raise ParamsError(str(exc)) from None
    return options


def command_of(options: BenchOptions) -> str:
    """The command that repeats this run (every measured option spelled out; rules from params.yaml
    unless overridden here)."""
    rules = options.rules
    parts = [
        f"--sizes {','.join(str(n) for n in options.sizes)}",
        f"--dim {options.dim} --k {options.k} --queries {options.queries} --batch {options.batch}",
        f"--repeats {options.repeats} --seed {options.seed} --indexes {','.join(options.indexes)}",
        f"--threads {','.join(map(str, options.threads))} --batch-threads {options.batch_threads}",
        f"--target-recall {options.target_recall} --themes {options.themes}",
        f"--faiss-lists-per-sqrt {rules.faiss_lists_per_sqrt:g} --scann-leaves-per-sqrt {rules.scann_leaves_per_sqrt:g}",
        f"--hnsw-m {rules.hnsw_m}",
    ]
    return "movierec bench index " + " ".join(parts)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    from movierec.models.index_bench import available_bytes

    model = ""
    if Path("/proc/cpuinfo").exists():
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    total = 0
    if Path("/proc/meminfo").exists():
        first = Path("/proc/meminfo").read_text(encoding="ascii", errors="replace").splitlines()[0]
        total = int(first.split()[1]) * 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": total,
        "available_bytes_at_start": available_bytes(),
        # other work on the machine skews latencies: the 1, 5 and 15 minute load averages
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def bench_index(args: argparse.Namespace, index: dict[str, Any]) -> dict[str, Any]:
    """Run the benchmark, print the table and the targets, write the JSON and the plot.

    Returns:
        The report written to ``--json``.
    """
    from movierec.io import atomic_file, write_json
    from movierec.models.index_bench import run_index_bench
    from movierec.models.index_bench_report import format_table, format_targets, judge, plot_recall_latency, summarize

    options = options_from(args, index)
    host = machine()
    raw = run_index_bench(options, progress=not args.no_progress)
    host["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarize(raw["rows"]) if raw["rows"] else []
    verdict = judge(summary, options.rules.approximate)
    report = {
        "command": command_of(options),
        "machine": host,
        **raw,
        "summary": summary,
        "targets": verdict,
    }
    print(
        f"index benchmark: {options.dim}-d synthetic embeddings ({options.themes} themes), k={options.k}, "
        f"{options.queries} queries, {options.repeats} repetition(s) (seeds {options.seed}-"
        f"{options.seed + options.repeats - 1}); one query at a time on {options.threads[0]} thread(s), batches of "
        f"{options.batch} on {options.batch_threads}; search settings tuned to recall {options.target_recall}"
    )
    print(format_table(summary))
    for skipped in (d for d in raw["sizes"] if not d["run"]):
        print(
            f"{skipped['n_items']:,} items skipped: estimated peak {skipped['estimated_peak_bytes'] / 2**30:.1f} GiB "
            f"of {skipped['available_bytes'] / 2**30:.1f} GiB available"
        )
    print(format_targets(verdict))
    if args.json_path:
        write_json(args.json_path, report)
        print(f"wrote {args.json_path}")
    if args.plot and raw["rows"]:
        with atomic_file(args.plot, "wb") as handle:
            plot_recall_latency(raw["rows"], handle, options.target_recall)
        print(f"wrote {args.plot}")
    return report
