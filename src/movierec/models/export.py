"""Exporting the towers as SavedModels with named signatures, and loading them back.

``query_tower/`` and ``candidate_tower/`` are plain SavedModels whose ``serving_default``
signature takes named, fixed-width inputs and returns a named ``embedding``. Beside them,
``retrieval.json`` records the vocabulary, the configuration and the input schema, and
``catalogue.parquet`` the items the candidate tower was fitted on, so a process that has
only the folder can embed users and items exactly as the training process did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from movierec.models.inputs import Catalogue, UserDirectory, query_features
from movierec.models.layout import CANDIDATE_TOWER, CATALOGUE, QUERY_TOWER, RETRIEVAL_META
from movierec.models.saved_models import load_signature
from movierec.models.saving import save
from movierec.models.vocab import candidate_feature_names, query_feature_names

QUERY_DIR, CANDIDATE_DIR, META_FILE, CATALOGUE_FILE = QUERY_TOWER, CANDIDATE_TOWER, RETRIEVAL_META, CATALOGUE
CATALOGUE_WIDTHS_KEY = "widths"


def query_signature(vocab: dict[str, Any], history_len: int) -> dict[str, tf.TensorSpec]:
    """Input specs of the query tower, by name."""
    specs = {
        "user_id": tf.TensorSpec([None], tf.int64, name="user_id"),
        "history": tf.TensorSpec([None, history_len], tf.int64, name="history"),
    }
    if "age" in vocab:
        specs["age"] = tf.TensorSpec([None], tf.float32, name="age")
    for name in ("gender", "occupation"):
        if name in vocab:
            specs[name] = tf.TensorSpec([None], tf.string, name=name)
    return {k: specs[k] for k in query_feature_names(vocab)}


def candidate_signature(vocab: dict[str, Any], widths: dict[str, int]) -> dict[str, tf.TensorSpec]:
    """Input specs of the candidate tower, by name."""
    specs = {
        "item_id": tf.TensorSpec([None], tf.int64, name="item_id"),
        "genres": tf.TensorSpec([None, widths["genres"]], tf.string, name="genres"),
        "title_tokens": tf.TensorSpec([None, widths["title"]], tf.string, name="title_tokens"),
        "year": tf.TensorSpec([None], tf.float32, name="year"),
        "tags": tf.TensorSpec([None, widths["tags"]], tf.string, name="tags"),
    }
    return {k: specs[k] for k in candidate_feature_names(vocab)}


def _spec_json(specs: dict[str, tf.TensorSpec]) -> dict[str, Any]:
    return {k: {"dtype": s.dtype.name, "shape": [d for d in s.shape.as_list()]} for k, s in specs.items()}


class _Exportable(tf.Module):
    def __init__(self, tower: tf.keras.Model, specs: dict[str, tf.TensorSpec]):
        super().__init__()
        self.tower = tower
        self.signature = tf.function(self._call).get_concrete_function(**specs)

    def _call(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"embedding": self.tower(inputs)}


def save_towers(fitted: Any, out_dir: Path, widths: dict[str, int]) -> dict[str, Any]:
    """Save both towers, the catalogue and the metadata into ``out_dir``.

    Args:
        fitted: a :class:`~movierec.models.retrieval.FittedRetrieval`.
        out_dir: the folder (its parent must exist); written in place.
        widths: the padded widths of genres, title tokens and tags.

    Returns:
        The metadata written to ``retrieval.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history_len = int(fitted.config["history_len"])
    qspec = query_signature(fitted.vocab, history_len)
    cspec = candidate_signature(fitted.vocab, widths)
    for name, tower, spec in (
        (QUERY_DIR, fitted.model.query_tower, qspec),
        (CANDIDATE_DIR, fitted.model.candidate_tower, cspec),
    ):
        module = _Exportable(tower, spec)
        save(module, out_dir / name, signatures={"serving_default": module.signature})
    from movierec.models.fast_towers import save_query_weights

    save_query_weights(fitted.model.query_tower, out_dir / QUERY_DIR)  # NumPy fast path for servers
    pq.write_table(fitted.catalogue.to_table(), out_dir / CATALOGUE_FILE)
    meta = {
        "vocab": fitted.vocab,
        "config": fitted.config,
        CATALOGUE_WIDTHS_KEY: widths,
        "query_inputs": _spec_json(qspec),
        "candidate_inputs": _spec_json(cspec),
        "embedding_dim": int(fitted.config["embedding_dim"]),
        "training_history": fitted.history,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=1, default=float))
    return meta


class LoadedRetrieval:
    """Towers loaded from an export folder, with the same embedding methods as a fitted model."""

    def __init__(self, directory: Path, users: UserDirectory | None = None):
        directory = Path(directory)
        self.meta = json.loads((directory / META_FILE).read_text())
        self.vocab = self.meta["vocab"]
        self.config = self.meta["config"]
        self.catalogue = Catalogue.from_table(
            pq.read_table(directory / CATALOGUE_FILE), self.meta[CATALOGUE_WIDTHS_KEY]
        )
        self.users = users
        self.query = load_signature(directory / QUERY_DIR)
        self.candidate = load_signature(directory / CANDIDATE_DIR)

    def embed_items(self, batch_size: int = 4096) -> np.ndarray:
        """Embeddings of every catalogue item."""
        names = list(self.meta["candidate_inputs"])
        out = []
        for start in range(0, len(self.catalogue), batch_size):
            feats = self.catalogue.features(slice(start, start + batch_size))
            out.append(self.candidate(**{k: tf.constant(feats[k]) for k in names})["embedding"].numpy())
        return np.concatenate(out)

    def embed_users(self, user_ids: np.ndarray, histories: list[np.ndarray], batch_size: int = 4096) -> np.ndarray:
        """Query embeddings for users given their time-ordered histories."""
        feats = query_features(user_ids, histories, self.users, int(self.config["history_len"]))
        names = list(self.meta["query_inputs"])
        for name in names:
            if name not in feats:  # demographics the caller does not know
                feats[name] = (
                    np.full(len(user_ids), np.nan, np.float32)
                    if name == "age"
                    else np.full(len(user_ids), "", dtype=object)
                )
        out = []
        for start in range(0, len(user_ids), batch_size):
            out.append(
                self.query(**{k: tf.constant(feats[k][start : start + batch_size]) for k in names})["embedding"].numpy()
            )
        return np.concatenate(out) if out else np.zeros((0, int(self.meta["embedding_dim"])), np.float32)
