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

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from movierec.data.matrix import InteractionMatrix
from movierec.data.parts import write_recs
from movierec.errors import DataError
from movierec.evaluation import ranking_metrics
from movierec.evaluation.protocol import EvalSet, build_eval_set
from movierec.io import atomic_dir
from movierec.models.blend import Blend
from movierec.models.context import Periods
from movierec.models.inputs import Catalogue, user_histories
from movierec.models.ranking import candidate_rows
from movierec.models.ranking_features import RankingContext, ease_matrix
from movierec.models.retrieval import FittedRetrieval, fit_retrieval
from movierec.recording import Recorder

WIDTHS_KEYS = ("genres", "title", "tags")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively overlay ``override`` on ``base`` (for ablation variants)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def first_stage(
    fitted: Any,
    known: pa.Table,
    catalogue: Catalogue,
    users: Any,
    cut: int,
    evalset: EvalSet,
    k: int,
    ease: tuple[float, float] | None = None,
    known_ctx: RankingContext | None = None,
) -> tuple[np.ndarray, np.ndarray, RankingContext]:
    """Candidate rows for every evaluated user (warm: the towers; cold: recent popularity).

    ``ease`` (``(l2, tau)``) also fits the EASE ranking features into the returned context.
    ``known_ctx``: a context already built from the same ``known`` events, catalogue, users,
    cut and ``ease`` (see :func:`known_context`); only ``fitted``'s item embeddings and blend
    are put into a copy of it, instead of indexing the events again.

    Returns:
        ``(rows, query_embeddings, context)``.
    """
    if not np.array_equal(catalogue.item_id, evalset.items.ids):
        raise ValueError("the catalogue and the evaluation's known items differ")
    blend = Blend.from_config(fitted.config)
    if known_ctx is None:
        ctx = RankingContext.build(known, catalogue, fitted.embed_items(), users, cut, ease=ease, blend=blend)
    else:
        ctx = dataclasses.replace(known_ctx, item_embeddings=fitted.embed_items(), blend=blend)
    histories = user_histories(known)
    query = fitted.embed_users(
        evalset.user_ids, [histories.get(int(u), np.array([], np.int64)) for u in evalset.user_ids]
    )
    seen = [evalset.history[i].indices for i in range(len(evalset.user_ids))]
    return candidate_rows(ctx, query, evalset.user_ids, k, seen), query, ctx


def slice_metrics(rows: np.ndarray, evalset: EvalSet, ks: list[int]) -> dict[str, dict[str, float]]:
    """Ranking metrics for all, warm and cold users."""
    out = {"all": ranking_metrics(rows, evalset.relevant, ks)}
    for name, mask in (("warm", ~evalset.cold_user), ("cold", evalset.cold_user)):
        if mask.any():
            out[name] = ranking_metrics(rows[mask], evalset.relevant[mask], ks)
    return out


def train_retrieval(
    periods: Periods,
    params: dict[str, Any],
    seeds: list[int],
    served_dir: Path | None,
    work_dir: Path,
    recs_dir: Path,
    recorder: Recorder,
    save_towers_fn: Any,
    strategy: Any = None,
) -> dict[str, Any]:
    """For each seed: select epochs on validation, refit, list the test users' top 100; export the served towers.

    Args:
        periods: the loaded split and catalogues.
        params: the ``retrieval`` section (model config, ``select_metric``, ``final_fit_all``).
        seeds: training seeds; the first also trains the served towers. Each seed's test
            lists go to ``retrieval.seed<N>.parquet``, so the evaluation reports the mean
            and spread over seeds.
        served_dir: where the served towers go (``checkpoints/retrieval``); None exports none.
        work_dir: where the evaluated models go for the ranking and ablation stages
            (``data/models/seed<N>/retrieval_train`` and ``.../retrieval_train_valid``).
        recs_dir: where the test lists go (``data/recs/retrieval``).
        recorder: where the report (``retrieval.json`` / ``ranking.json``) and the per-epoch
            curves go.
        save_towers_fn: :func:`movierec.models.export.save_towers` (injected to keep imports light).
        strategy: a multi-worker strategy to train every model with (each worker runs this
            function with the same arguments; see :mod:`movierec.models.distribute`), or None.

    Returns:
        The stage report (also written to ``reports/retrieval.json``).
    """
    if not seeds:
        raise ValueError("at least one training seed is needed")
    config = {k: v for k, v in params.items() if k not in ("ablation", "select_metric", "final_fit_all")}
    widths = {k: int(config["widths"][k]) for k in WIDTHS_KEYS}
    select = params["select_metric"]
    valid_eval = build_eval_set(InteractionMatrix.from_table(periods.train), periods.valid_labels)
    test_eval = build_eval_set(InteractionMatrix.from_table(periods.train_valid), periods.test)
    per_seed: dict[str, Any] = {}
    served: FittedRetrieval | None = None
    with atomic_dir(recs_dir) as recs_tmp, atomic_dir(work_dir) as work_tmp:
        for seed in seeds:
            r_train, epochs, best = select_epochs(periods, config, seed, valid_eval, select, strategy=strategy)
            if seed == seeds[0]:
                recorder.table("retrieval_epochs", r_train.history)
            r_tv = fit_retrieval(
                periods.train_valid,
                periods.catalogue_test,
                periods.users,
                config,
                seed,
                epochs=epochs,
                label=f"retrieval (train+valid, seed {seed})",
                strategy=strategy,
            )
            rows, _, _ = first_stage(
                r_tv, periods.train_valid, periods.catalogue_test, periods.users, periods.test_start, test_eval, 100
            )
            write_recs(
                recs_tmp / f"retrieval.seed{seed}.parquet", test_eval.user_ids, rows, periods.catalogue_test.item_id
            )
            save_towers_fn(r_train, work_tmp / f"seed{seed}" / "retrieval_train", widths)
            save_towers_fn(r_tv, work_tmp / f"seed{seed}" / "retrieval_train_valid", widths)
            per_seed[str(seed)] = {"chosen_epochs": epochs, "valid_best": round(best, 6)}
            if seed == seeds[0] and served_dir is not None:
                served = r_tv
                if params["final_fit_all"]:
                    served = fit_retrieval(
                        periods.everything,
                        periods.catalogue_all,
                        periods.users,
                        config,
                        seed,
                        epochs=epochs,
                        label="retrieval (all events, served)",
                        strategy=strategy,
                    )
        if served_dir is not None:
            assert served is not None
            publish(served_dir, lambda staging: save_towers_fn(served, staging, widths))
    report = {
        "seeds": seeds,
        "per_seed": per_seed,
        "chosen_epochs": per_seed[str(seeds[0])]["chosen_epochs"],
        "select_metric": f"warm {select}",
        "valid_best": per_seed[str(seeds[0])]["valid_best"],
        "served_seed": seeds[0],
        "served_fitted_on": "all events" if params["final_fit_all"] else "train+valid",
    }
    recorder.metrics("retrieval", report)
    return report


def known_context(periods: Periods, ease: tuple[float, float] | None = None) -> RankingContext:
    """The training part indexed once as of the validation start (histories, co-occurrence,
    and the EASE weights with ``ease``), for :func:`first_stage`'s ``known_ctx``; its item
    embeddings are a placeholder each model replaces."""
    n_items = len(periods.catalogue_valid)
    return RankingContext.build(
        periods.train,
        periods.catalogue_valid,
        np.zeros((n_items, 1), np.float32),
        periods.users,
        periods.valid_start,
        ease=ease,
    )


def select_epochs(
    periods: Periods,
    config: dict[str, Any],
    seed: int,
    valid_eval: EvalSet,
    select: str = "recall@100",
    known_ctx: RankingContext | None = None,
    strategy: Any = None,
) -> tuple[FittedRetrieval, int, float]:
    """Fit on the training part and keep the epoch with the best validation ``select`` metric
    (on warm users). ``known_ctx`` (:func:`known_context`) is built here when not given, once
    for every epoch. ``strategy``: train on several workers (each scores the epochs itself,
    on the same weights, so all keep the same epoch).

    Returns:
        ``(model at its best epoch, that epoch count, the best validation value)``.
    """
    best: dict[str, Any] = {"score": -1.0, "epoch": 0, "weights": None}
    known_ctx = known_ctx if known_ctx is not None else known_context(periods)

    def on_epoch(epoch: int, fitted: FittedRetrieval) -> dict[str, float]:
        rows, _, _ = first_stage(
            fitted,
            periods.train,
            periods.catalogue_valid,
            periods.users,
            periods.valid_start,
            valid_eval,
            100,
            known_ctx=known_ctx,
        )
        metrics = slice_metrics(rows, valid_eval, [10, 100])
        score = metrics.get("warm", metrics["all"])[select]
        if score > best["score"]:
            best.update(score=score, epoch=epoch, weights=fitted.model.get_weights())
        return {
            f"valid_{s}_{m}": round(v, 6)
            for s, ms in metrics.items()
            for m, v in ms.items()
            if m in ("recall@10", "ndcg@10", "recall@100")
        }

    fitted = fit_retrieval(
        periods.train,
        periods.catalogue_valid,
        periods.users,
        config,
        seed,
        on_epoch=on_epoch,
        label=f"retrieval (train, epochs on valid, seed {seed})",
        strategy=strategy,
    )
    fitted.model.set_weights(best["weights"])
    return fitted, int(best["epoch"]), float(best["score"])


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


def train_ranking(
    periods: Periods,
    params: dict[str, Any],
    seeds: list[int],
    work_dir: Path,
    served_dir: Path | None,
    recs_dir: Path,
    recorder: Recorder,
    strategy: Any = None,
) -> dict[str, Any]:
    """For each seed: fit the ranker on the validation window, score the test chain; export the served ranker.

    Args:
        periods: the loaded split and catalogues.
        params: the ``ranking`` section (model config, ``candidates``, ``random_negatives``,
            ``final_fit_all``, and ``ease``: the ``(l2, tau)`` of the EASE features or None).
        seeds: training seeds, matching the retrieval stage's; the first trains the served ranker.
        work_dir: the retrieval stage's evaluated models (``data/models``).
        served_dir: ``checkpoints/ranking``; None exports none.
        recs_dir: where the chain's test lists (``chain.seed<N>.parquet``) and rating
            predictions go (``data/recs/ranking``).
        recorder: where the report (``retrieval.json`` / ``ranking.json``) and the per-epoch
            curves go.
        strategy: a multi-worker strategy to train the rankers with (each worker runs this
            function with the same arguments), or None.

    Returns:
        The stage report (also written to ``reports/ranking.json``).
    """
    from movierec.baselines.biases import BiasBaseline
    from movierec.models.context_export import save_context
    from movierec.models.export import LoadedRetrieval
    from movierec.models.ranking_export import save_ease, save_ranker, save_rating_biases

    if not seeds:
        raise ValueError("at least one training seed is needed")
    k = int(params["candidates"])
    ease = params.get("ease")  # (l2, tau) chosen by the baselines stage on validation
    test_eval = build_eval_set(InteractionMatrix.from_table(periods.train_valid), periods.test)
    per_seed: dict[str, Any] = {}
    served_pairs = 0
    with atomic_dir(recs_dir) as tmp:
        for seed in seeds:
            seed_dir = Path(work_dir) / f"seed{seed}"
            if not (seed_dir / "retrieval_train").exists():
                raise DataError(
                    f"no retrieval models for seed {seed}; run `movierec train retrieval` with the "
                    "same train.seeds first",
                    path=seed_dir,
                )
            r_train = LoadedRetrieval(seed_dir / "retrieval_train", periods.users)
            r_tv = LoadedRetrieval(seed_dir / "retrieval_train_valid", periods.users)
            ranker, n_pairs, positive_share = fit_ranker_on_window(
                r_train,
                periods.train,
                periods.catalogue_valid,
                periods.valid_start,
                periods.valid_labels,
                periods.users,
                params,
                seed,
                ease,
                f"ranker (valid window, seed {seed})",
                strategy=strategy,
            )
            chain, ctx, _ = chain_on_test(ranker, r_tv, periods, test_eval, k, ease)
            write_recs(tmp / f"chain.seed{seed}.parquet", test_eval.user_ids, chain, periods.catalogue_test.item_id)
            per_seed[str(seed)] = {
                "training_pairs": n_pairs,
                "positive_share": round(positive_share, 4),
                "final_epoch": {m: round(v, 4) for m, v in ranker.history[-1].items()},
            }
            if seed != seeds[0]:
                continue
            pred = rating_predictions(ranker, ctx, r_tv, periods)
            known = periods.train_valid
            served_rating = (
                BiasBaseline(reg=float(params.get("rating_reg", 10.0)))
                .fit(
                    known.column("user_id").to_numpy(),
                    known.column("item_id").to_numpy(),
                    known.column("rating").to_numpy(),
                )
                .predict(periods.test.column("user_id").to_numpy(), periods.test.column("item_id").to_numpy())
            )
            # the rating head (measured) and the chain's served rating predictor (the biases)
            for name, values in (("ranker", pred), ("chain", np.clip(served_rating, 0.5, 5.0))):
                pq.write_table(
                    pa.table(
                        {
                            "user_id": periods.test.column("user_id"),
                            "item_id": periods.test.column("item_id"),
                            "prediction": pa.array(values, pa.float32()),
                        }
                    ),
                    tmp / f"ratings_{name}.parquet",
                )
            recorder.table("ranking_epochs", ranker.history)
            served, served_pairs = ranker, n_pairs
            if served_dir is None:
                continue
            if params["final_fit_all"]:
                served, served_pairs, _ = fit_ranker_on_window(
                    r_tv,
                    periods.train_valid,
                    periods.catalogue_test,
                    periods.test_start,
                    periods.test,
                    periods.users,
                    params,
                    seed,
                    ease,
                    "ranker (test window, served)",
                    strategy=strategy,
                )
            # the service describes users with the events it serves (every event, or train+valid
            # when the evaluated models are served): EASE refitted on them, like its co-occurrence
            events, catalogue = (
                (periods.everything, periods.catalogue_all)
                if params["final_fit_all"]
                else (periods.train_valid, periods.catalogue_test)
            )
            served_ease = (
                ease_matrix(events, catalogue, ease[0], max_items=ease[2] if len(ease) > 2 else None)
                if ease
                else sp.csr_matrix((len(catalogue), len(catalogue)), dtype=np.float32)
            )  # zero features

            # predicted ratings: the biases baseline (with its tuned regularisation), which the
            # rating head does not beat on RMSE, refitted on the served events
            biases = BiasBaseline(reg=float(params.get("rating_reg", 10.0))).fit(
                events.column("user_id").to_numpy(),
                events.column("item_id").to_numpy(),
                events.column("rating").to_numpy(),
            )

            # what the service reads about those events (histories, activity, co-occurrence),
            # so the bundle alone is enough to serve
            served_context = RankingContext.build(
                events,
                catalogue,
                np.zeros((len(catalogue), 1), np.float32),  # the service embeds the items itself
                periods.users,
                int(pc.max(events.column("timestamp")).as_py()) + 1,
            )

            def export(
                staging: Path,
                served: Any = served,
                served_ease: Any = served_ease,
                biases: Any = biases,
                served_context: RankingContext = served_context,
            ) -> None:
                save_ranker(
                    served,
                    staging,
                    {
                        "candidates": k,
                        "ease": list(ease) if ease else None,
                        "rating": "mean plus user and item biases (rating_biases.npz)",
                    },
                )
                save_ease(served_ease, ease[1] if ease else 10.0, staging)
                save_rating_biases(biases, staging)
                save_context(served_context, staging)

            publish(served_dir, export)
    first = per_seed[str(seeds[0])]
    report = {
        "seeds": seeds,
        "per_seed": per_seed,
        "training_pairs": first["training_pairs"],
        "positive_share": first["positive_share"],
        "final_epoch": first["final_epoch"],
        "ease_features": {"l2": ease[0], "tau": ease[1]} if ease else None,
        "served_fitted_on": "test-period labels" if params["final_fit_all"] else "valid-period labels",
        "served_training_pairs": served_pairs,
        "served_seed": seeds[0],
    }
    recorder.metrics("ranking", report)
    return report


def ranking_settings(params: dict[str, Any], baselines_dir: Path) -> dict[str, Any]:
    """The ``ranking`` section of params.yaml, plus ``final_fit_all`` and, with
    ``ease_features``, the EASE features' ``(l2, tau)`` as the baselines stage chose them.

    Raises:
        DataError: EASE features are on but the baselines stage has not run.
    """
    from movierec.io import read_json

    section = {**params["ranking"], "final_fit_all": params["train"]["final_fit_all"]}
    chosen_path = Path(baselines_dir) / "validation.json"
    chosen = read_json(chosen_path) if chosen_path.exists() else None
    if section["ease_features"]:
        if chosen is None:
            raise DataError(
                "the ranker's EASE features take the baselines' tuned settings; run `movierec "
                "baselines` first (or set ranking.ease_features: false)",
                path=chosen_path,
            )
        ease = chosen["ease_recency"]["chosen"]
        # EASE covers at most the baseline's max_items most popular items (an approximation above it)
        cap = ease.get("max_items", params["baselines"]["ease_recency"]["max_items"])
        section["ease"] = (float(ease["l2"]), float(ease["recency_tau"]), int(cap))
    if chosen is not None:  # the served rating predictor takes the biases baseline's tuned regularisation
        section["rating_reg"] = float(chosen["biases"]["chosen"]["reg"])
    return section


def fit_ranker_on_window(
    retrieval: Any,
    known: pa.Table,
    catalogue: Catalogue,
    cut: int,
    labels: pa.Table,
    users: Any,
    params: dict[str, Any],
    seed: int,
    ease: tuple[float, float] | None,
    label: str,
    dropped: tuple[str, ...] = (),
    ctx: RankingContext | None = None,
    strategy: Any = None,
) -> tuple[Any, int, float]:
    """Fit a ranker on ``labels`` with features as of ``cut`` and ``retrieval``'s candidates
    (``dropped`` features held at zero, for the ablation; ``ctx``: a context already built
    for these arguments, to reuse; ``strategy``: train on several workers).

    Returns:
        ``(ranker, number of training pairs, share of positives)``.
    """
    from movierec.models.ranking import fit_ranker, training_pairs

    k = int(params["candidates"])
    if ctx is None:
        ctx = RankingContext.build(
            known, catalogue, retrieval.embed_items(), users, cut, ease=ease, blend=Blend.from_config(retrieval.config)
        )
    ctx.dropped = tuple(dropped)
    histories = user_histories(known)
    label_users = np.unique(labels.column("user_id").to_numpy())
    query = retrieval.embed_users(label_users, [histories.get(int(u), np.array([], np.int64)) for u in label_users])
    feats, y, ratings = training_pairs(
        ctx, dict(zip(label_users.tolist(), query)), labels, k, int(params["random_negatives"]), seed
    )
    ranker = fit_ranker(feats, y, ratings, params, seed, label=label, strategy=strategy)
    return ranker, int(y.size), float(y.mean())


def chain_on_test(
    ranker: Any,
    r_tv: Any,
    periods: Periods,
    test_eval: EvalSet,
    k: int,
    ease: tuple[float, float] | None,
    dropped: tuple[str, ...] = (),
    known_ctx: RankingContext | None = None,
    first: tuple[np.ndarray, np.ndarray, RankingContext] | None = None,
) -> tuple[np.ndarray, RankingContext, np.ndarray]:
    """The chain for the test users: top-``k`` retrieval candidates reordered by the ranker
    (``known_ctx``: train+validation already indexed as of the test start with ``ease``,
    see :func:`first_stage`; ``first``: that first stage's ``(rows, query, context)`` for
    these users and ``k``, already computed).

    Returns:
        ``(ranked rows, the context, the users' query embeddings)``.
    """
    from movierec.models.ranking import rerank

    cands, query, ctx = first or first_stage(
        r_tv,
        periods.train_valid,
        periods.catalogue_test,
        periods.users,
        periods.test_start,
        test_eval,
        k,
        ease=ease,
        known_ctx=known_ctx,
    )
    ctx.dropped = tuple(dropped)
    return rerank(ranker, ctx, test_eval.user_ids, query, cands), ctx, query


def rating_predictions(
    ranker: Any, ctx: RankingContext, r_tv: Any, periods: Periods, chunk: int = 1_000_000
) -> np.ndarray:
    """The rating head's prediction for every test event (items the catalogue lacks: the user's mean)."""
    from movierec.models.ranking_features import pair_features

    test_users = periods.test.column("user_id").to_numpy()
    test_rows = periods.catalogue_test.rows_of(periods.test.column("item_id").to_numpy())
    histories = user_histories(periods.train_valid)
    uniq = np.unique(test_users)
    q_users = r_tv.embed_users(uniq, [histories.get(int(u), np.array([], np.int64)) for u in uniq])
    pred = np.array([ctx.user_stats.get(int(u), (0, ctx.global_mean, 0))[1] for u in test_users], np.float32)
    known = np.flatnonzero(test_rows >= 0)
    for start in range(0, known.size, chunk):  # a chunk's pair features at a time
        at = known[start : start + chunk]
        q = q_users[np.searchsorted(uniq, test_users[at])]
        _, ratings = ranker.predict(pair_features(ctx, test_users[at], test_rows[at], q))
        pred[at] = np.clip(ratings, 0.5, 5.0)
    return pred
