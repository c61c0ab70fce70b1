"""The pointwise ranker: will the user interact with this candidate, and how would they rate it?"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tqdm import tqdm

from movierec.baselines.base import LARGE_CATALOGUE, top_k
from movierec.models import distribute
from movierec.models.ranking_features import CATEGORICAL_FEATURES, DENSE_FEATURES, RankingContext, pair_features

keras = tf.keras


class PointwiseRanker(tfrs.Model):
    """An MLP over named pair features with two heads.

    The interaction head is trained with binary cross-entropy (``tfrs.tasks.Ranking``)
    on positives (events in the label window) and negatives (the retrieval's other
    candidates, and random items). The rating head regresses the rating of positives
    only (its loss is weighted by the label). Dense features are standardised with
    statistics from the training pairs; demographics are embedded.

    With ``global_batch`` (training on several replicas) each replica's loss is its sum over
    its examples divided by the global batch, so that the replicas' summed gradients are the
    gradient of the global batch's mean loss, as on one worker.
    """

    def __init__(
        self,
        config: dict[str, Any],
        means: np.ndarray,
        stds: np.ndarray,
        categories: dict[str, list[str]],
        global_batch: int | None = None,
    ):
        super().__init__()
        # Keras refuses its default mean reduction under a distribution strategy
        reduction = keras.losses.Reduction.AUTO if global_batch is None else keras.losses.Reduction.SUM
        self.loss_scale = None if global_batch is None else 1.0 / global_batch
        if global_batch is not None:  # the logs: see train_step
            self.distribute_reduction_method = "first"
        self.means = tf.constant(means, tf.float32)
        self.stds = tf.constant(stds, tf.float32)
        self.lookups = {
            n: keras.layers.StringLookup(vocabulary=categories[n] or ["<none>"], mask_token=None, num_oov_indices=1)
            for n in CATEGORICAL_FEATURES
        }
        self.embeds = {n: keras.layers.Embedding(len(categories[n] or ["<none>"]) + 1, 4) for n in CATEGORICAL_FEATURES}
        units = [int(u) for u in config["hidden_units"]]
        self.trunk = keras.Sequential([keras.layers.Dense(u, activation="relu") for u in units])
        self.click = keras.layers.Dense(1)
        self.rating = keras.Sequential([keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
        self.click_task = tfrs.tasks.Ranking(
            loss=keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction),
            metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
        )
        self.rating_task = tfrs.tasks.Ranking(
            loss=keras.losses.MeanSquaredError(reduction=reduction),
            metrics=[keras.metrics.RootMeanSquaredError(name="rating_rmse")],
        )
        self.rating_weight = float(config["rating_weight"])

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        dense = tf.stack([tf.cast(inputs[n], tf.float32) for n in DENSE_FEATURES], axis=1)
        parts = [(dense - self.means) / self.stds]
        parts += [self.embeds[n](self.lookups[n](inputs[n])) for n in CATEGORICAL_FEATURES]
        hidden = self.trunk(tf.concat(parts, axis=1))
        # the rating head learns a correction to the user's and the item's mean ratings
        prior = 0.5 * (
            tf.cast(inputs["user_mean_rating"], tf.float32) + tf.cast(inputs["item_mean_rating"], tf.float32)
        )
        return {"logit": self.click(hidden)[:, 0], "rating": prior + self.rating(hidden)[:, 0]}

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> tf.Tensor:
        outputs = self(features["inputs"], training=training)
        click = self.click_task(labels=features["label"][:, None], predictions=outputs["logit"][:, None])
        rating = self.rating_task(
            labels=features["rating"][:, None], predictions=outputs["rating"][:, None], sample_weight=features["label"]
        )
        loss = click + self.rating_weight * rating
        return loss if self.loss_scale is None else loss * self.loss_scale

    def train_step(self, inputs: dict[str, Any]) -> dict[str, tf.Tensor]:
        """TFRS's step; on several replicas the logged loss is the global batch's (each
        replica's loss is its share, while the metrics are already synchronised)."""
        logs = super().train_step(inputs)
        if self.loss_scale is None:
            return logs
        loss = tf.distribute.get_replica_context().all_reduce("sum", logs["loss"])
        return {**logs, "loss": loss, "total_loss": loss + logs["regularization_loss"]}


@dataclass
class FittedRanker:
    """A trained ranker and its per-epoch training record."""

    model: PointwiseRanker
    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)

    def predict(self, features: dict[str, np.ndarray], batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Interaction probabilities and predicted ratings, one per pair."""
        n = len(next(iter(features.values())))
        scores, ratings = [], []
        for start in range(0, n, batch_size):
            chunk = {k: tf.constant(v[start : start + batch_size]) for k, v in features.items()}
            out = self.model(chunk)
            scores.append(tf.sigmoid(out["logit"]).numpy())
            ratings.append(out["rating"].numpy())
        return (
            np.concatenate(scores) if scores else np.zeros(0, np.float32),
            np.concatenate(ratings) if ratings else np.zeros(0, np.float32),
        )


def candidate_rows(
    ctx: RankingContext,
    query: np.ndarray,
    user_ids: np.ndarray,
    k: int,
    exclude: list[np.ndarray],
    batch_size: int = 4096,
) -> np.ndarray:
    """The chain's first stage: top-``k`` catalogue rows per user, seen items excluded.

    Users with a history are served by the retrieval embeddings (blended with the item
    neighbours of their history when ``ctx.blend`` is set); users without one get the
    cold-start path, the most popular items of the recent window. The towers' scores are
    computed ``batch_size`` users at a time (``batch_size x`` catalogue floats at once).
    """
    popular = np.lexsort((-ctx.catalogue.n_interactions, -ctx.catalogue.n_recent))
    out = np.full((len(user_ids), k), -1, dtype=np.int64)
    blender = ctx.blender()
    large = len(ctx.catalogue) > LARGE_CATALOGUE
    for start in range(0, len(user_ids), batch_size):
        stop = min(start + batch_size, len(user_ids))
        scores = query[start:stop] @ ctx.item_embeddings.T
        warm = [j for j in range(start, stop) if int(user_ids[j]) in ctx.histories]
        neighbours: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if blender is not None:  # the batch's history neighbours in one sparse product
            rows = [ctx.catalogue.rows_of(ctx.histories[int(user_ids[j])]) for j in warm]
            neighbours = dict(zip(warm, blender.neighbours_of(rows)))
        for i in range(start, stop):
            if int(user_ids[i]) not in ctx.histories:  # cold: the recent window's most popular
                ranked = popular[~np.isin(popular, exclude[i])][:k]
                out[i, : ranked.size] = ranked
        if large:
            _top_rows_of_many(ctx, blender, query, scores, start, warm, neighbours, exclude, k, out)
            continue
        for i in warm:
            row = scores[i - start].copy()
            if blender is not None:  # the towers blended with the history's item neighbours
                history = ctx.histories[int(user_ids[i])]
                row = blender.full_scores(query[i], row, ctx.catalogue.rows_of(history), neighbours[i])
            row[exclude[i]] = -np.inf
            top = np.argpartition(-row, min(k, row.size - 1))[:k]
            ranked = top[np.argsort(-row[top], kind="stable")]
            ranked = ranked[np.isfinite(row[ranked])]
            out[i, : ranked.size] = ranked
    return out


def _top_rows_of_many(
    ctx: RankingContext,
    blender: Any,
    query: np.ndarray,
    scores: np.ndarray,
    start: int,
    warm: list[int],
    neighbours: dict[int, tuple[np.ndarray, np.ndarray]],
    exclude: list[np.ndarray],
    k: int,
    out: np.ndarray,
    chunk: int = 512,
) -> None:
    """:func:`candidate_rows` for the warm users of one batch over a large catalogue:
    ``chunk`` users' rows at a time, blended as :meth:`Blender.full_scores` blends one row
    (the same float64 operations in the same order), their seen items set to -inf, then
    one :func:`~movierec.baselines.base.top_k` of the block (ties by index). One user at a
    time, the same work cost about 1 ms a user at 60,000 items."""
    for c in range(0, len(warm), chunk):
        idx = np.asarray(warm[c : c + chunk], np.int64)
        block = scores[idx - start]
        if blender is not None:
            block = block.astype(np.float64)
            for r, i in enumerate(idx.tolist()):
                support, values = neighbours[i]
                a, b = blender.scale(query[i], values)
                block[r] *= a
                block[r, support] += b * values
        seen = [np.asarray(exclude[i], np.int64) for i in idx.tolist()]
        block[np.repeat(np.arange(idx.size), [s.size for s in seen]), np.concatenate(seen)] = -np.inf
        out[idx] = top_k(block, k)


def training_pairs(
    ctx: RankingContext,
    query_of: dict[int, np.ndarray],
    labels: pa.Table,
    k: int,
    random_negatives: int,
    seed: int,
    positives_in_candidates: bool = True,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Pairs for the label window: its events are positives; retrieved candidates the user
    did not touch are hard negatives; random catalogue items are easy negatives.

    Returns:
        ``(features, label, rating)``, one row per pair.
    """
    rng = np.random.default_rng(seed)
    cat = ctx.catalogue
    rows = cat.rows_of(labels.column("item_id").to_numpy())
    keep = rows >= 0
    users = labels.column("user_id").to_numpy()[keep]
    rows, ratings = rows[keep], labels.column("rating").to_numpy()[keep].astype(np.float32)
    user_list = np.unique(users)
    query = np.stack([query_of[int(u)] for u in user_list])
    seen = []
    for u in user_list:
        hist = ctx.histories.get(int(u))
        seen.append(cat.rows_of(hist) if hist is not None else np.array([], np.int64))
    cands = candidate_rows(ctx, query, user_list, k, seen)
    pair_users, pair_rows, pair_labels, pair_ratings = [], [], [], []
    by_user: dict[int, dict[int, float]] = {}
    for u, r, rating in zip(users.tolist(), rows.tolist(), ratings.tolist()):
        by_user.setdefault(u, {})[r] = rating
    for i, u in enumerate(user_list.tolist()):
        # positives are the label-window items among the user's candidates: the ranker
        # learns to order what the first stage returns, as it will when serving
        candidates = set(r for r in cands[i].tolist() if r >= 0)
        positives = {r: v for r, v in by_user[u].items() if r in candidates or not positives_in_candidates}
        negatives = [r for r in cands[i].tolist() if r >= 0 and r not in positives]
        negatives += [int(r) for r in rng.integers(0, len(cat), random_negatives) if int(r) not in positives]
        pair_users += [u] * (len(positives) + len(negatives))
        pair_rows += list(positives) + negatives
        pair_labels += [1.0] * len(positives) + [0.0] * len(negatives)
        pair_ratings += list(positives.values()) + [0.0] * len(negatives)
    pair_users_arr = np.asarray(pair_users, np.int64)
    query_rows = np.searchsorted(user_list, pair_users_arr)
    feats = pair_features(ctx, pair_users_arr, np.asarray(pair_rows, np.int64), query[query_rows])
    return feats, np.asarray(pair_labels, np.float32), np.asarray(pair_ratings, np.float32)


def pair_batches(data: dict[str, Any], batch: int, seed: int) -> tf.data.Dataset:
    """Shuffled batches of the training pairs (``data``: arrays, nested, one row per pair).

    The shuffle's buffer holds pair numbers and each batch gathers its rows, rather than the
    buffer holding the pairs themselves (one scalar instead of some thirty tensors per pair:
    about 4 KB less per pair and a sixth of the time); it draws the same permutation as a
    shuffle of the pairs with the same seed, so the batches are the same.
    """
    columns = tf.nest.map_structure(tf.constant, data)
    n = len(tf.nest.flatten(data)[0])

    def gather(rows: tf.Tensor) -> Any:
        return tf.nest.map_structure(lambda column: tf.gather(column, rows), columns)

    return (
        tf.data.Dataset.from_tensor_slices(np.arange(n, dtype=np.int64))
        .shuffle(n, seed=seed)
        .batch(batch)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def fit_ranker(
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    ratings: np.ndarray,
    config: dict[str, Any],
    seed: int,
    label: str = "ranking",
    strategy: tf.distribute.Strategy | None = None,
) -> FittedRanker:
    """Train the ranker on prepared pairs (``strategy``: on several workers, each training its
    replicas' share of every global batch of ``config['batch_size']``; see
    :mod:`movierec.models.distribute`)."""
    keras.utils.set_random_seed(seed)
    dense = np.stack([features[n] for n in DENSE_FEATURES], axis=1)
    means, stds = dense.mean(axis=0), dense.std(axis=0)
    stds = np.where(stds > 1e-6, stds, 1.0)
    categories = {n: sorted({v for v in features[n].tolist() if v}) for n in CATEGORICAL_FEATURES}
    batch = int(config["batch_size"])
    with distribute.scope(strategy):
        model = PointwiseRanker(config, means, stds, categories, global_batch=None if strategy is None else batch)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(config["learning_rate"])))
    data = {"inputs": features, "label": labels, "rating": ratings}

    def one_worker() -> tf.data.Dataset:
        return pair_batches(data, batch, seed)

    steps = None
    if strategy is None:
        dataset = one_worker()
    else:  # each worker builds the same batches and trains on its replicas' slices of them
        dataset, steps = distribute.replica_batches(strategy, one_worker, len(labels), batch, "ranking.batch_size")
    fitted = FittedRanker(model, config)
    for epoch in tqdm(range(1, int(config["epochs"]) + 1), desc=label, unit="epoch", file=sys.stderr, leave=False):
        logs = model.fit(dataset, epochs=1, verbose=0, steps_per_epoch=steps).history
        fitted.history.append({"epoch": epoch, **{k: float(v[-1]) for k, v in logs.items()}})
    return fitted


def rerank(
    ranker: FittedRanker,
    ctx: RankingContext,
    user_ids: np.ndarray,
    query: np.ndarray,
    cands: np.ndarray,
    chunk_users: int = 20_000,
) -> np.ndarray:
    """Reorder each user's candidate rows by the ranker's interaction probability
    (``chunk_users`` users' pairs at a time, which bounds the pair features' memory)."""
    out = np.full_like(cands, -1)
    for start in range(0, len(user_ids), chunk_users):
        part = slice(start, start + chunk_users)
        chunk = cands[part]
        valid = chunk >= 0
        pair_user = np.repeat(user_ids[part], chunk.shape[1])[valid.ravel()]
        pair_query = np.repeat(query[part], chunk.shape[1], axis=0)[valid.ravel()]
        scores, _ = ranker.predict(pair_features(ctx, pair_user, chunk[valid], pair_query))
        grid = np.full(chunk.shape, -np.inf, dtype=np.float64)
        grid[valid] = scores
        order = np.argsort(-grid, axis=1, kind="stable")
        ranked = np.take_along_axis(chunk, order, axis=1)
        out[part] = np.where(np.take_along_axis(valid, order, axis=1), ranked, -1)
    return out
