"""The ``movierec`` command line: one thin subcommand per pipeline step.

Every subcommand reads its hyperparameters from ``params.yaml`` (the section named
after the step) and calls one package function, so DVC, Airflow, notebooks and tests
all run the same code. Paths default to the constants in :mod:`movierec.paths`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

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
    print(f"prepared {summary.get('interactions')} interactions, {summary.get('users')} users, "
          f"{summary.get('items')} items ({summary.get('format')}) into {args.out}")


def cmd_split(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Split interactions into train/valid/test."""
    from movierec.io import write_json
    from movierec.split import split

    report = split(Path(args.prepared), Path(args.out), get(params, "split"))
    write_json(args.report, report)
    print(f"split ({report['method']}): train {report['train_interactions']}, valid {report['valid_interactions']}, "
          f"test {report['test_interactions']}; cold test users {report['test_cold_users_share']:.1%}, "
          f"cold test items {report['test_cold_items_share']:.1%}")


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

    section = {**get(params, "baselines"), "ks": get(params, "evaluate.ks"),
               "min_rating": get(params, "evaluate.min_rating")}
    report = run_baselines(Path(args.split), Path(args.out), section)
    write_json(args.report, {name: {"chosen": r["chosen"], "validation": r["validation"]}
                             for name, r in report.items() if isinstance(r, dict)})
    for name, r in report.items():
        if isinstance(r, dict):
            print(f"{name}: chose {r['chosen']}")


def cmd_evaluate(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Score every system on the test period and print the table."""
    from movierec.evaluation.report import evaluate, format_table

    recs = [Path(p) for p in args.recs] if args.recs else [paths.BASELINE_RECS_DIR]
    result = evaluate(Path(args.split), Path(args.features), recs, Path(args.metrics), Path(args.plots),
                      get(params, "evaluate"))
    print(format_table(result))


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
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="fetch and prepare datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("fetch", help="bring a dataset into data/raw/<name>/ (checksum-verified)")
    p.add_argument("--source", help="ml-100k (embedded, default), grouplens/<name>, or a directory; "
                                    "default: data.source in params.yaml")
    p.add_argument("--raw-dir", default=str(paths.RAW_DIR), help="raw data root (default: %(default)s)")
    p.set_defaults(func=cmd_fetch)
    p = data.add_parser("prepare", help="parse and validate raw files into canonical Parquet tables")
    p.add_argument("--source", help="the dataset fetched (default: data.source in params.yaml)")
    p.add_argument("--input", help="a raw directory to read instead of data/raw/<name>")
    p.add_argument("--format", choices=["ml-100k", "ml-1m", "csv", "recbole"], help="skip format detection")
    p.add_argument("--raw-dir", default=str(paths.RAW_DIR), help="raw data root (default: %(default)s)")
    p.add_argument("--out", default=str(paths.PREPARED_DIR), help="output folder (default: %(default)s)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("split", help="split interactions into train/valid/test (params: split)")
    p.add_argument("--prepared", default=str(paths.PREPARED_DIR))
    p.add_argument("--out", default=str(paths.SPLIT_DIR))
    p.add_argument("--report", default=str(paths.REPORTS_DIR / "split.json"), help="split metrics JSON")
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
        func(args, load_params(args.params))
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[{args.command}{' ' + args.data_command if args.command == 'data' else ''} done in "
          f"{time.perf_counter() - start:.1f}s]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
