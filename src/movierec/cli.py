"""The ``movierec`` command line: one thin subcommand per pipeline step.

Every subcommand reads its hyperparameters from ``params.yaml`` (the section named
after the step) and calls one package function, so DVC, Airflow, notebooks and tests
all run the same code. Paths default to the constants in :mod:`movierec.paths`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec import paths
from movierec.errors import MovierecError
from movierec.params import get, load_params


def _source(args: argparse.Namespace, params: dict[str, Any]) -> str:
    return args.source or str(get(params, "data.source"))


def cmd_fetch(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Fetch the configured dataset into data/raw/<name>/."""
    from movierec.data.fetch import fetch

    target = fetch(_source(args, params), raw_root=args.raw_dir)
    print(f"fetched into {target}")


def cmd_prepare(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Parse and validate raw files into the canonical Parquet tables."""
    from movierec.data.fetch import resolve_source
    from movierec.data.prepare import prepare

    name = resolve_source(_source(args, params)).name if args.input is None else None
    raw = Path(args.input) if args.input else Path(args.raw_dir) / name
    summary = prepare(raw, Path(args.out), fmt=args.format)
    print(
        f"prepared {summary.get('interactions')} interactions, {summary.get('users')} users, "
        f"{summary.get('items')} items ({summary.get('format')}) into {args.out}"
    )


def cmd_synth(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Write a synthetic MovieLens-shaped dataset (ml-latest CSV layout)."""
    from movierec.data.synth import SynthConfig, write_synthetic

    config = SynthConfig(users=args.users, items=args.items, events=args.events, seed=args.seed)
    out = (
        Path(args.out)
        if args.out
        else paths.SYNTH_DIR / f"synth-u{args.users}-i{args.items}-e{args.events}-s{args.seed}"
    )
    summary = write_synthetic(out, config)
    print(
        f"wrote SYNTHETIC data to {out}: {summary['ratings']} ratings, {summary['users']} users, "
        f"{summary['items']} items, {summary['tags']} tags ({summary['clusters']} taste clusters)"
    )
    print(f"use it with: data.source: {out} in params.yaml, or `movierec data fetch --source {out}`")


def cmd_split(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Split interactions into train/valid/test."""
    from movierec.io import write_json
    from movierec.split import method_params, split

    report = split(Path(args.prepared), Path(args.out), method_params(get(params, "split"), args.method))
    write_json(args.report, report)
    print(
        f"split ({report['method']}): train {report['train_interactions']}, valid {report['valid_interactions']}, "
        f"test {report['test_interactions']}; cold test users {report['test_cold_users_share']:.1%}, "
        f"cold test items {report['test_cold_items_share']:.1%}"
    )


def cmd_features(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Build user, item and history features from the known past."""
    from movierec.features import build_features

    summary = build_features(Path(args.prepared), Path(args.split), Path(args.out), get(params, "features"))
    for period, info in summary.items():
        print(f"features for {period}: {info['users']} users, {info['items']} items, {info['histories']} histories")


def cmd_baselines(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Tune the baselines on validation and write their test lists."""
    from movierec.baselines.run import run_baselines
    from movierec.io import write_json

    section = {
        **get(params, "baselines"),
        "ks": get(params, "evaluate.ks"),
        "min_rating": get(params, "evaluate.min_rating"),
    }
    report = run_baselines(Path(args.split), Path(args.out), section)
    write_json(
        args.report,
        {
            name: {"chosen": r["chosen"], "validation": r["validation"]}
            for name, r in report.items()
            if isinstance(r, dict)
        },
    )
    for name, r in report.items():
        if isinstance(r, dict):
            print(f"{name}: chose {r['chosen']}")


def cmd_evaluate(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Score every system on the test period and print the table."""
    from movierec.evaluation.report import evaluate, format_table

    recs = [Path(p) for p in args.recs] if args.recs else [paths.BASELINE_RECS_DIR]
    result = evaluate(
        Path(args.split), Path(args.features), recs, Path(args.metrics), Path(args.plots), get(params, "evaluate")
    )
    print(format_table(result))


def _periods(args: argparse.Namespace, params: dict[str, Any]) -> Any:
    from movierec.models.context import load_periods

    widths = {k: int(v) for k, v in get(params, "retrieval.widths").items()}
    return load_periods(Path(args.prepared), Path(args.split), Path(args.features), widths, get(params, "features"))


def _seeds(params: dict[str, Any]) -> list[int]:
    """``train.seeds``: distinct integers; the first trains the served models."""
    from movierec.errors import ParamsError

    seeds = get(params, "train.seeds")
    if (
        not isinstance(seeds, list)
        or not seeds
        or len(set(seeds)) != len(seeds)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ParamsError(f"train.seeds must be a non-empty list of distinct integers, got {seeds!r}")
    return seeds


def _ranking_section(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """The ``ranking`` section, the tune stage's choice over it, and the EASE features'
    settings the baselines stage chose."""
    from movierec.models.train import ranking_settings
    from movierec.models.tuning import with_tuned

    get(params, "ranking")
    get(params, "train.final_fit_all")
    section = ranking_settings(params, Path(args.baselines))
    return with_tuned(section, Path(args.tuned), "ranking") if getattr(args, "tuned", None) else section


def _retrieval_section(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """The ``retrieval`` section with the tune stage's choice laid over it."""
    from movierec.models.tuning import with_tuned

    section = {**get(params, "retrieval"), "final_fit_all": get(params, "train.final_fit_all")}
    return with_tuned(section, Path(args.tuned), "retrieval") if getattr(args, "tuned", None) else section


def cmd_tune(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Search the models' main hyperparameters on validation (Optuna, bounded trials)."""
    from movierec.models.tuning import tune

    ranking = _ranking_section(argparse.Namespace(**{**vars(args), "tuned": None}), params)
    report = tune(
        _periods(args, params),
        get(params, "retrieval"),
        ranking,
        get(params, "tune"),
        Path(args.out),
        Path(args.reports) / "tuning.json",
        paths.PLOTS_DIR / "tuning_trials.csv",
    )
    for model in ("retrieval", "ranking"):
        info = report[model]
        print(
            f"tuned {model}: best {info['objective']} {info['best']:.4f} in {info['trials']} trials "
            f"({info['seconds']:.0f}s): {report['chosen'][model]}"
        )


def cmd_train_retrieval(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Train the two-tower model per seed (epochs chosen on validation), list test users' top 100, export."""
    from movierec.models.export import save_towers
    from movierec.models.train import train_retrieval

    report = train_retrieval(
        _periods(args, params),
        _retrieval_section(args, params),
        _seeds(params),
        Path(args.out),
        Path(args.work),
        Path(args.recs),
        Path(args.reports),
        save_towers,
    )
    for seed, info in report["per_seed"].items():
        print(
            f"retrieval seed {seed}: {info['chosen_epochs']} epochs (best {report['select_metric']} on "
            f"validation {info['valid_best']:.4f})"
        )
    print(f"served towers (seed {report['served_seed']}) in {args.out}")


def cmd_train_ranking(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Train the pointwise ranker per seed on a window the retrieval did not see; score the chain."""
    from movierec.models.train import train_ranking

    report = train_ranking(
        _periods(args, params),
        _ranking_section(args, params),
        _seeds(params),
        Path(args.work),
        Path(args.out),
        Path(args.recs),
        Path(args.reports),
    )
    print(
        f"ranking: {report['training_pairs']} training pairs ({report['positive_share']:.1%} positive) per seed; "
        f"served ranker (seed {report['served_seed']}) in {args.out}"
    )


def cmd_report_global(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """The production-like second report: the pipeline on the global temporal split."""
    from movierec.evaluation.report import format_table
    from movierec.models.export import save_towers
    from movierec.stages.global_report import global_report

    result = global_report(
        Path(args.prepared),
        Path(args.work),
        Path(args.metrics),
        params,
        _retrieval_section(args, params),
        _ranking_section(args, params),
        _seeds(params)[0],
        save_towers,
    )
    print("global temporal split (production-like; the bars use the per-user hold-out):")
    print(format_table(result))


def cmd_ablation(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Score each ablation row (retrieval parts, ranker features) on the test users."""
    from movierec.io import read_json
    from movierec.models.ablation import format_ablation, run_ablation

    seed = _seeds(params)[0]
    epochs = int(read_json(Path(args.reports) / "retrieval.json")["per_seed"][str(seed)]["chosen_epochs"])
    report = run_ablation(
        _periods(args, params),
        _retrieval_section(args, params),
        _ranking_section(args, params),
        seed,
        epochs,
        Path(args.work),
        Path(args.reports) / "ablation.json",
    )
    print(format_ablation(report))


def cmd_index_build(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """(Re)build the brute-force, ScaNN and FAISS indexes from the exported candidate tower."""
    import pyarrow.parquet as pq

    from movierec.models.index import build_indexes

    items = pq.read_table(args.items) if args.items else None
    report = build_indexes(Path(args.retrieval), Path(args.retrieval), get(params, "index"), items=items)
    from movierec.io import write_json

    if args.report:
        write_json(args.report, report)
    print(
        f"indexes over {report.get('n_items')} items; recall@{report.get('k')} against brute force: "
        + ", ".join(f"{kind} {value:.4f}" for kind, value in report.get("recall", {}).items())
    )


def cmd_bundle(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Write checkpoints/manifest.json after checking every part of the bundle."""
    from movierec.models.bundle import write_manifest

    manifest = write_manifest(Path(args.checkpoints), Path(args.prepared), params, Path(args.reports))
    print(f"bundle {manifest['version']} ({len(manifest['parts'])} parts) in {args.checkpoints}")


def cmd_serve(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Serve the bundle over REST (settings from MOVIEREC_* environment variables)."""
    from movierec.serving.server import serve

    print(f"serving on http://{args.host}:{args.port} (docs: /docs); Ctrl-C stops", flush=True)
    serve(args.host, args.port, args.workers, args.log_level)


def cmd_bench_serve(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Drive a running server on loopback with a bounded load and print latency percentiles."""
    from movierec.serving.bench import run_bench

    run_bench(args)


def cmd_replay(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Evaluate a bundle offline on the logged requests and the feedback that followed them."""
    from movierec.serving.replay import replay

    report = replay(Path(args.database), Path(args.bundle) if args.bundle else None, args.k)
    from movierec.io import write_json

    if args.out:
        write_json(args.out, report)
    for key, value in report.items():
        print(f"{key}: {value}")


def cmd_report(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Print the table of the last evaluation from its metrics JSON."""
    from movierec.errors import DataError
    from movierec.evaluation.report import format_table
    from movierec.io import read_json

    if not Path(args.metrics).exists():
        raise DataError("no metrics yet; run `dvc repro` (or `make run`) first", path=args.metrics)
    print(format_table(read_json(args.metrics)))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per step."""
    parser = argparse.ArgumentParser(prog="movierec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=str(paths.PARAMS_FILE), help="params file (default: %(default)s)")
    parser.add_argument(
        "--profile",
        help="overrides from profiles/<name>.yaml beside the params file, e.g. 'quick' "
        "(small budget, one seed: for development and the tests)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="fetch and prepare datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("fetch", help="bring a dataset into data/raw/<name>/ (checksum-verified)")
    p.add_argument(
        "--source",
        help="ml-100k (embedded, default), grouplens/<name>, or a directory; default: data.source in params.yaml",
    )
    p.add_argument("--raw-dir", default=str(paths.RAW_DIR), help="raw data root (default: %(default)s)")
    p.set_defaults(func=cmd_fetch)
    p = data.add_parser("prepare", help="parse and validate raw files into canonical Parquet tables")
    p.add_argument("--source", help="the dataset fetched (default: data.source in params.yaml)")
    p.add_argument("--input", help="a raw directory to read instead of data/raw/<name>")
    p.add_argument("--format", choices=["ml-100k", "ml-1m", "csv", "recbole"], help="skip format detection")
    p.add_argument("--raw-dir", default=str(paths.RAW_DIR), help="raw data root (default: %(default)s)")
    p.add_argument("--out", default=str(paths.PREPARED_DIR), help="output folder (default: %(default)s)")
    p.set_defaults(func=cmd_prepare)
    p = data.add_parser(
        "synth",
        help="write a SYNTHETIC MovieLens-shaped dataset (ml-latest CSV layout) with "
        "long tails, genres, tags, time order and drifting tastes",
    )
    p.add_argument("--users", type=int, default=2000, help="number of users (default: %(default)s)")
    p.add_argument("--items", type=int, default=16820, help="catalogue size (default: %(default)s, 10x ML-100K)")
    p.add_argument("--events", type=int, default=200_000, help="ratings to generate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: data/synth/synth-u<U>-i<I>-e<N>-s<S>)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("split", help="split interactions into train/valid/test (params: split)")
    p.add_argument("--prepared", default=str(paths.PREPARED_DIR))
    p.add_argument("--out", default=str(paths.SPLIT_DIR))
    p.add_argument("--report", default=str(paths.REPORTS_DIR / "split.json"), help="split metrics JSON")
    p.add_argument(
        "--method",
        choices=["user_temporal", "temporal", "leave_last_n"],
        help="split method (default: split.method in params.yaml)",
    )
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("features", help="user, item and history features from the known past (params: features)")
    p.add_argument("--prepared", default=str(paths.PREPARED_DIR))
    p.add_argument("--split", default=str(paths.SPLIT_DIR))
    p.add_argument("--out", default=str(paths.FEATURES_DIR))
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("baselines", help="tune most-popular, item-kNN and EASE on validation; write test lists")
    p.add_argument("--split", default=str(paths.SPLIT_DIR))
    p.add_argument("--out", default=str(paths.BASELINE_RECS_DIR))
    p.add_argument("--report", default=str(paths.REPORTS_DIR / "baselines_validation.json"))
    p.set_defaults(func=cmd_baselines)

    p = sub.add_parser("evaluate", help="score every system's test lists; print and write the metrics")
    p.add_argument("--split", default=str(paths.SPLIT_DIR))
    p.add_argument("--features", default=str(paths.FEATURES_DIR))
    p.add_argument("--recs", nargs="*", help="folders of list files (default: data/recs/baselines)")
    p.add_argument("--metrics", default=str(paths.REPORTS_DIR / "metrics.json"))
    p.add_argument("--plots", default=str(paths.PLOTS_DIR))
    p.set_defaults(func=cmd_evaluate)

    train = sub.add_parser("train", help="train the models").add_subparsers(dest="train_command", required=True)
    for name, func, out, recs in (
        ("retrieval", cmd_train_retrieval, "checkpoints/retrieval", "data/recs/retrieval"),
        ("ranking", cmd_train_ranking, "checkpoints/ranking", "data/recs/ranking"),
    ):
        p = train.add_parser(name, help=func.__doc__.split("\n")[0])
        p.add_argument("--prepared", default=str(paths.PREPARED_DIR))
        p.add_argument("--split", default=str(paths.SPLIT_DIR))
        p.add_argument("--features", default=str(paths.FEATURES_DIR))
        p.add_argument("--work", default="data/models", help="evaluated models (default: %(default)s)")
        p.add_argument("--out", default=out, help="served export (default: %(default)s)")
        p.add_argument("--recs", default=recs, help="test lists (default: %(default)s)")
        p.add_argument("--reports", default=str(paths.REPORTS_DIR))
        if name == "ranking":
            p.add_argument(
                "--baselines",
                default=str(paths.BASELINE_RECS_DIR),
                help="the baselines stage's output, for the tuned EASE settings (default: %(default)s)",
            )
        p.add_argument(
            "--tuned",
            default=str(paths.TUNED_DIR),
            help="the tune stage's output, laid over params.yaml (default: %(default)s)",
        )
        p.set_defaults(func=func)

    p = sub.add_parser(
        "report-global",
        help="the production-like second report: split globally by time, "
        "baselines and both models (tuned settings, first seed)",
    )
    for flag, default in (
        ("--prepared", paths.PREPARED_DIR),
        ("--work", paths.DATA_DIR / "global"),
        ("--metrics", paths.REPORTS_DIR / "metrics_global.json"),
        ("--baselines", paths.BASELINE_RECS_DIR),
        ("--tuned", paths.TUNED_DIR),
    ):
        p.add_argument(flag, default=str(default), help="(default: %(default)s)")
    p.set_defaults(func=cmd_report_global)

    p = sub.add_parser("tune", help="choose the models' main hyperparameters on validation with Optuna (params: tune)")
    for flag, default in (
        ("--prepared", paths.PREPARED_DIR),
        ("--split", paths.SPLIT_DIR),
        ("--features", paths.FEATURES_DIR),
        ("--baselines", paths.BASELINE_RECS_DIR),
        ("--out", paths.TUNED_DIR),
        ("--reports", paths.REPORTS_DIR),
    ):
        p.add_argument(flag, default=str(default), help="(default: %(default)s)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "ablation",
        help="what each part is worth: retrieval parts and ranker features switched "
        "off one at a time, scored on the test users (params: retrieval.ablation, "
        "ranking.ablation)",
    )
    for flag, default in (
        ("--prepared", paths.PREPARED_DIR),
        ("--split", paths.SPLIT_DIR),
        ("--features", paths.FEATURES_DIR),
        ("--work", Path("data/models")),
        ("--reports", paths.REPORTS_DIR),
        ("--baselines", paths.BASELINE_RECS_DIR),
        ("--tuned", paths.TUNED_DIR),
    ):
        p.add_argument(flag, default=str(default), help="(default: %(default)s)")
    p.set_defaults(func=cmd_ablation)

    index = sub.add_parser("index", help="retrieval indexes").add_subparsers(dest="index_command", required=True)
    p = index.add_parser(
        "build",
        help="rebuild brute-force, ScaNN and FAISS indexes from the candidate tower "
        "(no retraining; --items for a changed catalogue)",
    )
    p.add_argument("--retrieval", default="checkpoints/retrieval", help="folder with the exported towers")
    p.add_argument("--items", help="a catalogue table (features items.parquet layout) to index instead")
    p.add_argument("--report", default=str(paths.REPORTS_DIR / "index.json"), help="index metrics JSON")
    p.set_defaults(func=cmd_index_build)

    p = sub.add_parser("bundle", help="check the exported parts and write checkpoints/manifest.json")
    p.add_argument("--checkpoints", default=str(paths.CHECKPOINTS_DIR))
    p.add_argument("--prepared", default=str(paths.PREPARED_DIR))
    p.add_argument("--reports", default=str(paths.REPORTS_DIR))
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("serve", help="serve the bundle over REST (FastAPI + uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=cmd_serve)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("serve", help="bounded load on a running server: p50/p95/p99 and requests/s per endpoint")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="a loopback address of the running server")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--requests", type=int, default=2000, help="requests per endpoint (stops after this many)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="time limit per endpoint")
    p.add_argument("--out", help="write the results as JSON here")
    p.set_defaults(func=cmd_bench_serve)

    p = sub.add_parser("replay", help="evaluate a bundle on logged traffic and the feedback that followed")
    p.add_argument("--database", default="data/serving/movierec.sqlite", help="the service's SQLite file")
    p.add_argument("--bundle", help="a bundle folder to re-score the logged requests with (default: only the logs)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", help="write the report as JSON here")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("report", help="print the table of the last evaluation (reports/metrics.json)")
    p.add_argument("--metrics", default=str(paths.REPORTS_DIR / "metrics.json"))
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, dict[str, Any]], None] = args.func
    start = time.perf_counter()
    try:
        func(args, load_params(args.params, args.profile))
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sub_name = getattr(args, f"{args.command}_command", None)
    print(
        f"[{args.command}{' ' + sub_name if sub_name else ''} done in {time.perf_counter() - start:.1f}s]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
