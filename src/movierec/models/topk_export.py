"""Top-k SavedModels: TFRS BruteForce and ScaNN layers wrapped around an exported query tower.

Each folder holds a SavedModel whose ``serving_default`` signature takes the query
tower's named inputs (as listed in ``retrieval.json``) and returns ``scores`` (float32
``[B, k]``) and ``item_ids`` (int64 ``[B, k]``), plus ``topk.json`` saying which kind of
index it is. ScaNN's custom ops live in the ``Scann`` namespace: the model is saved with
that namespace allowed, and ``scann`` must be imported before it is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movierec.errors import DataError
from movierec.models.layout import TOPK_META
from movierec.models.saved_models import load_signature
from movierec.models.saving import save

TOPK_FILE = TOPK_META
SCANN_NAMESPACE = "Scann"
KINDS = ("brute", "scann")
EMPTY_ID = -1  # item id of an empty result slot (score -inf)


def query_specs(query_inputs: dict[str, dict[str, Any]]) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of the query tower's inputs, from ``retrieval.json``'s ``query_inputs``.

    Args:
        query_inputs: name -> ``{"dtype": ..., "shape": [...]}``.

    Returns:
        name -> ``tf.TensorSpec`` with the same dtype, shape and name.
    """
    return {
        name: tf.TensorSpec(spec["shape"], tf.as_dtype(spec["dtype"]), name=name) for name, spec in query_inputs.items()
    }


class QueryEmbedding(tf.keras.layers.Layer):
    """A Keras layer that runs an exported query tower (a loaded SavedModel) on named inputs."""

    def __init__(self, tower_dir: Path, **kwargs: Any):
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.tower = tf.saved_model.load(str(tower_dir))

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        return self.tower.signatures["serving_default"](**inputs)["embedding"]


class TopKModule(tf.Module):
    """A top-k layer with a named serving signature (``scores``, ``item_ids``)."""

    def __init__(self, layer: tfrs.layers.factorized_top_k.TopK, specs: dict[str, tf.TensorSpec]):
        super().__init__()
        self.layer = layer
        self.serve = tf.function(self._serve).get_concrete_function(**specs)

    def _serve(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        scores, ids = self.layer(inputs)
        scores = tf.cast(scores, tf.float32)
        # ScaNN pads rows whose searched leaves hold fewer than k items with NaN scores and
        # row 0's id: mark those slots as empty (-1, -inf), like search_faiss does
        found = tf.math.logical_not(tf.math.is_nan(scores))
        return {
            "scores": tf.where(found, scores, tf.constant(-np.inf, tf.float32)),
            "item_ids": tf.where(found, tf.cast(ids, tf.int64), tf.constant(EMPTY_ID, tf.int64)),
        }


def build_topk(
    kind: str,
    query_model: tf.keras.layers.Layer,
    embeddings: np.ndarray,
    item_ids: np.ndarray,
    specs: dict[str, tf.TensorSpec],
    k: int,
    scann: dict[str, int] | None = None,
) -> TopKModule:
    """Index ``embeddings`` in a BruteForce or ScaNN layer and trace its serving signature.

    Args:
        kind: ``"brute"`` or ``"scann"``.
        query_model: maps the named query inputs to query embeddings.
        embeddings: ``(n_items, dim)`` float32 item embeddings.
        item_ids: ``(n_items,)`` item ids, row-aligned with ``embeddings``.
        specs: the query inputs' TensorSpecs.
        k: the number of results (at most ``n_items``).
        scann: ScaNN settings (``num_leaves``, ``num_leaves_to_search``,
            ``dimensions_per_block``, ``num_reordering_candidates``, ``training_iterations``),
            already clamped to the catalogue; required for ``"scann"``.

    Returns:
        The module; its ``serve`` concrete function is the serving signature.
    """
    if kind == "brute":
        layer: tfrs.layers.factorized_top_k.TopK = tfrs.layers.factorized_top_k.BruteForce(query_model, k=k)
    elif kind == "scann":
        if scann is None:
            raise ValueError("ScaNN settings are required for kind='scann'")
        layer = tfrs.layers.factorized_top_k.ScaNN(query_model, k=k, distance_measure="dot_product", **scann)
    else:
        raise ValueError(f"unknown top-k kind {kind!r}; expected one of {KINDS}")
    layer.index(tf.constant(embeddings, tf.float32), tf.constant(item_ids, tf.int64))
    return TopKModule(layer, specs)


def save_topk(module: TopKModule, out_dir: Path, kind: str, info: dict[str, Any]) -> None:
    """Save ``module`` as a SavedModel in ``out_dir`` (which must exist), with ``topk.json``.

    Args:
        module: from :func:`build_topk`.
        out_dir: the destination folder.
        kind: ``"brute"`` or ``"scann"``; ScaNN is saved with its op namespace allowed.
        info: extra metadata for ``topk.json`` (k, item count, settings).
    """
    options = tf.saved_model.SaveOptions(namespace_whitelist=[SCANN_NAMESPACE] if kind == "scann" else None)
    save(module, out_dir, signatures={"serving_default": module.serve}, options=options)
    (Path(out_dir) / TOPK_FILE).write_text(json.dumps({"kind": kind, **info}, indent=1, sort_keys=True))


def load_topk(directory: Path) -> Callable[..., dict[str, tf.Tensor]]:
    """Load a ``brute/`` or ``scann/`` SavedModel and return its serving signature.

    Args:
        directory: a folder written by :func:`save_topk`.

    Returns:
        The ``serving_default`` function: call it with the query tower's named inputs
        (as tensors); it returns ``{"scores": [B, k] float32, "item_ids": [B, k] int64}``,
        best first; slots ScaNN could not fill hold id ``-1`` and score ``-inf``.

    Raises:
        DataError: the folder or its SavedModel is missing.
    """
    directory = Path(directory)
    if not (directory / "saved_model.pb").exists():
        raise DataError("top-k SavedModel not found; run the index step first", path=directory / "saved_model.pb")
    kind = "scann"
    if (directory / TOPK_FILE).exists():
        kind = json.loads((directory / TOPK_FILE).read_text()).get("kind", "scann")
    if kind != "brute":
        import scann  # noqa: F401  (registers the Scann ops the graph refers to)
    return load_signature(directory)
