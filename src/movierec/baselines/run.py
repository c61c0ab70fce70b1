"""``movierec baselines``: tune each baseline on validation, refit, and recommend for test.

For each baseline the grid in ``params.yaml`` is fitted on the training part and
scored on the validation part; the configuration with the best ``tune_metric`` wins.
It is then refitted on training plus validation (everything before the test period)
and writes its top-``k`` lists for the test users to ``<out>/<name>.parquet``, which
the evaluate step scores next to every other system. Cold users get the tuned
most-popular list. The rating baseline writes its test predictions the same way.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.baselines.base import recommend
from movierec.baselines.biases import BiasBaseline
from movierec.baselines.ease import EASE, GramEigen, capped_catalogue
from movierec.baselines.itemknn import ItemKNN
from movierec.baselines.popular import MostPopular
from movierec.data.matrix import InteractionMatrix
from movierec.data.parts import read_parts, write_recs
from movierec.errors import ParamsError
from movierec.evaluation import ranking_metrics, rating_metrics
from movierec.evaluation.protocol import EvalSet, build_eval_set
from movierec.io import atomic_dir, write_json

FACTORIES = {"most_popular": MostPopular, "item_knn": ItemKNN, "ease": EASE, "ease_recency": EASE}


class _Fitter:
    """Fits baselines on one dataset, sharing EASE's Gram eigendecomposition across the
    plain and recency-weighted variants and every λ."""

    def __init__(self, data: InteractionMatrix):
        self.data = data
        self._eigen: dict[int, GramEigen] = {}

    def fit(self, name: str, config: dict[str, Any]) -> Any:
        if FACTORIES[name] is EASE:
            if name == "ease_recency" and config.get("recency_tau") is None:
                raise ParamsError("baselines.ease_recency needs recency_tau (a number of events)")
            model = EASE(**config)
            if model.max_items not in self._eigen:
                self._eigen[model.max_items] = GramEigen.from_data(self.data, model.max_items)
            return model.fit(self.data, eigen=self._eigen[model.max_items])
        return FACTORIES[name](**config).fit(self.data)


def grid(section: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Expand ``{param: [values...]}`` into a list of configurations (scalars are fixed)."""
    if not isinstance(section, dict) or not section:
        raise ParamsError(f"baselines.{name} must map parameter names to values or lists of values")
    keys = list(section)
    values = [v if isinstance(v, list) else [v] for v in section.values()]
    for key, options in zip(keys, values):
        if not options:
            raise ParamsError(f"baselines.{name}.{key} is an empty list")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def sample_users(evalset: EvalSet, n: int | None, seed: int = 0) -> EvalSet:
    """``evalset`` restricted to a seeded sample of ``n`` of its users (in their order);
    unchanged when ``n`` is None or at least its number of users."""
    if n is None or n >= evalset.user_ids.size:
        return evalset
    keep = np.zeros(evalset.user_ids.size, bool)
    keep[np.random.default_rng(seed).choice(evalset.user_ids.size, size=int(n), replace=False)] = True
    return evalset.subset(keep)


def _score(model: Any, evalset: EvalSet, fallback: np.ndarray, ks: list[int], label: str) -> dict[str, float]:
    recs = recommend(model, evalset.rows_for(model), max(ks), fallback, progress=label)
    return ranking_metrics(recs, evalset.relevant, ks)


def run_baselines(split_dir: Path, out_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Tune, refit and write every baseline's test recommendations.

    Args:
        split_dir: the split step's output.
        out_dir: where ``<baseline>.parquet`` files and ``validation.json`` go (atomically).
        params: the ``baselines`` section plus ``evaluate`` keys ``ks`` and ``min_rating``.

    Returns:
        For each baseline: the chosen configuration and its validation metrics, plus the
        whole validation grid.
    """
    ks = [int(k) for k in params["ks"]]
    tune_metric = params["tune_metric"]
    min_rating = params.get("min_rating")
    train, valid = read_parts(split_dir, "train"), read_parts(split_dir, "valid")
    known_valid = InteractionMatrix.from_table(train)
    eval_valid = build_eval_set(known_valid, valid, min_rating)
    all_valid_users = int(eval_valid.user_ids.size)
    eval_valid = sample_users(eval_valid, params.get("tune_users"))
    if tune_metric not in {f"{m}@{k}" for m in ("recall", "ndcg", "hitrate", "map", "precision") for k in ks} | {"mrr"}:
        raise ParamsError(f"baselines.tune_metric '{tune_metric}' is not a metric computed at ks={ks}")
    report: dict[str, Any] = {"tune_metric": tune_metric, "validation_users": int(eval_valid.user_ids.size)}
    if eval_valid.user_ids.size < all_valid_users:
        report["validation_sample"] = (
            f"the grids are scored on a seeded sample of {eval_valid.user_ids.size} of the "
            f"{all_valid_users} validation users (baselines.tune_users)"
        )
    chosen: dict[str, dict[str, Any]] = {}
    fallback_valid: np.ndarray | None = None
    fitter = _Fitter(known_valid)
    for name, factory in FACTORIES.items():
        configs = grid(params.get(name, {}), name)
        results = []
        for config in configs:
            start = time.perf_counter()
            model = fitter.fit(name, config)
            fb = model.scores_ if fallback_valid is None and name == "most_popular" else fallback_valid
            metrics = _score(model, eval_valid, fb, ks, f"{name} {config}")
            results.append({"config": config, "metrics": metrics})
            print(
                f"  valid {name:<12} {config}: {tune_metric}={metrics[tune_metric]:.4f} "
                f"({time.perf_counter() - start:.1f}s)",
                file=sys.stderr,
            )
        best = max(results, key=lambda r: r["metrics"][tune_metric])
        chosen[name] = best["config"]
        if name == "most_popular":
            fallback_valid = factory(**best["config"]).fit(known_valid).scores_
        report[name] = {"chosen": best["config"], "validation": best["metrics"], "grid": results}
        if FACTORIES[name] is EASE:
            note = capped_catalogue(known_valid, int(best["config"].get("max_items", 20_000)))
            if note:
                report[name]["approximation"] = note
                print(f"  note: {name}: {note['note']}", file=sys.stderr)

    bias_configs = grid(params.get("biases", {"reg": 10.0}), "biases")
    v_true = valid.column("rating").to_numpy()
    bias_results = []
    for config in bias_configs:
        pred = (
            BiasBaseline(**config)
            .fit(
                train.column("user_id").to_numpy(),
                train.column("item_id").to_numpy(),
                train.column("rating").to_numpy(),
            )
            .predict(valid.column("user_id").to_numpy(), valid.column("item_id").to_numpy())
        )
        bias_results.append({"config": config, "metrics": rating_metrics(v_true, pred)})
    best_bias = min(bias_results, key=lambda r: r["metrics"]["rmse"])
    report["biases"] = {"chosen": best_bias["config"], "validation": best_bias["metrics"], "grid": bias_results}

    history = read_parts(split_dir, "train", "valid")
    test = read_parts(split_dir, "test")
    known_test = InteractionMatrix.from_table(history)
    eval_test = build_eval_set(known_test, test, min_rating)
    k_max = max(ks)
    with atomic_dir(out_dir) as tmp:
        fallback_test = MostPopular(**chosen["most_popular"]).fit(known_test).scores_
        test_fitter = _Fitter(known_test)
        for name in FACTORIES:
            model = test_fitter.fit(name, chosen[name])
            recs = recommend(model, eval_test.rows_for(model), k_max, fallback_test, progress=f"test {name}")
            write_recs(tmp / f"{name}.parquet", eval_test.user_ids, recs, known_test.items.ids)
        bias = BiasBaseline(**best_bias["config"]).fit(
            history.column("user_id").to_numpy(),
            history.column("item_id").to_numpy(),
            history.column("rating").to_numpy(),
        )
        pred = bias.predict(test.column("user_id").to_numpy(), test.column("item_id").to_numpy())
        mean = np.full(test.num_rows, float(np.mean(history.column("rating").to_numpy())))
        for name, values in {"biases": pred, "global_mean": mean}.items():
            pq.write_table(
                pa.table(
                    {
                        "user_id": test.column("user_id"),
                        "item_id": test.column("item_id"),
                        "prediction": pa.array(values, pa.float32()),
                    }
                ),
                tmp / f"ratings_{name}.parquet",
            )
        write_json(tmp / "validation.json", report)
    return report
