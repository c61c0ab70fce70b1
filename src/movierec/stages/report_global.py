"""Stage ``report_global``: the production-like second report, on the global temporal split.

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

import movierec.baselines.similarity_cache as similarity_cache
from movierec.baselines.run import run_baselines
from movierec.evaluation.report import evaluate
from movierec.features import build_features
from movierec.io import write_json
from movierec.models.context import load_periods
from movierec.models.train import train_ranking, train_retrieval
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.split import method_params, split

REPORT = "metrics_global"


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """The pipeline on the global temporal split, first training seed, tuned settings; writes
    ``reports/metrics_global.json`` (intermediates under ``data/global``)."""
    from movierec.models.export import save_towers
    from movierec.stages.inputs import ranking_section, retrieval_section

    with similarity_cache.kept_in(paths.similarity_cache):
        return global_report(
            paths.prepared,
            paths.global_work,
            Recorder(paths.reports, paths.global_work / "reports" / "plots"),
            settings.as_params(),
            retrieval_section(settings, paths),
            ranking_section(settings, paths),
            settings.train.seeds[0],
            save_towers,
        )


def global_report(
    prepared_dir: Path,
    work_root: Path,
    recorder: Recorder,
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
        recorder: where the report goes (``reports/metrics_global.json``; its curves under
            ``data/global``).
        params: the whole params.yaml (``split``, ``features``, ``baselines``, ``evaluate``).
        retrieval: the retrieval settings (tuned), as the training stage uses them.
        ranking: the ranking settings (tuned, with the EASE features' settings).
        seed: the training seed.
        save_towers_fn: :func:`movierec.models.export.save_towers`.

    Returns:
        The evaluation, recorded as ``metrics_global``.
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
    periods = load_periods(
        prepared_dir, root / "split", root / "features", widths, params["features"], params["train"]["valid_users"]
    )
    baselines = root / "recs" / "baselines"
    if ranking.get("ease") is not None:  # the EASE features take this split's own tuned settings
        from movierec.io import read_json

        chosen = read_json(baselines / "validation.json")["ease_recency"]["chosen"]
        ranking = {**ranking, "ease": (float(chosen["l2"]), float(chosen["recency_tau"]), *ranking["ease"][2:])}
    work = Recorder(root / "reports")  # the intermediate reports stay with the intermediates
    train_retrieval(
        periods, retrieval, [seed], None, root / "models", root / "recs" / "retrieval", work, save_towers_fn
    )
    train_ranking(periods, ranking, [seed], root / "models", None, root / "recs" / "ranking", work)
    result = evaluate(
        root / "split",
        root / "features",
        [baselines, root / "recs" / "retrieval", root / "recs" / "ranking"],
        recorder,
        params["evaluate"],
        report_name=REPORT,
    )
    return result
