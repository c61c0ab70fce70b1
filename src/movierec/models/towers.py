"""The query and candidate towers of the two-tower retrieval model.

Both towers take dicts of dense, padded tensors (see :mod:`movierec.models.inputs`)
and return one embedding per row. Lookups are layers inside the towers, so an exported
tower takes raw ids and strings: an id the model never saw maps to a learned
out-of-vocabulary row, and padding (``-1`` / ``""``) is masked out of every pooled list.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

keras = tf.keras


def masked_mean(embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``embeddings`` (batch, n, d) over the positions where ``mask`` is True."""
    weights = tf.cast(mask, embeddings.dtype)[..., None]
    total = tf.reduce_sum(embeddings * weights, axis=1)
    return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


class IdEmbedding(keras.layers.Layer):
    """Integer id -> embedding, with row 0 for ids outside the vocabulary (and padding)."""

    def __init__(self, vocabulary: np.ndarray, dim: int, name: str, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.lookup = keras.layers.IntegerLookup(
            vocabulary=np.asarray(vocabulary, np.int64), num_oov_indices=1, mask_token=None, output_mode="int"
        )
        self.embed = keras.layers.Embedding(len(vocabulary) + 1, dim, embeddings_initializer="glorot_uniform")

    def call(self, ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        index = self.lookup(ids)
        return self.embed(index), index > 0


class TokenBag(keras.layers.Layer):
    """A padded list of strings -> the mean of its tokens' embeddings (padding ignored)."""

    def __init__(self, vocabulary: list[str], dim: int, name: str, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        vocabulary = [v for v in vocabulary if v]
        self.lookup = keras.layers.StringLookup(vocabulary=vocabulary or ["<none>"], mask_token="", num_oov_indices=1)
        self.embed = keras.layers.Embedding(len(vocabulary or ["<none>"]) + 2, dim)

    def call(self, tokens: tf.Tensor) -> tf.Tensor:
        index = self.lookup(tokens)
        return masked_mean(self.embed(index), index > 0)


class QueryTower(keras.Model):
    """Encodes a user: id, demographics and the recent history of item ids.

    ``use_id``: the user's own embedding (row 0 for users the model never saw).
    ``sequence: gru`` adds a GRU read of the history in time order (its final state), a
    sequence-aware summary that weighs the latest items by what came before them.
    ``use_history``: mean embedding of the history items, and of the last few, so a new
    or updated history changes the embedding without retraining.
    ``use_features``: age, gender and occupation when the source has them.
    With only ``use_id`` the tower is a bare embedding table: the TFRS tutorial shape.
    """

    def __init__(self, vocab: dict[str, Any], config: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        dim = int(config["embedding_dim"])
        self.use_id = bool(config["use_id"])
        self.use_history = bool(config["use_history"])
        self.use_features = bool(config["use_features"])
        self.recent = int(config["recent_items"])
        self.sequence = str(config["sequence"])
        if self.sequence not in ("mean", "gru"):
            raise ValueError(f"retrieval.query.sequence must be 'mean' or 'gru', got {self.sequence!r}")
        self.normalize = bool(config["normalize"])
        self.user_id = IdEmbedding(vocab["user_id"], dim, "user_id_embedding") if self.use_id else None
        self.history = IdEmbedding(vocab["item_id"], dim, "history_embedding") if self.use_history else None
        self.gru = keras.layers.GRU(dim, name="history_gru") if self.use_history and self.sequence == "gru" else None
        self.demographics = [n for n in ("age", "gender", "occupation") if n in vocab] if self.use_features else []
        self.age_stats = vocab.get("age_stats", (0.0, 1.0))
        self.categorical = {
            n: keras.layers.StringLookup(vocabulary=[v for v in vocab[n] if v], mask_token=None, num_oov_indices=1)
            for n in self.demographics
            if n != "age"
        }
        self.categorical_embed = {n: keras.layers.Embedding(len(vocab[n]) + 2, 8) for n in self.categorical}
        self.bare = self.use_id and not (self.use_history or self.demographics)
        self.hidden = (
            None
            if self.bare
            else keras.Sequential(
                [keras.layers.Dense(int(config["hidden_units"]), activation="relu"), keras.layers.Dense(dim)]
            )
        )

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = []
        if self.user_id is not None:
            emb, _ = self.user_id(inputs["user_id"])
            parts.append(emb)
        if self.history is not None:
            emb, mask = self.history(inputs["history"])
            parts.append(masked_mean(emb, mask))
            # the last `recent` real items: positions counted back from each row's length
            length = tf.reduce_sum(tf.cast(inputs["history"] >= 0, tf.int32), axis=1, keepdims=True)
            pos = tf.range(tf.shape(inputs["history"])[1])[None, :]
            parts.append(masked_mean(emb, mask & (pos >= length - self.recent)))
            if self.gru is not None:  # histories are left-aligned, oldest first: the mask skips the padding
                parts.append(self.gru(emb, mask=mask))
        for name in self.demographics:
            if name == "age":
                age = tf.cast(inputs["age"], tf.float32)
                known = tf.math.is_finite(age)
                mean, std = self.age_stats
                scaled = tf.where(known, (age - mean) / std, 0.0)
                parts.append(tf.stack([scaled, tf.cast(known, tf.float32)], axis=1))
            else:
                parts.append(self.categorical_embed[name](self.categorical[name](inputs[name])))
        out = parts[0] if self.bare else self.hidden(tf.concat(parts, axis=1))
        return tf.math.l2_normalize(out, axis=1) if self.normalize else out


class CandidateTower(keras.Model):
    """Encodes an item: id plus (with ``use_features``) genres, year, title tokens and tags.

    An item the model never saw still gets an embedding from its metadata: its id maps
    to the out-of-vocabulary row and the metadata carries the rest.
    """

    def __init__(self, vocab: dict[str, Any], config: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        dim = int(config["embedding_dim"])
        self.use_features = bool(config["use_features"])
        self.normalize = bool(config["normalize"])
        self.item_id = IdEmbedding(vocab["item_id"], dim, "item_id_embedding")
        if self.use_features:
            self.genres = TokenBag(vocab["genres"], 16, "genres_bag")
            self.title = TokenBag(vocab["title_tokens"], 16, "title_bag")
            self.tags = TokenBag(vocab["tags"], 16, "tags_bag") if vocab.get("tags") else None
            self.year_edges = list(vocab["year_edges"])
            self.year_embed = keras.layers.Embedding(len(self.year_edges) + 2, 8)
            self.year_stats = vocab["year_stats"]
            self.hidden = keras.Sequential(
                [keras.layers.Dense(int(config["hidden_units"]), activation="relu"), keras.layers.Dense(dim)]
            )

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        emb, _ = self.item_id(inputs["item_id"])
        if not self.use_features:
            return tf.math.l2_normalize(emb, axis=1) if self.normalize else emb
        year = tf.cast(inputs["year"], tf.float32)
        bucket = tf.raw_ops.Bucketize(input=year, boundaries=self.year_edges)
        mean, std = self.year_stats
        parts = [
            emb,
            self.genres(inputs["genres"]),
            self.title(inputs["title_tokens"]),
            self.year_embed(bucket),
            ((year - mean) / std)[:, None],
        ]
        if self.tags is not None:
            parts.append(self.tags(inputs["tags"]))
        out = self.hidden(tf.concat(parts, axis=1))
        return tf.math.l2_normalize(out, axis=1) if self.normalize else out
