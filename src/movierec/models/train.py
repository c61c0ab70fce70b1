"""``movierec train retrieval`` and ``movierec train ranking``: the model stages of the pipeline.

Scheme (no label is ever seen by the stage it evaluates):

* Retrieval is fitted on the training part, scored on validation after each epoch;
  the best epoch count by validation Recall@100 is kept.
* For the test numbers, retrieval is refitted on training plus validation with that
  epoch count and serves the test users.
* The ranker learns from a window the retrieval model did not train on: retrieval
  fitted on training, ranker labels from validation (features as of validation start).
  It then reorders the candidates of the train+validation retrieval for the test users.
* The served bundle repeats this one period later: retrieval on every event, the
  ranker on test-period labels with the train+validation retrieval
  (``train.final_fit_all: false`` serves the evaluated models instead).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from movierec.baselines.run import write_recs
from movierec.data.matrix import InteractionMatrix
from movierec.evaluation import ranking_metrics
from movierec.evaluation.protocol import EvalSet, build_eval_set
from movierec.io import atomic_dir, atomic_file, write_json
from movierec.models.context import Periods
from movierec.models.inputs import Catalogue, user_histories
from movierec.models.ranking import candidate_rows
from movierec.models.ranking_features import RankingContext
from movierec.models.retrieval import FittedRetrieval, fit_retrieval

WIDTHS_KEYS = ("genres", "title", "tags")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively overlay ``override`` on ``base`` (for ablation variants)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def first_stage(fitted: Any, known: pa.Table, catalogue: Catalogue, users: Any, cut: int, evalset: EvalSet,
                k: int) -> tuple[np.ndarray, np.ndarray, RankingContext]:
    """Candidate rows for every evaluated user (warm: the towers; cold: recent popularity).

    Returns:
        ``(rows, query_embeddings, context)``.
    """
    if not np.array_equal(catalogue.item_id, evalset.items.ids):
        raise ValueError("the catalogue and the evaluation's known items differ")
    ctx = RankingContext.build(known, catalogue, fitted.embed_items(), users, cut)
    histories = user_histories(known)
    query = fitted.embed_users(evalset.user_ids, [histories.get(int(u), np.array([], np.int64))
                                                  for u in evalset.user_ids])
    seen = [evalset.history[i].indices for i in range(len(evalset.user_ids))]
    return candidate_rows(ctx, query, evalset.user_ids, k, seen), query, ctx


def slice_metrics(rows: np.ndarray, evalset: EvalSet, ks: list[int]) -> dict[str, dict[str, float]]:
    """Ranking metrics for all, warm and cold users."""
    out = {"all": ranking_metrics(rows, evalset.relevant, ks)}
    for name, mask in (("warm", ~evalset.cold_user), ("cold", evalset.cold_user)):
        if mask.any():
            out[name] = ranking_metrics(rows[mask], evalset.relevant[mask], ks)
    return out


def _write_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_file(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def train_retrieval(periods: Periods, params: dict[str, Any], seed: int, served_dir: Path, work_dir: Path,
                    recs_dir: Path, reports_dir: Path, save_towers_fn: Any) -> dict[str, Any]:
    """Select epochs on validation, evaluate on test, run the ablation, export the served towers.

    Args:
        periods: the loaded split and catalogues.
        params: the ``retrieval`` section (model config, ``ablation`` variants, ``select_metric``).
        seed: the shared seed.
        served_dir: where the served towers go (``checkpoints/retrieval``).
        work_dir: where the evaluated models go for the ranking stage (``data/models``).
        recs_dir: where the test lists go (``data/recs/retrieval``).
        reports_dir: metrics and per-epoch curves.
        save_towers_fn: :func:`movierec.models.export.save_towers` (injected to keep imports light).

    Returns:
        The stage report (also written to ``reports/retrieval.json``).
    """
    config = {k: v for k, v in params.items() if k not in ("ablation", "select_metric", "final_fit_all")}
    widths = {k: int(config["widths"][k]) for k in WIDTHS_KEYS}
    ks = [10, 100]
    select = params.get("select_metric", "recall@100")
    valid_eval = build_eval_set(InteractionMatrix.from_table(periods.train), periods.valid)
    best: dict[str, Any] = {"score": -1.0, "epoch": 0, "weights": None}

    def on_epoch(epoch: int, fitted: FittedRetrieval) -> dict[str, float]:
        rows, _, _ = first_stage(fitted, periods.train, periods.catalogue_valid, periods.users,
                                 periods.valid_start, valid_eval, 100)
        metrics = slice_metrics(rows, valid_eval, ks)
        score = metrics.get("warm", metrics["all"])[select]
        if score > best["score"]:
            best.update(score=score, epoch=epoch, weights=fitted.model.get_weights())
        return {f"valid_{s}_{m}": round(v, 6) for s, ms in metrics.items() for m, v in ms.items()
                if m in ("recall@10", "ndcg@10", "recall@100")}

    r_train = fit_retrieval(periods.train, periods.catalogue_valid, periods.users, config, seed,
                            on_epoch=on_epoch, label="retrieval (train, epochs on valid)")
    r_train.model.set_weights(best["weights"])
    epochs = int(best["epoch"])
    _write_curve(reports_dir / "plots" / "retrieval_epochs.csv", r_train.history)

    test_eval = build_eval_set(InteractionMatrix.from_table(periods.train_valid), periods.test)
    known_tv = periods.train_valid
    r_tv = fit_retrieval(known_tv, periods.catalogue_test, periods.users, config, seed, epochs=epochs,
                         label="retrieval (train+valid)")
    rows, _, _ = first_stage(r_tv, known_tv, periods.catalogue_test, periods.users, periods.test_start, test_eval, 100)
    with atomic_dir(recs_dir) as tmp:
        write_recs(tmp / "retrieval.parquet", test_eval.user_ids, rows, periods.catalogue_test.item_id)

    ablation: dict[str, Any] = {}
    for name, override in (params.get("ablation") or {}).items():
        variant = merge(config, override or {})
        fitted = r_tv if variant == config else fit_retrieval(known_tv, periods.catalogue_test, periods.users,
                                                              variant, seed, epochs=epochs, label=f"ablation {name}")
        vrows, _, _ = first_stage(fitted, known_tv, periods.catalogue_test, periods.users, periods.test_start,
                                  test_eval, 100)
        ablation[name] = {s: {m: round(v, 6) for m, v in ms.items() if m in ("recall@10", "ndcg@10", "recall@100")}
                          for s, ms in slice_metrics(vrows, test_eval, ks).items()}

    with atomic_dir(work_dir) as tmp:
        save_towers_fn(r_train, tmp / "retrieval_train", widths)
        save_towers_fn(r_tv, tmp / "retrieval_train_valid", widths)
    served = r_tv
    if params.get("final_fit_all", True):
        served = fit_retrieval(periods.everything, periods.catalogue_all, periods.users, config, seed,
                               epochs=epochs, label="retrieval (all events, served)")
    publish(served_dir, lambda staging: save_towers_fn(served, staging, widths))
    report = {"chosen_epochs": epochs, "select_metric": f"warm {select}", "valid_best": round(best["score"], 6),
              "ablation": ablation, "served_fitted_on": "all events" if params.get("final_fit_all", True)
              else "train+valid"}
    write_json(reports_dir / "retrieval.json", report)
    return report


def publish(dest: Path, write: Any) -> None:
    """Write into a staging folder beside ``dest``, then swap each entry into ``dest``.

    ``dest`` may hold entries written by other stages (the indexes beside the towers);
    only the entries that ``write`` produces are replaced, each by a rename, and nothing
    is replaced if ``write`` fails.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-staging-", dir=dest.parent))
    try:
        write(staging)
        for entry in sorted(staging.iterdir()):
            target = dest / entry.name
            if target.is_dir():
                old = dest / f".{entry.name}.old-{os.getpid()}"
                target.rename(old)
                entry.rename(target)
                shutil.rmtree(old)
            else:
                os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def train_ranking(periods: Periods, params: dict[str, Any], seed: int, work_dir: Path, served_dir: Path,
                  recs_dir: Path, reports_dir: Path) -> dict[str, Any]:
    """Fit the ranker on the validation window, score the test chain, export the served ranker.

    Args:
        periods: the loaded split and catalogues.
        params: the ``ranking`` section (model config, ``candidates``, ``random_negatives``).
        seed: the shared seed.
        work_dir: the retrieval stage's evaluated models (``data/models``).
        served_dir: ``checkpoints/ranking``.
        recs_dir: where the chain's test lists and rating predictions go (``data/recs/ranking``).
        reports_dir: metrics and per-epoch curves.

    Returns:
        The stage report (also written to ``reports/ranking.json``).
    """
    from movierec.models.export import LoadedRetrieval
    from movierec.models.ranking import fit_ranker, rerank, training_pairs
    from movierec.models.ranking_export import save_ranker

    k = int(params.get("candidates", 100))
    negatives = int(params.get("random_negatives", 20))
    r_train = LoadedRetrieval(work_dir / "retrieval_train", periods.users)
    r_tv = LoadedRetrieval(work_dir / "retrieval_train_valid", periods.users)

    def fit_on_window(retrieval: Any, known: pa.Table, catalogue: Catalogue, cut: int, labels: pa.Table,
                      label: str) -> Any:
        ctx = RankingContext.build(known, catalogue, retrieval.embed_items(), periods.users, cut)
        histories = user_histories(known)
        users = np.unique(labels.column("user_id").to_numpy())
        query = retrieval.embed_users(users, [histories.get(int(u), np.array([], np.int64)) for u in users])
        feats, y, ratings = training_pairs(ctx, dict(zip(users.tolist(), query)), labels, k, negatives, seed)
        return fit_ranker(feats, y, ratings, params, seed, label=label), int(y.size), float(y.mean())

    ranker, n_pairs, positive_share = fit_on_window(r_train, periods.train, periods.catalogue_valid,
                                                    periods.valid_start, periods.valid, "ranker (valid window)")
    test_eval = build_eval_set(InteractionMatrix.from_table(periods.train_valid), periods.test)
    cands, query, ctx = first_stage(r_tv, periods.train_valid, periods.catalogue_test, periods.users,
                                    periods.test_start, test_eval, k)
    chain = rerank(ranker, ctx, test_eval.user_ids, query, cands)

    # rating predictions for every test event (items the catalogue lacks: the user's mean)
    from movierec.models.ranking_features import pair_features

    test_users = periods.test.column("user_id").to_numpy()
    test_rows = periods.catalogue_test.rows_of(periods.test.column("item_id").to_numpy())
    histories = user_histories(periods.train_valid)
    uniq = np.unique(test_users)
    q_users = r_tv.embed_users(uniq, [histories.get(int(u), np.array([], np.int64)) for u in uniq])
    pred = np.array([ctx.user_stats.get(int(u), (0, ctx.global_mean, 0))[1] for u in test_users], np.float32)
    known_rows = test_rows >= 0
    if known_rows.any():
        q = q_users[np.searchsorted(uniq, test_users[known_rows])]
        _, ratings = ranker.predict(pair_features(ctx, test_users[known_rows], test_rows[known_rows], q))
        pred[known_rows] = np.clip(ratings, 0.5, 5.0)
    with atomic_dir(recs_dir) as tmp:
        write_recs(tmp / "chain.parquet", test_eval.user_ids, chain, periods.catalogue_test.item_id)
        pa_table = pa.table({"user_id": periods.test.column("user_id"), "item_id": periods.test.column("item_id"),
                             "prediction": pa.array(pred, pa.float32())})
        import pyarrow.parquet as pq

        pq.write_table(pa_table, tmp / "ratings_ranker.parquet")
    _write_curve(reports_dir / "plots" / "ranking_epochs.csv", ranker.history)

    served, served_pairs = ranker, n_pairs
    if params.get("final_fit_all", True):
        served, served_pairs, _ = fit_on_window(r_tv, periods.train_valid, periods.catalogue_test,
                                                periods.test_start, periods.test, "ranker (test window, served)")
    publish(served_dir, lambda staging: save_ranker(served, staging, {"candidates": k}))
    report = {"training_pairs": n_pairs, "positive_share": round(positive_share, 4),
              "final_epoch": {m: round(v, 4) for m, v in ranker.history[-1].items()},
              "served_fitted_on": "test-period labels" if params.get("final_fit_all", True) else "valid-period labels",
              "served_training_pairs": served_pairs}
    write_json(reports_dir / "ranking.json", report)
    return report
