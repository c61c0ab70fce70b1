"""``movierec tune``: the models' main hyperparameters chosen on validation, within a budget.

``params.yaml`` holds the search space and the number of trials (``tune``); this stage
runs an Optuna TPE search, seeded, and writes the chosen settings for the training
stages. Nothing is fitted to one dataset by hand: a new dataset gets its own search.

* **Retrieval** trials fit the two-tower model on the training part and score each epoch
  on validation (warm users' Recall@100, the retrieval's job); the best epoch counts.
* **Ranking** trials use the best retrieval trial's model. The validation users are split
  in two halves by a seeded draw: the ranker learns from half A's validation events and
  the chain (retrieval candidates reordered) is scored on half B's (NDCG@10), so a trial
  is never scored on its own labels.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movierec.data.matrix import InteractionMatrix
from movierec.errors import ParamsError
from movierec.evaluation import ranking_metrics
from movierec.evaluation.protocol import build_eval_set
from movierec.io import atomic_dir, write_json
from movierec.models.context import Periods
from movierec.recording import Recorder

TUNED_FILE = "settings.json"


def suggest(trial: Any, space: dict[str, Any], section: str) -> dict[str, Any]:
    """Draw one configuration from a search space.

    Each entry is ``{choices: [...]}`` (any values, lists included), or ``{low, high}``
    (integers when both are integers, else floats) with an optional ``log: true``.

    Raises:
        ParamsError: an entry has neither form, or its bounds are wrong.
    """
    out: dict[str, Any] = {}
    for name, spec in space.items():
        where = f"tune.{section}.space.{name}"
        if not isinstance(spec, dict):
            raise ParamsError(f"{where} must be a mapping with 'choices' or 'low' and 'high', got {spec!r}")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ParamsError(f"{where}.choices must be a non-empty list")
            out[name] = choices[trial.suggest_categorical(name, list(range(len(choices))))]
            continue
        low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
        numbers = (int, float)
        if not (isinstance(low, numbers) and isinstance(high, numbers)) or isinstance(low, bool) or low >= high:
            raise ParamsError(f"{where} needs numbers low < high (or a list of choices), got {spec!r}")
        if log and low <= 0:
            raise ParamsError(f"{where}: a log scale needs low > 0, got {low}")
        if isinstance(low, int) and isinstance(high, int):
            out[name] = trial.suggest_int(name, low, high, log=log)
        else:
            out[name] = trial.suggest_float(name, float(low), float(high), log=log)
    return out


def _budget(section: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    trials = section.get("trials")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ParamsError(f"tune.{name}.trials must be a positive integer, got {trials!r}")
    space = section.get("space")
    if not isinstance(space, dict) or not space:
        raise ParamsError(f"tune.{name}.space must map hyperparameters to their ranges")
    return trials, space


def split_users(valid: pa.Table, seed: int) -> tuple[pa.Table, pa.Table]:
    """Validation events of a seeded half of the users (A) and of the other half (B)."""
    users = np.unique(valid.column("user_id").to_numpy())
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(users)[: users.size // 2].tolist())
    mask = pc.is_in(valid.column("user_id"), value_set=pa.array(sorted(half), pa.int64()))
    return valid.filter(mask), valid.filter(pc.invert(mask))


def tune(
    periods: Periods,
    retrieval: dict[str, Any],
    ranking: dict[str, Any],
    settings: dict[str, Any],
    out_dir: Path,
    recorder: Recorder,
) -> dict[str, Any]:
    """Search both models' settings; write ``out_dir/settings.json`` and the trial report.

    Args:
        periods: the loaded split and catalogues.
        retrieval: the ``retrieval`` section (starting values for what the space leaves out).
        ranking: the ``ranking`` section, with ``ease`` (the EASE features' ``(l2, tau)`` or None).
        settings: the ``tune`` section: ``seed``, and ``retrieval``/``ranking`` each with
            ``trials`` and ``space``.
        out_dir: where ``settings.json`` goes (atomically).
        recorder: where the report (``tuning.json``: the trials and the choice) and the
            trials' table (``tuning_trials.csv``, one row per trial, for ``dvc plots``) go.

    Returns:
        ``{"retrieval": chosen settings, "ranking": chosen settings, ...report}``.
    """
    import optuna

    from movierec.models.ranking import rerank
    from movierec.models.train import first_stage, fit_ranker_on_window, known_context, select_epochs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = settings["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ParamsError(f"tune.seed must be an integer, got {seed!r}")
    r_trials, r_space = _budget(settings.get("retrieval") or {}, "retrieval")
    k_trials, k_space = _budget(settings.get("ranking") or {}, "ranking")
    if (settings.get("retrieval") or {}).get("blend") is not None:
        blend_grid(settings["retrieval"]["blend"])  # a bad grid stops before hours of trials
    valid_eval = build_eval_set(InteractionMatrix.from_table(periods.train), periods.valid_labels)
    ease = ranking.get("ease")
    known_ctx = known_context(periods, ease)  # the training part indexed once for every trial
    base = {k: v for k, v in retrieval.items() if k not in ("ablation", "select_metric", "final_fit_all")}
    rows: list[dict[str, Any]] = []
    best: dict[str, Any] = {"value": -1.0, "model": None, "config": None, "epochs": 0}
    start = time.perf_counter()

    def retrieval_objective(trial: Any) -> float:
        drawn = suggest(trial, r_space, "retrieval")
        config = {**base, **drawn}
        fitted, epochs, value = select_epochs(periods, config, seed, valid_eval, known_ctx=known_ctx)
        rows.append(
            {
                "model": "retrieval",
                "trial": trial.number,
                "value": round(value, 6),
                "epochs": epochs,
                **{k: str(v) for k, v in drawn.items()},
            }
        )
        print(
            f"  tune retrieval trial {trial.number}: valid recall@100 {value:.4f} ({epochs} epochs) {drawn}",
            file=sys.stderr,
        )
        if value > best["value"]:
            best.update(value=value, model=fitted, config=drawn, epochs=epochs)
        return value

    study = optuna.create_study(direction="maximize", sampler=_sampler(seed, r_trials))
    study.optimize(retrieval_objective, n_trials=r_trials)
    r_seconds = time.perf_counter() - start

    # the first stage's blend with the history's item neighbours: a grid on the best towers
    blend_report = None
    grid = (settings.get("retrieval") or {}).get("blend")
    if grid is not None:
        start = time.perf_counter()
        chosen_blend, blend_rows = tune_blend(best["model"], known_ctx, periods, valid_eval, grid)
        rows += blend_rows
        best["value"] = max(row["value"] for row in blend_rows)  # the chosen first stage's value
        best["config"] = {**best["config"], "blend": chosen_blend}
        best["model"].config = {**best["model"].config, "blend": chosen_blend}
        blend_report = {"grid": blend_rows, "chosen": chosen_blend, "seconds": round(time.perf_counter() - start, 1)}

    # ranking: learn on half A's validation events, score the chain on half B's
    labels_a, labels_b = split_users(periods.valid_labels, seed)
    eval_b = build_eval_set(InteractionMatrix.from_table(periods.train), labels_b)
    k = int(ranking["candidates"])
    cands, query, ctx = first_stage(
        best["model"],
        periods.train,
        periods.catalogue_valid,
        periods.users,
        periods.valid_start,
        eval_b,
        k,
        ease=ease,
        known_ctx=known_ctx,
    )
    retrieval_only = float(ranking_metrics(cands, eval_b.relevant, [10])["ndcg@10"])
    k_best: dict[str, Any] = {"value": -1.0, "config": None}
    start = time.perf_counter()

    def ranking_objective(trial: Any) -> float:
        drawn = suggest(trial, k_space, "ranking")
        config = {**ranking, **drawn}
        ranker, _, _ = fit_ranker_on_window(
            best["model"],
            periods.train,
            periods.catalogue_valid,
            periods.valid_start,
            labels_a,
            periods.users,
            config,
            seed,
            ease,
            f"tune ranking trial {trial.number}",
            ctx=ctx,
        )
        chain = rerank(ranker, ctx, eval_b.user_ids, query, cands)
        value = float(ranking_metrics(chain, eval_b.relevant, [10])["ndcg@10"])
        rows.append(
            {
                "model": "ranking",
                "trial": trial.number,
                "value": round(value, 6),
                **{k: str(v) for k, v in drawn.items()},
            }
        )
        print(
            f"  tune ranking trial {trial.number}: chain ndcg@10 on held-out valid users {value:.4f} {drawn}",
            file=sys.stderr,
        )
        if value > k_best["value"]:
            k_best.update(value=value, config=drawn)
        return value

    study = optuna.create_study(direction="maximize", sampler=_sampler(seed, k_trials))
    study.optimize(ranking_objective, n_trials=k_trials)
    k_seconds = time.perf_counter() - start

    chosen = {"retrieval": best["config"], "ranking": k_best["config"]}
    report = {
        "chosen": chosen,
        "retrieval": {
            "trials": r_trials,
            "objective": "valid warm recall@100",
            "best": round(best["value"], 6),
            "best_epochs": best["epochs"],
            "seconds": round(r_seconds, 1),
            "blend": blend_report,
        },
        "ranking": {
            "trials": k_trials,
            "objective": "chain ndcg@10, ranker fitted on the other half of the validation users",
            "best": round(k_best["value"], 6),
            "retrieval_order": round(retrieval_only, 6),
            "seconds": round(k_seconds, 1),
        },
        "seed": seed,
    }
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / TUNED_FILE, chosen)
    recorder.metrics("tuning", report)
    recorder.table("tuning_trials", rows)
    return report


def blend_grid(grid: Any) -> list[tuple[float, float]]:
    """The ``(weight, tau)`` pairs of ``tune.retrieval.blend`` (``{weight: [...], tau: [...]}``).

    Raises:
        ParamsError: the grid is not two non-empty lists of numbers, weights >= 0, taus > 0.
    """
    where = "tune.retrieval.blend"
    if not isinstance(grid, dict) or set(grid) != {"weight", "tau"}:
        raise ParamsError(f"{where} must be a mapping with the lists 'weight' and 'tau', got {grid!r}")
    for name, low in (("weight", 0.0), ("tau", None)):
        values = grid[name]
        if (
            not isinstance(values, list)
            or not values
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values)
        ):
            raise ParamsError(f"{where}.{name} must be a non-empty list of numbers, got {values!r}")
        if (low is not None and min(values) < low) or (low is None and min(values) <= 0):
            raise ParamsError(f"{where}.{name} must be {'>= 0' if low is not None else '> 0'}, got {values!r}")
    return [(float(w), float(t)) for w in grid["weight"] for t in grid["tau"]]


def tune_blend(
    model: Any, known_ctx: Any, periods: Periods, valid_eval: Any, grid: Any
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score every ``(weight, tau)`` of the blend grid on validation (warm Recall@100) with
    ``model``'s towers fixed; a weight of 0 is the towers alone. ``known_ctx``: the training
    part indexed once (:func:`movierec.models.train.known_context`).

    Returns:
        ``(the best {weight, tau}, one trial row per pair)``; ties keep the earlier pair.
    """
    from movierec.models.blend import Blend
    from movierec.models.inputs import user_histories
    from movierec.models.ranking import candidate_rows
    from movierec.models.train import slice_metrics

    pairs = blend_grid(grid)
    ctx = dataclasses.replace(known_ctx, item_embeddings=model.embed_items(), blend=None)
    histories = user_histories(periods.train)
    query = model.embed_users(
        valid_eval.user_ids, [histories.get(int(u), np.array([], np.int64)) for u in valid_eval.user_ids]
    )
    seen = [valid_eval.history[i].indices for i in range(len(valid_eval.user_ids))]
    rows: list[dict[str, Any]] = []
    best: tuple[float, dict[str, float]] = (-1.0, {"weight": 0.0, "tau": pairs[0][1]})
    done: dict[tuple[float, float], float] = {}
    for number, (weight, tau) in enumerate(pairs):
        key = (weight, tau if weight > 0 else 0.0)  # every tau is the same model at weight 0
        if key not in done:
            ctx.blend = Blend(weight, tau) if weight > 0 else None
            metrics = slice_metrics(candidate_rows(ctx, query, valid_eval.user_ids, 100, seen), valid_eval, [100])
            done[key] = float(metrics.get("warm", metrics["all"])["recall@100"])
        value = done[key]
        rows.append(
            {
                "model": "retrieval_blend",
                "trial": number,
                "value": round(value, 6),
                "weight": str(weight),
                "tau": str(tau),
            }
        )
        print(f"  tune retrieval blend: weight {weight:g}, tau {tau:g}: valid recall@100 {value:.4f}", file=sys.stderr)
        if value > best[0]:
            best = (value, {"weight": weight, "tau": tau})
    return best[1], rows


def _sampler(seed: int, trials: int) -> Any:
    """TPE, seeded; its random start is half the budget (Optuna's default of 10 random
    trials would spend a small budget on random search alone)."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 2)))


def with_tuned(section: dict[str, Any], tuned_dir: Path, model: str) -> dict[str, Any]:
    """``section`` with the tune stage's choice for ``model`` laid over it (unchanged, with a
    note, when the tune stage has not run)."""
    from movierec.io import read_json

    path = Path(tuned_dir) / TUNED_FILE
    if not path.exists():
        print(
            f"note: {path} not found (run `movierec tune`); using params.yaml's starting values for {model}",
            file=sys.stderr,
        )
        return section
    return {**section, **(read_json(path).get(model) or {})}
