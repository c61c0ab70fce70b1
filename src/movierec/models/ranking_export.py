"""Exporting the ranker as a SavedModel with one named input per feature."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from movierec.models.fast_towers import dense_layers, load_arrays
from movierec.models.layout import EASE_META, EASE_WEIGHTS, RANKER, RANKER_META, RANKER_WEIGHTS, RATING_BIASES
from movierec.models.ranking_features import CATEGORICAL_FEATURES, DENSE_FEATURES
from movierec.models.saved_models import load_signature
from movierec.models.saving import save

EASE_FILE = EASE_WEIGHTS


def ranker_signature() -> dict[str, tf.TensorSpec]:
    """Named inputs: each dense feature as float32[None], demographics as string[None]."""
    specs = {n: tf.TensorSpec([None], tf.float32, name=n) for n in DENSE_FEATURES}
    specs.update({n: tf.TensorSpec([None], tf.string, name=n) for n in CATEGORICAL_FEATURES})
    return specs


class _RankerModule(tf.Module):
    def __init__(self, model: tf.keras.Model):
        super().__init__()
        self.model = model
        self.signature = tf.function(self._call).get_concrete_function(**ranker_signature())

    def _call(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.model(inputs)
        return {"score": tf.sigmoid(out["logit"]), "rating": out["rating"]}


def save_ranker(fitted: Any, out_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the ranker's SavedModel and ``ranker.json`` (input schema, config, training curve)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = _RankerModule(fitted.model)
    save(module, out_dir / RANKER, signatures={"serving_default": module.signature})
    save_ranker_weights(fitted.model, out_dir)
    meta = {
        "inputs": {n: {"dtype": s.dtype.name, "shape": [None]} for n, s in ranker_signature().items()},
        "outputs": {"score": "probability that the user interacts", "rating": "predicted rating"},
        "config": fitted.config,
        "training_history": fitted.history,
        **(extra or {}),
    }
    (out_dir / RANKER_META).write_text(json.dumps(meta, indent=1, default=float))
    return meta


def save_ease(weights: Any, tau: float, out_dir: Path) -> None:
    """Write the EASE feature weights (catalogue-aligned sparse matrix) beside the ranker."""
    import scipy.sparse as sp

    sp.save_npz(Path(out_dir) / EASE_FILE, weights.tocsr(), compressed=True)
    (Path(out_dir) / EASE_META).write_text(
        json.dumps({"tau": float(tau), "shape": list(weights.shape), "entries": int(weights.nnz)})
    )


def load_ease(directory: Path, n_items: int) -> tuple[Any, float] | None:
    """The exported EASE feature weights and their recency scale, or None if the bundle has none.

    Raises:
        ValueError: the matrix does not match the catalogue's size.
    """
    import scipy.sparse as sp

    path = Path(directory) / EASE_FILE
    if not path.exists():
        return None
    weights = sp.load_npz(path).tocsr()
    if weights.shape != (n_items, n_items):
        raise ValueError(f"{path}: EASE weights are {weights.shape}, the catalogue has {n_items} items")
    meta = json.loads((Path(directory) / EASE_META).read_text())
    return weights, float(meta["tau"])


RATING_FILE = RATING_BIASES


@dataclass(frozen=True)
class RatingBiases:
    """The served rating predictor: ``mean + b_user + b_item`` (unknown ids add nothing).

    The ranker's rating head is measured against this baseline and does not beat it, so
    the service predicts ratings with the biases, fitted on the events it serves.
    """

    mean: float
    user_ids: np.ndarray
    user_bias: np.ndarray
    item_ids: np.ndarray
    item_bias: np.ndarray

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Predicted ratings, clipped to the half-star scale's range."""

        def lookup(ids: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
            ids = np.asarray(ids, np.int64)
            if keys.size == 0:
                return np.zeros(ids.shape)
            pos = np.minimum(np.searchsorted(keys, ids), keys.size - 1)
            return np.where(keys[pos] == ids, values[pos], 0.0)

        pred = (
            self.mean
            + lookup(user_ids, self.user_ids, self.user_bias)
            + lookup(item_ids, self.item_ids, self.item_bias)
        )
        return np.clip(pred, 0.5, 5.0).astype(np.float32)


def save_rating_biases(model: Any, out_dir: Path) -> None:
    """Write a fitted :class:`movierec.baselines.BiasBaseline`'s arrays beside the ranker."""
    np.savez(
        Path(out_dir) / RATING_FILE,
        mean=np.array(model.mean_),
        user_ids=model.users_.ids,
        user_bias=model.user_bias_,
        item_ids=model.items_.ids,
        item_bias=model.item_bias_,
    )


def load_rating_biases(directory: Path) -> RatingBiases | None:
    """The exported rating biases, or None if the bundle has none."""
    path = Path(directory) / RATING_FILE
    if not path.exists():
        return None
    with np.load(path) as arrays:
        return RatingBiases(
            float(arrays["mean"]),
            arrays["user_ids"].astype(np.int64),
            arrays["user_bias"],
            arrays["item_ids"].astype(np.int64),
            arrays["item_bias"],
        )


def load_ranker(directory: Path) -> Any:
    """The ``serving_default`` function of an exported ranker."""
    return load_signature(Path(directory) / RANKER)


def predict_exported(signature: Any, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and ratings from an exported ranker for a dict of feature columns."""
    out = signature(**{n: tf.constant(features[n]) for n in ranker_signature()})
    return out["score"].numpy(), out["rating"].numpy()


WEIGHTS_FILE = RANKER_WEIGHTS


def save_ranker_weights(model: Any, out_dir: Path) -> None:
    """Write the ranker's parameters as plain arrays (``weights.npz``) for a NumPy fast path.

    The SavedModel stays the contract; servers check that :class:`NumpyRanker` gives the
    SavedModel's outputs before using it.
    """
    arrays: dict[str, np.ndarray] = {"means": model.means.numpy(), "stds": model.stds.numpy()}
    for name in CATEGORICAL_FEATURES:
        arrays[f"vocab_{name}"] = np.array(model.lookups[name].get_vocabulary(), dtype=str)
        arrays[f"embed_{name}"] = model.embeds[name].embeddings.numpy()
    for prefix, layers in (("trunk", model.trunk.layers), ("click", [model.click]), ("rating", model.rating.layers)):
        for i, layer in enumerate(layers):
            kernel, bias = layer.get_weights()
            arrays[f"{prefix}_{i}_kernel"], arrays[f"{prefix}_{i}_bias"] = kernel, bias
    np.savez(Path(out_dir) / WEIGHTS_FILE, **arrays)


class NumpyRanker:
    """The ranker's forward pass in NumPy: the same MLP without TensorFlow's per-call overhead."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.means, self.stds = arrays["means"], arrays["stds"]
        self.vocab = {n: {v: i for i, v in enumerate(arrays[f"vocab_{n}"].tolist())} for n in CATEGORICAL_FEATURES}
        self.embed = {n: arrays[f"embed_{n}"] for n in CATEGORICAL_FEATURES}

        self.trunk, self.click, self.rating = (dense_layers(arrays, p) for p in ("trunk", "click", "rating"))

    @classmethod
    def load(cls, directory: Path) -> NumpyRanker | None:
        """The fast path of an exported ranker, or None when the export has no weights file."""
        arrays = load_arrays(Path(directory) / WEIGHTS_FILE)
        return None if arrays is None else cls(arrays)

    def predict(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Interaction probabilities and ratings, as the SavedModel's ``score`` and ``rating``."""
        dense = np.stack([np.asarray(features[n], np.float32) for n in DENSE_FEATURES], axis=1)
        parts = [(dense - self.means) / self.stds]
        for name in CATEGORICAL_FEATURES:
            vocab, values = self.vocab[name], features[name]
            if len(values) and (values == values[0]).all():  # one user's pairs: one lookup
                index = np.full(len(values), vocab.get(str(values[0]), 0), np.int64)
            else:
                index = np.array([vocab.get(str(v), 0) for v in values], np.int64)
            parts.append(self.embed[name][index])
        hidden = np.concatenate(parts, axis=1)
        for kernel, bias in self.trunk:
            hidden = np.maximum(hidden @ kernel + bias, 0.0)
        logit = (hidden @ self.click[0][0] + self.click[0][1])[:, 0]
        r = np.maximum(hidden @ self.rating[0][0] + self.rating[0][1], 0.0)
        r = (r @ self.rating[1][0] + self.rating[1][1])[:, 0]
        prior = 0.5 * (
            np.asarray(features["user_mean_rating"], np.float32) + np.asarray(features["item_mean_rating"], np.float32)
        )
        return 1.0 / (1.0 + np.exp(-logit)), prior + r
