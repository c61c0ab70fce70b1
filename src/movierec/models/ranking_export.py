"""Exporting the ranker as a SavedModel with one named input per feature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from movierec.models.ranking_features import CATEGORICAL_FEATURES, DENSE_FEATURES

RANKER_META = "ranker.json"


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
    tf.saved_model.save(module, str(out_dir / "pointwise"), signatures={"serving_default": module.signature})
    meta = {
        "inputs": {n: {"dtype": s.dtype.name, "shape": [None]} for n, s in ranker_signature().items()},
        "outputs": {"score": "probability that the user interacts", "rating": "predicted rating"},
        "config": fitted.config, "training_history": fitted.history, **(extra or {}),
    }
    (out_dir / RANKER_META).write_text(json.dumps(meta, indent=1, default=float))
    return meta


def load_ranker(directory: Path) -> Any:
    """The ``serving_default`` function of an exported ranker."""
    return tf.saved_model.load(str(Path(directory) / "pointwise")).signatures["serving_default"]


def predict_exported(signature: Any, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and ratings from an exported ranker for a dict of feature columns."""
    out = signature(**{n: tf.constant(features[n]) for n in ranker_signature()})
    return out["score"].numpy(), out["rating"].numpy()
