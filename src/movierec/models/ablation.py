"""``movierec ablation``: what each part of the chain is worth, as its own pipeline stage.

Every row changes one thing and is scored on the same test users as the report:

* retrieval rows (``retrieval.ablation``): the two-tower model with parts switched off
  (the neighbour blend among them), refitted on train+validation with the epochs the
  retrieval stage chose; a row with no change is the retrieval stage's own model;
* chain rows (``ranking.ablation``): the ranker refitted with named features held at zero
  (``drop``), over the first seed's retrieval models, plus the retrieval order alone.

Each row carries Recall@10, NDCG@10 and Recall@100 with a 95% bootstrap interval over
users, and its NDCG@10 ratio to the full chain with a paired interval. It runs on the
first training seed only: its job is to rank the parts, not to repeat the headline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from movierec.data.matrix import InteractionMatrix
from movierec.errors import DataError, ParamsError
from movierec.evaluation import per_user_ranking_metrics
from movierec.evaluation.bootstrap import mean_interval, paired_ratio
from movierec.evaluation.protocol import EvalSet, build_eval_set
from movierec.models.blend import Blend
from movierec.models.context import Periods
from movierec.models.ranking_features import DENSE_FEATURES, RankingContext
from movierec.models.retrieval import fit_retrieval
from movierec.models.train import chain_on_test, first_stage, fit_ranker_on_window, merge
from movierec.recording import Recorder

KS = (10, 100)


def run_ablation(
    periods: Periods,
    retrieval: dict[str, Any],
    ranking: dict[str, Any],
    seed: int,
    epochs: int,
    work_dir: Path,
    recorder: Recorder,
) -> dict[str, Any]:
    """Fit and score every ablation row; record ``ablation.json``.

    Args:
        periods: the loaded split and catalogues.
        retrieval: the ``retrieval`` section (its ``ablation`` mapping: row name -> overrides).
        ranking: the ``ranking`` section (its ``ablation`` mapping: row name -> ``{drop: [features]}``,
            and ``ease``: the EASE features' ``(l2, tau)`` or None).
        seed: the training seed (the retrieval stage's first).
        epochs: the epoch count the retrieval stage chose for that seed.
        work_dir: the retrieval stage's evaluated models (``data/models``).
        recorder: where the report goes.

    Returns:
        ``{"retrieval": {row: metrics}, "chain": {row: metrics}, "seed", "epochs"}``.
    """
    from movierec.models.export import LoadedRetrieval

    test_eval = build_eval_set(InteractionMatrix.from_table(periods.train_valid), periods.test)
    config = {k: v for k, v in retrieval.items() if k not in ("ablation", "select_metric", "final_fit_all")}
    report: dict[str, Any] = {
        "seed": seed,
        "epochs": epochs,
        "users": int(test_eval.user_ids.size),
        "retrieval": {},
        "chain": {},
    }
    seed_dir = Path(work_dir) / f"seed{seed}"
    if not (seed_dir / "retrieval_train").exists():
        raise DataError(f"no retrieval models for seed {seed}; run `movierec train retrieval` first", path=seed_dir)
    r_train = LoadedRetrieval(seed_dir / "retrieval_train", periods.users)
    r_tv = LoadedRetrieval(seed_dir / "retrieval_train_valid", periods.users)
    k = int(ranking["candidates"])
    ease = ranking.get("ease")
    # train+validation indexed once as of the test start: every row's first stage reuses it
    # (only the towers' item embeddings differ), instead of indexing the events again
    test_ctx = RankingContext.build(
        periods.train_valid,
        periods.catalogue_test,
        np.zeros((len(periods.catalogue_test), 1), np.float32),
        periods.users,
        periods.test_start,
        ease=ease,
    )

    def served_first_stage(n: int) -> tuple[np.ndarray, np.ndarray, RankingContext]:
        return first_stage(
            r_tv,
            periods.train_valid,
            periods.catalogue_test,
            periods.users,
            periods.test_start,
            test_eval,
            n,
            known_ctx=test_ctx,
        )

    # the served first stage's lists, computed once: its retrieval row, the chain's candidates
    # and every chain row's reranking read them
    served = served_first_stage(k)
    for name, override in (retrieval.get("ablation") or {}).items():
        if not override:  # the full first stage: the retrieval stage's own model for this seed, not a refit
            rows = served[0] if k == 100 else served_first_stage(100)[0]
            report["retrieval"][name] = _row(rows, test_eval)
            continue
        fitted = fit_retrieval(
            periods.train_valid,
            periods.catalogue_test,
            periods.users,
            merge(config, override),
            seed,
            epochs=epochs,
            label=f"ablation {name}",
        )
        rows, _, _ = first_stage(
            fitted,
            periods.train_valid,
            periods.catalogue_test,
            periods.users,
            periods.test_start,
            test_eval,
            100,
            known_ctx=test_ctx,
        )
        report["retrieval"][name] = _row(rows, test_eval)

    per_user: dict[str, np.ndarray] = {}
    cands = served[0]
    # the training part as of the validation start, with the first seed's towers: every
    # ranker row learns from it (each holds its own features at zero)
    window_ctx = RankingContext.build(
        periods.train,
        periods.catalogue_valid,
        r_train.embed_items(),
        periods.users,
        periods.valid_start,
        ease=ease,
        blend=Blend.from_config(r_train.config),
    )
    report["chain"]["retrieval_order"] = _row(cands, test_eval)
    per_user["retrieval_order"] = _ndcg(cands, test_eval)
    for name, spec in (ranking.get("ablation") or {"full": {}}).items():
        dropped = tuple((spec or {}).get("drop", []))
        unknown = sorted(set(dropped) - set(DENSE_FEATURES))
        if unknown:
            raise ParamsError(
                f"ranking.ablation.{name}.drop names unknown feature(s) {', '.join(unknown)}; "
                f"known: {', '.join(DENSE_FEATURES)}"
            )
        ranker, _, _ = fit_ranker_on_window(
            r_train,
            periods.train,
            periods.catalogue_valid,
            periods.valid_start,
            periods.valid_labels,
            periods.users,
            ranking,
            seed,
            ease,
            f"ablation ranker {name}",
            dropped=dropped,
            ctx=window_ctx,
        )
        chain, _, _ = chain_on_test(ranker, r_tv, periods, test_eval, k, ease, dropped=dropped, first=served)
        report["chain"][name] = {**_row(chain, test_eval), "dropped": list(dropped)}
        per_user[name] = _ndcg(chain, test_eval)
    reference = "full" if "full" in per_user else next(iter(per_user))
    for name, values in per_user.items():
        report["chain"][name]["ndcg@10_vs_" + reference] = paired_ratio(values, per_user[reference])
    recorder.metrics("ablation", report)
    return report


def _padded(rows: np.ndarray) -> np.ndarray:
    """Lists right-padded with -1 to the largest cut-off (a chain of fewer candidates)."""
    if rows.shape[1] >= max(KS):
        return rows
    return np.hstack([rows, np.full((rows.shape[0], max(KS) - rows.shape[1]), -1, rows.dtype)])


def _ndcg(rows: np.ndarray, evalset: EvalSet) -> np.ndarray:
    return per_user_ranking_metrics(_padded(rows), evalset.relevant, KS)["ndcg@10"]


def _row(rows: np.ndarray, evalset: EvalSet) -> dict[str, Any]:
    metrics = per_user_ranking_metrics(_padded(rows), evalset.relevant, KS)
    out: dict[str, Any] = {m: float(metrics[m].mean()) for m in ("recall@10", "ndcg@10", "recall@100")}
    out["ndcg@10_interval"] = mean_interval(metrics["ndcg@10"])
    return out


def format_ablation(report: dict[str, Any]) -> str:
    """The ablation as two small text tables."""
    lines = [f"ablation on {report['users']} test users (seed {report['seed']}, {report['epochs']} epochs)"]
    for part in ("retrieval", "chain"):
        lines.append(f"{part}:")
        for name, row in report[part].items():
            interval = row["ndcg@10_interval"]
            ratio = next((v for k, v in row.items() if k.startswith("ndcg@10_vs_")), None)
            extra = f"  vs full {ratio['ratio']:.3f} [{ratio['low']:.3f}, {ratio['high']:.3f}]" if ratio else ""
            lines.append(
                f"  {name:<22} recall@100 {row['recall@100']:.4f}  ndcg@10 {row['ndcg@10']:.4f} "
                f"[{interval['low']:.4f}, {interval['high']:.4f}]{extra}"
            )
    return "\n".join(lines)
