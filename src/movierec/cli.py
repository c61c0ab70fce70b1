"""The ``movierec`` command line: one thin subcommand per pipeline step.

Every pipeline subcommand reads ``params.yaml`` into the checked settings
(:mod:`movierec.settings`) and calls its stage's ``run(settings, paths)``
(:mod:`movierec.stages`), so DVC, Airflow, notebooks and tests all run the same code.
Paths are the project layout of :class:`movierec.paths.ProjectPaths` (``--root`` moves it).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec import paths
from movierec.errors import MovierecError, ParamsError
from movierec.paths import ProjectPaths
from movierec.settings import Settings, load_settings


def _stage_args(args: argparse.Namespace, settings: Settings) -> tuple[Settings, ProjectPaths]:
    """The settings and the project layout a stage runs with (``--root`` moves the layout)."""
    layout = ProjectPaths.under(args.root) if args.root else ProjectPaths()
    overrides = {
        name: Path(value)
        for name, value in (
            ("raw", getattr(args, "raw_dir", None)),
            ("checkpoints", getattr(args, "checkpoints", None)),
        )
        if value
    }
    return settings, dataclasses.replace(layout, **overrides)


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> None:
    """Fetch the configured dataset into data/raw/<name>/."""
    from movierec.stages import fetch

    result = fetch.run(*_stage_args(args, settings), source=args.source)
    print(f"fetched into {result['raw_dir']}")


def cmd_prepare(args: argparse.Namespace, settings: Settings) -> None:
    """Parse and validate raw files into the canonical Parquet tables."""
    from movierec.stages import prepare

    settings, layout = _stage_args(args, settings)
    if args.out:
        layout = dataclasses.replace(layout, prepared=Path(args.out))
    summary = prepare.run(settings, layout, source=args.source, raw_dir=args.input, fmt=args.format)
    print(
        f"prepared {summary.get('interactions')} interactions, {summary.get('users')} users, "
        f"{summary.get('items')} items ({summary.get('format')}) into {layout.prepared}"
    )


def cmd_synth(args: argparse.Namespace, settings: Settings) -> None:
    """Write a synthetic MovieLens-shaped dataset (ml-latest CSV layout)."""
    from movierec.data.synth import SynthConfig, parse_count, write_synthetic
    from movierec.errors import ParamsError

    size = settings.synth.model_dump()
    if args.shape:
        if args.shape not in settings.synth.shapes:
            known = ", ".join(sorted(settings.synth.shapes)) or "none"
            raise ParamsError(f"--shape {args.shape}: not a shape of synth.shapes in params.yaml (known: {known})")
        size.update(settings.synth.shapes[args.shape].model_dump())
    for name in ("users", "items", "events", "seed"):
        if getattr(args, name) is not None:
            size[name] = parse_count(getattr(args, name)) if name != "seed" else int(args.seed)
    config = SynthConfig(
        users=size["users"],
        items=size["items"],
        events=size["events"],
        seed=size["seed"],
        all_items=bool(args.all_items or size.get("all_items", False)),
    )
    out = (
        Path(args.out)
        if args.out
        else paths.SYNTH_DIR / f"synth-u{config.users}-i{config.items}-e{config.events}-s{config.seed}"
    )
    summary = write_synthetic(out, config)
    print(
        f"wrote SYNTHETIC data to {out}: {summary['ratings']} ratings, {summary['users']} users, "
        f"{summary['items']} items rated of {summary['catalogue']} listed, {summary['tags']} tags "
        f"({summary['clusters']} taste clusters)"
    )
    print(f"use it with: data.source: {out} in params.yaml, or `movierec data fetch --source {out}`")


def cmd_split(args: argparse.Namespace, settings: Settings) -> None:
    """Split interactions into train/valid/test."""
    from movierec.stages import split

    report = split.run(*_stage_args(args, settings), method=args.method)
    print(
        f"split ({report['method']}): train {report['train_interactions']}, valid {report['valid_interactions']}, "
        f"test {report['test_interactions']}; cold test users {report['test_cold_users_share']:.1%}, "
        f"cold test items {report['test_cold_items_share']:.1%}"
    )


def cmd_features(args: argparse.Namespace, settings: Settings) -> None:
    """Build user, item and history features from the known past."""
    from movierec.stages import features

    for period, info in features.run(*_stage_args(args, settings)).items():
        print(f"features for {period}: {info['users']} users, {info['items']} items, {info['histories']} histories")


def cmd_baselines(args: argparse.Namespace, settings: Settings) -> None:
    """Tune the baselines on validation and write their test lists."""
    from movierec.stages import baselines

    for name, r in baselines.run(*_stage_args(args, settings)).items():
        print(f"{name}: chose {r['chosen']}")


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> None:
    """Score every system on the test period and print the table."""
    from movierec.evaluation.report import format_table
    from movierec.stages import evaluate

    recs = [Path(p) for p in args.recs] if args.recs else None
    print(format_table(evaluate.run(*_stage_args(args, settings), recs=recs)))


def cmd_tune(args: argparse.Namespace, settings: Settings) -> None:
    """Search the models' main hyperparameters on validation (Optuna, bounded trials)."""
    from movierec.stages import tune

    report = tune.run(*_stage_args(args, settings))
    for model in ("retrieval", "ranking"):
        info = report[model]
        print(
            f"tuned {model}: best {info['objective']} {info['best']:.4f} in {info['trials']} trials "
            f"({info['seconds']:.0f}s): {report['chosen'][model]}"
        )


def _train(args: argparse.Namespace, settings: Settings, stage: str) -> tuple[ProjectPaths, dict[str, Any] | None]:
    """Run a training stage here, or on several workers with ``--workers`` / ``--hosts``;
    returns the layout and the stage's report (None when the chief ran on another host)."""
    import importlib

    settings, layout = _stage_args(args, settings)
    if args.index is not None and not args.hosts:
        raise ParamsError("--index needs --hosts (every worker's address)")
    if args.hosts and args.workers is not None:
        raise ParamsError("give either --workers (on this machine) or --hosts (several hosts), not both")
    if args.workers is not None and args.workers < 1:
        raise ParamsError(f"--workers must be at least 1 (got {args.workers})")
    if not args.hosts and (args.workers or 1) == 1:
        return layout, importlib.import_module(f"movierec.stages.{stage}").run(settings, layout)
    from movierec.orchestration.cluster import parse_hosts
    from movierec.recording import Recorder
    from movierec.stages import distributed

    hosts = parse_hosts(args.hosts) if args.hosts else None
    result = distributed.run(settings, layout, stage, workers=args.workers or 1, hosts=hosts, index=args.index or 0)
    print(f"{len(result['addresses'])} workers trained together in {result['seconds']:.1f}s", file=sys.stderr)
    if not result["chief_here"]:
        args.outputs_elsewhere = True  # the chief's host records the stage
        print(f"worker {args.index} done; the chief ({result['addresses'][0]}) wrote the outputs on its host")
        return layout, None
    return layout, Recorder(layout.reports, layout.plots).read(stage.removeprefix("train_"))


def cmd_train_retrieval(args: argparse.Namespace, settings: Settings) -> None:
    """Train the two-tower model per seed (epochs chosen on validation), list test users' top 100, export."""
    layout, report = _train(args, settings, "train_retrieval")
    if report is None:
        return
    for seed, info in report["per_seed"].items():
        print(
            f"retrieval seed {seed}: {info['chosen_epochs']} epochs (best {report['select_metric']} on "
            f"validation {info['valid_best']:.4f})"
        )
    print(f"served towers (seed {report['served_seed']}) in {layout.served_retrieval}")


def cmd_train_ranking(args: argparse.Namespace, settings: Settings) -> None:
    """Train the pointwise ranker per seed on a window the retrieval did not see; score the chain."""
    layout, report = _train(args, settings, "train_ranking")
    if report is None:
        return
    print(
        f"ranking: {report['training_pairs']} training pairs ({report['positive_share']:.1%} positive) per seed; "
        f"served ranker (seed {report['served_seed']}) in {layout.served_ranking}"
    )


def cmd_report_global(args: argparse.Namespace, settings: Settings) -> None:
    """The production-like second report: the pipeline on the global temporal split."""
    from movierec.evaluation.report import format_table
    from movierec.stages import report_global

    result = report_global.run(*_stage_args(args, settings))
    print("global temporal split (production-like; the bars use the per-user hold-out):")
    print(format_table(result))


def cmd_ablation(args: argparse.Namespace, settings: Settings) -> None:
    """Score each ablation row (retrieval parts, ranker features) on the test users."""
    from movierec.models.ablation import format_ablation
    from movierec.stages import ablation

    print(format_ablation(ablation.run(*_stage_args(args, settings))))


def cmd_index_build(args: argparse.Namespace, settings: Settings) -> None:
    """(Re)build the brute-force, ScaNN and FAISS indexes from the exported candidate tower."""
    from movierec.stages import build_index

    report = build_index.run(*_stage_args(args, settings), retrieval_dir=args.retrieval, items=args.items)
    print(
        f"indexes over {report.get('n_items')} items; recall@{report.get('k')} against brute force: "
        + ", ".join(f"{kind} {value:.4f}" for kind, value in report.get("recall", {}).items())
    )


def cmd_bundle(args: argparse.Namespace, settings: Settings) -> None:
    """Write checkpoints/manifest.json after checking every part of the bundle."""
    from movierec.stages import bundle

    settings, layout = _stage_args(args, settings)
    manifest = bundle.run(settings, layout)
    print(f"bundle {manifest['version']} ({len(manifest['parts'])} parts) in {layout.checkpoints}")


def cmd_register(args: argparse.Namespace, settings: Settings) -> None:
    """Log the pipeline run to MLflow, register the bundle, promote it if better."""
    from movierec.stages import register

    report = register.run(*_stage_args(args, settings))
    verdict = "promoted to champion" if report["promoted"] else "kept as challenger"
    print(f"MLflow run {report['run_id']} in {report['store']}")
    print(f"registered {report['model']} version {report['version']}: {verdict} ({report['reason']})")


def cmd_push_metrics(args: argparse.Namespace, settings: Settings) -> None:
    """Push the training metrics to a Prometheus Pushgateway."""
    from movierec.stages import push_metrics

    pushed = push_metrics.run(*_stage_args(args, settings), gateway=args.gateway)
    print(
        f"pushed to {pushed['gateway']} (job {pushed['job']}, dataset {pushed['dataset']}): "
        f"retrieval_accuracy {pushed['retrieval_accuracy']}, ranking_ndcg {pushed['ranking_ndcg']}, "
        f"{len(pushed['durations'])} stage durations"
    )


def cmd_scale_run(args: argparse.Namespace, settings: Settings) -> None:
    """Run the whole pipeline on synthetic data of a given size in a folder of its own; measure each stage."""
    from movierec.data.synth import parse_count
    from movierec.scaling.runner import ScaleRun, run_scale

    events = parse_count(args.events)
    run = ScaleRun(
        events=events,
        work=Path(args.work or f"/tmp/movierec-scale-{events}"),
        users=parse_count(args.users) if args.users else None,
        items=parse_count(args.items) if args.items else None,
        seed=args.seed,
        profile=None if args.pipeline_profile == "none" else args.pipeline_profile,
        stages=tuple(args.stages.split(",")) if args.stages else None,
        worktree=args.worktree,
        resume=args.resume,
        source=args.source,
        refresh_code=args.refresh_code,
    )
    record = run_scale(run, Path("."), Path(args.out) if args.out else None)
    for name, stage in record["stages"].items():
        print(f"{name:<16} {stage['wall_s']:>9.1f} s  peak {stage['peak_rss_mb'] / 1024:6.2f} GB")
    print(f"pipeline: {record.get('pipeline_wall_s', 0):.1f} s, status {record['status']} ({run.work})")
    if record["status"] != "complete":
        raise MovierecError(f"the scale run stopped at stage {record.get('failed_stage')}; see {run.work}/logs")


def cmd_scale_table(args: argparse.Namespace, settings: Settings) -> None:
    """Put several scale runs side by side with growth exponents; write the JSON and the plot's CSV."""
    import yaml

    from movierec.scaling.runner import pipeline_order
    from movierec.scaling.table import markdown, read_runs, scaling_table, write_scaling

    dvc_file = Path("dvc.yaml")  # the project's, for the rows' order (the current folder, as --out)
    order = pipeline_order(yaml.safe_load(dvc_file.read_text(encoding="utf-8"))) if dvc_file.exists() else None
    table = scaling_table(read_runs([Path(p) for p in args.runs]), order)
    write_scaling(table, Path(args.out), Path(args.csv))
    print(markdown(table))


def _registry_client(args: argparse.Namespace, settings: Settings) -> tuple[Any, str]:
    from movierec.tracking import store

    _, layout = _stage_args(args, settings)
    return store.client(layout), args.model or settings.registry.model_name


def _registry_errors(args: argparse.Namespace, settings: Settings) -> Any:
    from movierec.tracking import store

    return store.speaking_errors(_stage_args(args, settings)[1])


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> None:
    """List the registered versions with their aliases, metrics and promotion decisions."""
    from movierec.tracking.registry import list_versions

    client, name = _registry_client(args, settings)
    with _registry_errors(args, settings):
        rows = list_versions(client, name)
    if not rows:
        print(f"no versions of {name!r} yet: run `dvc repro` (or `movierec register`)")
        return
    print(f"{'version':>7}  {'aliases':<20} {'chain ndcg@10':>13}  {'bars':<10} decision")
    for row in rows:
        print(
            f"{row['version']:>7}  {','.join(row['aliases']) or '-':<20} {row['chain_ndcg@10'] or '-':>13}  "
            f"{row['bars'][:10]:<10} {row['decision'] or '-'}: {row['reason'] or '-'}"
        )


def cmd_models_promote(args: argparse.Namespace, settings: Settings) -> None:
    """Make a version the champion (by hand; the previous champion stays in the history)."""
    from movierec.tracking.registry import promote

    client, name = _registry_client(args, settings)
    with _registry_errors(args, settings):
        promote(client, name, args.version, args.reason)
    print(f'{name} version {args.version} is now champion; reload the service with {{"alias": "champion"}}')


def cmd_models_rollback(args: argparse.Namespace, settings: Settings) -> None:
    """Move champion back to the previous champion."""
    from movierec.tracking.registry import rollback

    client, name = _registry_client(args, settings)
    with _registry_errors(args, settings):
        old, new = rollback(client, name)
    print(f"{name}: champion moved back from version {old} to version {new}; reload the service to serve it")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    """Serve the bundle over REST (settings from MOVIEREC_* environment variables)."""
    from movierec.serving.server import serve

    print(f"serving on http://{args.host}:{args.port} (docs: /docs); Ctrl-C stops", flush=True)
    serve(args.host, args.port, args.workers, args.log_level)


def cmd_bench_workers(args: argparse.Namespace, settings: Settings) -> None:
    """Train the retrieval stage with 1 and with N workers per seed; print quality and wall time."""
    from movierec.io import write_json
    from movierec.stages import bench_workers

    settings, layout = _stage_args(args, settings)
    result = bench_workers.run(settings, layout, args.workers, args.seeds)
    if args.json_path:
        write_json(args.json_path, result)
    print(bench_workers.format_table(result))
    for count, diffs in result["paired"].items():
        print(
            f"{count} workers minus {args.workers[0]}, seed by seed: "
            + ", ".join(f"{m} mean {d['mean']:+.4f} (largest {d['max_abs']:.4f})" for m, d in diffs.items())
        )


def cmd_bench_serve(args: argparse.Namespace, settings: Settings) -> None:
    """Load a running server on loopback with wrk; print req/s, latency percentiles and the targets."""
    from movierec.serving.bench import run_bench

    run_bench(args)


def cmd_bench_index(args: argparse.Namespace, settings: Settings) -> None:
    """Build brute-force, FAISS IVF, FAISS HNSW and ScaNN indexes over synthetic catalogues and measure them."""
    from movierec.models.index_bench_cli import bench_index

    bench_index(args, settings.as_params()["index"])


def cmd_bench_bundle(args: argparse.Namespace, settings: Settings) -> None:
    """Write a copy of a bundle whose catalogue is enlarged with synthetic items; optionally load and query it."""
    from movierec.models.index_bundle_cli import bench_bundle

    bench_bundle(args, settings.as_params()["index"])


def cmd_replay(args: argparse.Namespace, settings: Settings) -> None:
    """Evaluate a bundle offline on the logged requests and the feedback that followed them."""
    from movierec.serving.replay import replay
    from movierec.serving.settings import load_service_settings
    from movierec.serving.storage import is_database_url

    database = args.database or load_service_settings().database_url or "data/serving/movierec.sqlite"
    where = database if is_database_url(database) else Path(database)
    report = replay(where, Path(args.bundle) if args.bundle else None, args.k)
    from movierec.io import write_json

    if args.out:
        write_json(args.out, report)
    for key, value in report.items():
        print(f"{key}: {value}")


def cmd_report(args: argparse.Namespace, settings: Settings) -> None:
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
        "--root", help="the project folder every stage reads and writes under (default: the working directory)"
    )
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
    p.add_argument("--raw-dir", help="raw data root (default: data/raw under the project root)")
    p.set_defaults(func=cmd_fetch)
    p = data.add_parser("prepare", help="parse and validate raw files into canonical Parquet tables")
    p.add_argument("--source", help="the dataset fetched (default: data.source in params.yaml)")
    p.add_argument("--input", help="a raw directory to read instead of data/raw/<name>")
    p.add_argument("--format", choices=["ml-100k", "ml-1m", "csv", "recbole"], help="skip format detection")
    p.add_argument("--raw-dir", help="raw data root (default: data/raw under the project root)")
    p.add_argument("--out", help="output folder (default: data/prepared under the project root)")
    p.set_defaults(func=cmd_prepare)
    p = data.add_parser(
        "synth",
        help="write a SYNTHETIC MovieLens-shaped dataset (ml-latest CSV layout) with "
        "long tails, genres, tags, time order and drifting tastes",
    )
    p.add_argument("--shape", help="a named size from synth.shapes in params.yaml (ml-25m, catalogue-1m)")
    p.add_argument("--users", help="number of users (default: synth.users in params.yaml, or the shape's)")
    p.add_argument("--items", help="catalogue size (default: synth.items, or the shape's); 1M, 60K work")
    p.add_argument("--events", help="ratings to generate, e.g. 25M (default: synth.events, or the shape's)")
    p.add_argument("--seed", type=int, help="random seed (default: synth.seed)")
    p.add_argument("--all-items", action="store_true", help="list unrated items too in movies.csv (as ml-latest)")
    p.add_argument("--out", help="output folder (default: data/synth/synth-u<U>-i<I>-e<N>-s<S>)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("split", help="split interactions into train/valid/test (params: split)")
    p.add_argument(
        "--method",
        choices=["user_temporal", "temporal", "leave_last_n"],
        help="split method (default: split.method in params.yaml)",
    )
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("features", help="user, item and history features from the known past (params: features)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("baselines", help="tune most-popular, item-kNN and EASE on validation; write test lists")
    p.set_defaults(func=cmd_baselines)

    p = sub.add_parser("evaluate", help="score every system's test lists; print and write the metrics")
    p.add_argument("--recs", nargs="*", help="folders of list files (default: baselines, retrieval and ranking)")
    p.set_defaults(func=cmd_evaluate)

    train = sub.add_parser("train", help="train the models").add_subparsers(dest="train_command", required=True)
    for name, func in (("retrieval", cmd_train_retrieval), ("ranking", cmd_train_ranking)):
        p = train.add_parser(
            name,
            help=func.__doc__.split("\n")[0],
            description=func.__doc__.split("\n")[0]
            + " With --workers or --hosts, several worker processes train each model together "
            "(tf.distribute.MultiWorkerMirroredStrategy; the batch size in params.yaml is the global batch) "
            "and worker 0, the chief, writes the outputs; see docs/distributed-training.md.",
        )
        p.add_argument(
            "--workers",
            type=int,
            metavar="N",
            help="train with N worker processes on this machine (loopback ports; default: 1, this process)",
        )
        p.add_argument(
            "--hosts",
            metavar="HOST[:PORT],...",
            help="every worker's address (port 2222 if none), the chief first, for a cluster of several "
            "hosts: run the same command on each host with its own --index",
        )
        p.add_argument("--index", type=int, metavar="I", help="this host's worker in --hosts (0: the chief)")
        p.set_defaults(func=func)

    p = sub.add_parser(
        "report-global",
        help="the production-like second report: split globally by time, "
        "baselines and both models (tuned settings, first seed)",
    )
    p.set_defaults(func=cmd_report_global)

    p = sub.add_parser("tune", help="choose the models' main hyperparameters on validation with Optuna (params: tune)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "ablation",
        help="what each part is worth: retrieval parts and ranker features switched "
        "off one at a time, scored on the test users (params: retrieval.ablation, "
        "ranking.ablation)",
    )
    p.set_defaults(func=cmd_ablation)

    index = sub.add_parser("index", help="retrieval indexes").add_subparsers(dest="index_command", required=True)
    p = index.add_parser(
        "build",
        help="rebuild brute-force, ScaNN and FAISS indexes from the candidate tower "
        "(no retraining; --items for a changed catalogue)",
    )
    p.add_argument("--retrieval", help="folder with the exported towers (default: checkpoints/retrieval)")
    p.add_argument("--items", help="a catalogue table (features items.parquet layout) to index instead")
    p.set_defaults(func=cmd_index_build)

    p = sub.add_parser("bundle", help="check the exported parts and write checkpoints/manifest.json")
    p.add_argument("--checkpoints", help="the bundle folder (default: checkpoints under the project root)")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser(
        "register",
        help="log the pipeline run to MLflow (params, curves, evaluation, lineage, bundle), register "
        "the bundle as a model version and promote it to champion if better (params: registry)",
    )
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("push-metrics", help="push the training metrics to a Prometheus Pushgateway")
    p.add_argument("--gateway", help="host:port of the Pushgateway (default: $MOVIEREC_PUSHGATEWAY)")
    p.set_defaults(func=cmd_push_metrics)

    models = sub.add_parser(
        "models", help="the MLflow model registry (store: mlflow/ in the project, or $MLFLOW_TRACKING_URI)"
    ).add_subparsers(dest="models_command", required=True)
    for name, func, text in (
        ("list", cmd_models_list, "every version with aliases, chain NDCG@10, bars and the promotion decision"),
        ("promote", cmd_models_promote, "make VERSION the champion (by hand)"),
        ("rollback", cmd_models_rollback, "move champion back to the previous champion"),
    ):
        p = models.add_parser(name, help=text)
        p.add_argument("--model", help="registered model name (default: registry.model_name in params.yaml)")
        if name == "promote":
            p.add_argument("version", help="the version number to promote")
            p.add_argument("--reason", default="promoted by hand", help="recorded on the version")
        p.set_defaults(func=func)

    p = sub.add_parser("serve", help="serve the bundle over REST (FastAPI + uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=cmd_serve, reads_params=False)  # the service's settings come from MOVIEREC_*

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser(
        "serve",
        help="load a running server with wrk: req/s, p50/p95/p99 and the targets, per endpoint",
        description="Drives floor (ping), retrieval, ranking, the chain, similar items and feedback, one after "
        "another, with wrk (apt-get install wrk) against a server on this machine; see docs/serving.md, Speed.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="a loopback address of the running server")
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--connections", "--concurrency", type=int, default=16, help="open keep-alive connections")
    p.add_argument("--duration", type=int, default=10, help="measured seconds per endpoint")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured seconds per endpoint before that (0: none)")
    p.add_argument("--timeout", type=int, default=5, help="seconds before wrk counts a request as timed out")
    p.add_argument("--runs", type=int, default=1, help="repeat the whole sequence; then the mean and spread")
    p.add_argument("--json", "--out", dest="json_path", metavar="PATH", help="write the results as JSON here")
    p.add_argument("--api-key", help="for a server that requires keys (better: MOVIEREC_BENCH_API_KEY, off argv)")
    p.set_defaults(func=cmd_bench_serve, reads_params=False)
    from movierec.models.index_bench_cli import add_arguments as index_bench_arguments
    from movierec.models.index_bundle_cli import add_arguments as index_bundle_arguments

    p = bench.add_parser(
        "index",
        help="brute force, FAISS IVF, FAISS HNSW and ScaNN over synthetic 100K-1M-item catalogues: build time, "
        "memory, p50/p99 of one query, batch throughput, recall@k against brute force",
        description="Builds each index over seeded synthetic item embeddings (clustered, with varying norms), "
        "tunes its search setting to the target recall on one query set and measures it on another; the "
        "structure (lists, leaves, links) follows index.rules in params.yaml. See docs/index-benchmark.md.",
    )
    index_bench_arguments(p)
    p.set_defaults(func=cmd_bench_index)
    p = bench.add_parser(
        "bundle",
        help="copy a bundle with its catalogue enlarged to N items (synthetic items embedded by the real "
        "candidate tower, indexes rebuilt, manifest resealed); --load then loads and queries it",
        description="For measuring the service on a large catalogue without training on one. The copy is "
        "labelled SYNTHETIC in its manifest. See docs/index-benchmark.md.",
    )
    index_bundle_arguments(p)
    p.set_defaults(func=cmd_bench_bundle)
    p = bench.add_parser(
        "workers",
        help="train the retrieval stage with 1 and with N workers, per seed: test quality and wall time",
        description="Runs the train_retrieval stage once per seed and worker count (the launcher of "
        "`movierec train retrieval --workers N`, outputs in a scratch folder) on the project's split and "
        "features, and scores each run's test lists on the warm test users (Recall@10, Recall@100, "
        "NDCG@10); see docs/distributed-training.md.",
    )
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds (default: %(default)s)")
    p.add_argument("--json", "--out", dest="json_path", metavar="PATH", help="write the rows and summary as JSON here")
    p.set_defaults(func=cmd_bench_workers)

    scale = sub.add_parser(
        "scale", help="how the pipeline's time and memory grow with the data (synthetic runs)"
    ).add_subparsers(dest="scale_command", required=True)
    p = scale.add_parser(
        "run",
        help="the whole pipeline (dvc repro, stage by stage) on SYNTHETIC data of a given size, in a "
        "folder of its own; each stage's wall time and peak memory into a JSON",
        description="Lays out a fresh copy of the project (the last commit's code, or --worktree) under --work, "
        "writes the synthetic data, runs every dvc.yaml stage with `dvc repro --single-item` and measures its "
        "wall time and peak memory (the kernel's maximum resident set, as /usr/bin/time -v reports it, and the "
        "process tree's sampled sum). Prefix with `nice -n 10` on a shared machine. See docs/scaling.md.",
    )
    p.add_argument("--events", required=True, help="ratings to generate, e.g. 1M, 5M, 25M")
    p.add_argument("--users", help="users (default: ML-25M's ratio, about one per 156 events)")
    p.add_argument("--items", help="catalogue size (default: ML-25M's ratio, 60K items at 25M events)")
    p.add_argument("--seed", type=int, default=0, help="the synthetic data's seed (default: %(default)s)")
    p.add_argument("--work", help="the run's folder (default: /tmp/movierec-scale-<events>)")
    p.add_argument("--out", help="the run's JSON (default: <work>/scale.json)")
    p.add_argument(
        "--pipeline-profile",
        default="scale",
        help="profiles/<name>.yaml laid over params.yaml for the run, or 'none' (default: %(default)s)",
    )
    p.add_argument(
        "--source",
        help="measure this data.source instead of synthetic data (e.g. ml-100k, with --pipeline-profile none)",
    )
    p.add_argument("--stages", help="comma-separated dvc.yaml stages to run (default: all)")
    p.add_argument("--worktree", action="store_true", help="copy the working tree's code, not the last commit's")
    p.add_argument(
        "--refresh-code",
        action="store_true",
        help="with --resume: copy src/ again first (each stage records the commit it ran with)",
    )
    p.add_argument(
        "--resume", action="store_true", help="carry on a stopped run in --work from its first unfinished stage"
    )
    p.set_defaults(func=cmd_scale_run, reads_params=False)
    p = scale.add_parser("table", help="runs side by side: each stage's time and peak memory, growth exponents")
    p.add_argument("runs", nargs="+", help="run JSON files written by `movierec scale run`")
    p.add_argument("--out", default="reports/scaling.json", help="the table as JSON (default: %(default)s)")
    p.add_argument(
        "--csv", default="reports/plots/scaling.csv", help="one row per size, for dvc plots (default: %(default)s)"
    )
    p.set_defaults(func=cmd_scale_table, reads_params=False)

    p = sub.add_parser("replay", help="evaluate a bundle on logged traffic and the feedback that followed")
    p.add_argument(
        "--database",
        help="the service's SQLite file or PostgreSQL URL (default: MOVIEREC_DATABASE_URL if set, "
        "else data/serving/movierec.sqlite)",
    )
    p.add_argument("--bundle", help="a bundle folder to re-score the logged requests with (default: only the logs)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", help="write the report as JSON here")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("report", help="print the table of the last evaluation (reports/metrics.json)")
    p.add_argument("--metrics", default=str(paths.REPORTS_DIR / "metrics.json"))
    p.set_defaults(func=cmd_report)
    return parser


# the pipeline stage each command runs (its wall time is recorded for MLflow and the Pushgateway)
STAGE_OF = {
    ("data", "fetch"): "fetch",
    ("data", "prepare"): "prepare",
    ("split", None): "split",
    ("features", None): "features",
    ("baselines", None): "baselines",
    ("tune", None): "tune",
    ("train", "retrieval"): "train_retrieval",
    ("index", "build"): "build_index",
    ("train", "ranking"): "train_ranking",
    ("ablation", None): "ablation",
    ("report-global", None): "report_global",
    ("evaluate", None): "evaluate",
    ("bundle", None): "bundle",
    ("register", None): "register",
}
PUSH_AFTER = ("train_retrieval", "train_ranking", "evaluate", "register")


def _after_stage(args: argparse.Namespace, settings: Settings, stage: str, seconds: float) -> None:
    """Record the stage's wall time; push the training metrics when a Pushgateway is configured."""
    from movierec.recording import Recorder
    from movierec.tracking.pushgateway import gateway_address, push

    _, layout = _stage_args(args, settings)
    Recorder(layout.reports, layout.plots).timing(stage, seconds)
    if stage in PUSH_AFTER and gateway_address() and (layout.reports / "metrics.json").exists():
        try:
            pushed = push(settings, layout)
            print(f"training metrics pushed to {pushed['gateway']}", file=sys.stderr)
        except MovierecError as exc:  # the stage's work is done and kept; the push is reported
            print(f"warning: {exc}", file=sys.stderr)


def _chief_here() -> bool:
    """False in a worker of a training cluster other than its chief (``TF_CONFIG``): the
    chief records the stage."""
    from movierec.orchestration.cluster import role_from_env

    role = role_from_env()
    return role is None or role.chief


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, Settings], None] = args.func
    start = time.perf_counter()
    sub_name = getattr(args, f"{args.command}_command", None)
    try:
        # checked against the typed settings (unknown keys, types, ranges), defaults filled in;
        # the service and its benchmark read none of them, so they start without a params file
        reads_params = getattr(args, "reads_params", True)
        settings = load_settings(args.params, args.profile) if reads_params else Settings()
        func(args, settings)
        stage = STAGE_OF.get((args.command, sub_name))
        if stage is not None and not getattr(args, "outputs_elsewhere", False) and _chief_here():
            _after_stage(args, settings, stage, time.perf_counter() - start)
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"[{args.command}{' ' + sub_name if sub_name else ''} done in {time.perf_counter() - start:.1f}s]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
