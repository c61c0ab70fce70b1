"""``movierec report-global``: the production-like second report, on the global temporal split.

The quality bars use the per-user hold-out (every active user scored). A service in
production sees something else: it is trained on everything up to a date and then
answers everyone after it, including users and items it has never seen. This stage
repeats the pipeline on that protocol: a global temporal split (``split.temporal``),
features as of each cut, the baselines tuned on its validation window, and both models
trained with the settings the tune stage chose, on the first training seed. Nothing it
writes is served; it lives under ``data/global/`` and ``reports/metrics_global.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from movierec.baselines.run import run_baselines
from movierec.evaluation.report import evaluate
from movierec.features import build_features
from movierec.io import write_json
from movierec.models.context import load_periods
from movierec.models.train import train_ranking, train_retrieval
from movierec.split import method_params, split


def global_report(
    prepared_dir: Path,
    work_root: Path,
    metrics_path: Path,
    params: dict[str, Any],
    retrieval: dict[str, Any],
    ranking: dict[str, Any],
    seed: int,
    save_towers_fn: Any,
) -> dict[str, Any]:
    """Split globally by time, then baselines, retrieval, ranking and the evaluation.

    Args:
        prepared_dir: the prepare step's output.
        work_root: where every intermediate goes (``data/global``).
        metrics_path: the report (``reports/metrics_global.json``).
        params: the whole params.yaml (``split``, ``features``, ``baselines``, ``evaluate``).
        retrieval: the retrieval settings (tuned), as the training stage uses them.
        ranking: the ranking settings (tuned, with the EASE features' settings).
        seed: the training seed.
        save_towers_fn: :func:`movierec.models.export.save_towers`.

    Returns:
        The evaluation written to ``metrics_path``.
    """
    root = Path(work_root)
    write_json(root / "split.json", split(prepared_dir, root / "split", method_params(params["split"], "temporal")))
    build_features(prepared_dir, root / "split", root / "features", params["features"])
    run_baselines(
        root / "split",
        root / "recs" / "baselines",
        {**params["baselines"], "ks": params["evaluate"]["ks"], "min_rating": params["evaluate"]["min_rating"]},
    )
    widths = {k: int(v) for k, v in retrieval["widths"].items()}
    periods = load_periods(prepared_dir, root / "split", root / "features", widths, params["features"])
    baselines = root / "recs" / "baselines"
    if ranking.get("ease") is not None:  # the EASE features take this split's own tuned settings
        from movierec.io import read_json

        chosen = read_json(baselines / "validation.json")["ease_recency"]["chosen"]
        ranking = {**ranking, "ease": (float(chosen["l2"]), float(chosen["recency_tau"]))}
    train_retrieval(
        periods, retrieval, [seed], None, root / "models", root / "recs" / "retrieval", root / "reports", save_towers_fn
    )
    train_ranking(periods, ranking, [seed], root / "models", None, root / "recs" / "ranking", root / "reports")
    result = evaluate(
        root / "split",
        root / "features",
        [baselines, root / "recs" / "retrieval", root / "recs" / "ranking"],
        metrics_path,
        root / "reports" / "plots",
        params["evaluate"],
    )
    return result
