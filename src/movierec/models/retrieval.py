"""Two-tower retrieval trained with in-batch softmax, logQ correction and accidental-hit removal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tqdm import tqdm

from movierec.models import distribute
from movierec.models.event_stream import EventStream
from movierec.models.inputs import Catalogue, UserDirectory, query_features
from movierec.models.towers import CandidateTower, QueryTower
from movierec.models.vocab import build_vocab

keras = tf.keras


def sampling_probability(item_ids: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """Probability that each training example's item is drawn as an in-batch candidate.

    In-batch negatives are the other examples' items, so an item appears as a candidate
    in proportion to its share of training events. TFRS subtracts ``log p`` from each
    logit (the logQ correction of Yi et al. 2019), which stops the softmax from pushing
    popular items down merely because they are sampled as negatives more often.
    """
    rows = catalogue.rows_of(item_ids)
    counts = np.bincount(rows[rows >= 0], minlength=len(catalogue)).astype(np.float64)
    return (counts[rows] / counts.sum()).astype(np.float32)


class TwoTowerModel(tfrs.Model):
    """A query tower and a candidate tower scored by dot product.

    Training uses ``tfrs.tasks.Retrieval``: each batch's other items are the negatives,
    items identical to the positive are masked out (accidental hits), and with ``logq``
    the logits are corrected by each candidate's sampling probability. Candidate
    features are gathered inside the step from the catalogue by row, so the dataset
    carries only row numbers.
    """

    def __init__(self, vocab: dict[str, Any], config: dict[str, Any], catalogue: Catalogue):
        super().__init__()
        self.query_tower = QueryTower(
            vocab,
            config["query"]
            | {
                "embedding_dim": config["embedding_dim"],
                "hidden_units": config["hidden_units"],
                "normalize": config["normalize"],
            },
        )
        self.candidate_tower = CandidateTower(
            vocab,
            config["candidate"]
            | {
                "embedding_dim": config["embedding_dim"],
                "hidden_units": config["hidden_units"],
                "normalize": config["normalize"],
            },
        )
        self.logq = bool(config["logq"])
        temperature = config.get("temperature")
        self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=True)
        self.catalogue_tensors = {k: tf.constant(v) for k, v in catalogue.features().items()}

    def candidates(self, rows: tf.Tensor) -> dict[str, tf.Tensor]:
        """Candidate-tower inputs for catalogue rows."""
        return {k: tf.gather(v, rows) for k, v in self.catalogue_tensors.items()}

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> tf.Tensor:
        query = self.query_tower(features["query"], training=training)
        candidate_features = self.candidates(features["item_row"])
        candidate = self.candidate_tower(candidate_features, training=training)
        # on several replicas, every replica's candidates are negatives (the global batch)
        candidate, ids, probability = distribute.gather_candidates(
            candidate,
            candidate_features["item_id"],
            features["sampling_probability"] if self.logq else None,
        )
        return self.task(
            query, candidate, candidate_sampling_probability=probability, candidate_ids=ids, compute_metrics=False
        )


@dataclass
class FittedRetrieval:
    """A trained two-tower model with what is needed to embed users and items."""

    model: TwoTowerModel
    vocab: dict[str, Any]
    catalogue: Catalogue
    users: UserDirectory | None
    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)

    def embed_items(self, batch_size: int = 4096) -> np.ndarray:
        """Embeddings of every catalogue item, row-aligned with the catalogue."""
        out = []
        for start in range(0, len(self.catalogue), batch_size):
            feats = self.catalogue.features(slice(start, start + batch_size))
            out.append(self.model.candidate_tower({k: tf.constant(v) for k, v in feats.items()}).numpy())
        return np.concatenate(out)

    def embed_users(self, user_ids: np.ndarray, histories: list[np.ndarray], batch_size: int = 4096) -> np.ndarray:
        """Query embeddings for users given their (time-ordered) histories."""
        feats = query_features(user_ids, histories, self.users, int(self.config["history_len"]))
        out = []
        for start in range(0, len(user_ids), batch_size):
            chunk = {k: tf.constant(v[start : start + batch_size]) for k, v in feats.items()}
            out.append(self.model.query_tower(chunk).numpy())
        return np.concatenate(out) if out else np.zeros((0, int(self.config["embedding_dim"])), np.float32)


def make_dataset(
    events: pa.Table, catalogue: Catalogue, users: UserDirectory | None, config: dict[str, Any], seed: int
) -> tf.data.Dataset:
    """Shuffled batches of (query features, item row, sampling probability), one per event
    (``config['epoch_examples']``: at most that many an epoch, a fresh sample each), assembled
    batch by batch from the events (:class:`movierec.models.event_stream.EventStream`)."""
    stream = EventStream.from_events(events, catalogue, users)
    limit = config.get("epoch_examples")
    return stream.dataset(int(config["history_len"]), int(config["batch_size"]), seed, users, limit=limit)


def fit_retrieval(
    events: pa.Table,
    catalogue: Catalogue,
    users: UserDirectory | None,
    config: dict[str, Any],
    seed: int,
    epochs: int | None = None,
    on_epoch: Callable[[int, FittedRetrieval], dict[str, float]] | None = None,
    label: str = "retrieval",
    strategy: tf.distribute.Strategy | None = None,
) -> FittedRetrieval:
    """Train a two-tower model on ``events``.

    Args:
        events: the training events (user_id, item_id, timestamp).
        catalogue: the known items (the candidate set and their features).
        users: demographics, or None.
        config: the ``retrieval`` section of params.yaml (one variant).
        seed: the shared seed; fixes initialisation and shuffling.
        epochs: overrides ``config['epochs']``.
        on_epoch: called after each epoch with the epoch number and the fitted model; the
            metrics it returns are recorded in ``history``.
        label: progress-bar label.
        strategy: a multi-worker strategy (:func:`movierec.models.distribute.strategy_from_env`):
            every worker calls this with the same arguments and trains its replicas' share of
            each global batch (``config['batch_size']``). None trains in this process alone.

    Returns:
        The fitted model.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    vocab = build_vocab(events.column("user_id").to_numpy(), catalogue, users, int(config["min_token_count"]))
    with distribute.scope(strategy):
        model = TwoTowerModel(vocab, config, catalogue)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(config["learning_rate"])))
    steps = None
    if strategy is None:
        dataset = make_dataset(events, catalogue, users, config, seed)
    else:  # each worker builds the same batches and trains on its replicas' slices of them
        examples = int((catalogue.rows_of(events.column("item_id").to_numpy()) >= 0).sum())
        dataset, steps = distribute.replica_batches(
            strategy,
            lambda: make_dataset(events, catalogue, users, config, seed),
            examples,
            int(config["batch_size"]),
            "retrieval.batch_size",
        )
    fitted = FittedRetrieval(model, vocab, catalogue, users, config)
    n_epochs = int(epochs if epochs is not None else config["epochs"])
    for epoch in tqdm(range(1, n_epochs + 1), desc=label, unit="epoch", file=sys.stderr, leave=False):
        start = time.perf_counter()
        logs = model.fit(dataset, epochs=1, verbose=0, steps_per_epoch=steps).history
        record = {"epoch": epoch, "loss": float(logs["loss"][-1]), "seconds": round(time.perf_counter() - start, 2)}
        if on_epoch is not None:
            record.update(on_epoch(epoch, fitted))
        fitted.history.append(record)
    return fitted
