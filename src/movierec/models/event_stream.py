"""The two-tower model's training examples, assembled batch by batch inside ``tf.data``.

One example per event: the user, the items they touched before it (the last
``history_len``, oldest first, padded with ``-1``), the item's catalogue row and its
sampling probability. Materialising the histories up front costs ``events x history_len``
int64s (7 GB for ML-25M's training part, and ``from_tensor_slices`` copies them again);
here only a few numbers per event are kept, sorted by user and time, and each batch's
histories are gathered from the neighbouring events of the same user, in the graph.

The examples are those of the in-memory path (:func:`movierec.models.inputs.training_examples`
sliced by ``from_tensor_slices`` and shuffled with the same seed). Up to
:data:`SHUFFLE_BUFFER_MAX` examples so is their order: the shuffle sees the same number of
elements, so it draws the same permutation, and every batch holds the same values. Above
it, each epoch is a seeded NumPy permutation (see :meth:`EventStream.dataset`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import tensorflow as tf

from movierec.models.inputs import ID_PAD, STR_PAD, Catalogue, UserDirectory

SHUFFLE_BUFFER_MAX = 2_000_000  # examples shuffled by tf.data's buffer, exactly as the in-memory path


@dataclass
class EventStream:
    """Per-event arrays in (user, time, item) order, and the examples drawn from them.

    Attributes:
        item_id: every event's item, including items the catalogue lacks (they still
            count in later histories).
        position: how many earlier events the event's user has.
        user_id: the event's user.
        examples: indices of the events that are training examples (their item is in the
            catalogue), in order.
        item_row: catalogue row of each example's item.
        sampling_probability: each example's item's share of the examples (for logQ).
        user_row: each example's row in the demographics directory (its last row stands for
            unknown users), or None without demographics.
    """

    item_id: np.ndarray
    position: np.ndarray
    user_id: np.ndarray
    examples: np.ndarray
    item_row: np.ndarray
    sampling_probability: np.ndarray
    user_row: np.ndarray | None

    @classmethod
    def from_events(cls, events: pa.Table, catalogue: Catalogue, users: UserDirectory | None) -> EventStream:
        """Sort ``events`` (user_id, item_id, timestamp) and index them against ``catalogue``."""
        ordered = events.select(["user_id", "timestamp", "item_id"]).sort_by(
            [("user_id", "ascending"), ("timestamp", "ascending"), ("item_id", "ascending")]
        )
        user_id = ordered.column("user_id").to_numpy().astype(np.int64)
        item_id = ordered.column("item_id").to_numpy().astype(np.int64)
        n = user_id.size
        starts = np.r_[0, np.flatnonzero(np.diff(user_id)) + 1] if n else np.zeros(0, np.int64)
        position = (np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))).astype(np.int32)
        rows = catalogue.rows_of(item_id) if len(catalogue) else np.full(n, -1, np.int64)
        examples = np.flatnonzero(rows >= 0)
        item_row = rows[examples]
        counts = np.bincount(item_row, minlength=len(catalogue)).astype(np.float64)
        probability = (counts[item_row] / max(counts.sum(), 1.0)).astype(np.float32)
        user_row = None
        if users is not None:
            ids = user_id[examples]
            pos = np.minimum(np.searchsorted(users.user_id, ids), max(users.user_id.size - 1, 0))
            found = users.user_id[pos] == ids if users.user_id.size else np.zeros(ids.shape, bool)
            user_row = np.where(found, pos, users.user_id.size).astype(np.int32)
        return cls(item_id, position, user_id, examples, item_row, probability, user_row)

    def __len__(self) -> int:
        return int(self.examples.size)

    def dataset(
        self,
        history_len: int,
        batch_size: int,
        seed: int,
        users: UserDirectory | None = None,
        buffer_max: int = SHUFFLE_BUFFER_MAX,
        limit: int | None = None,
    ) -> tf.data.Dataset:
        """Shuffled batches of ``{"query": {...}, "item_row", "sampling_probability"}``.

        Up to ``buffer_max`` examples, ``tf.data``'s shuffle over all of them orders the
        examples exactly as the in-memory path did. Above it, that buffer costs about 230
        bytes and a few microseconds per example each epoch (4 GB and a minute before the
        first batch at ML-25M's training part), so each epoch takes a seeded NumPy
        permutation instead (the same examples, in another order).

        Args:
            history_len: items of history per example.
            batch_size: examples per batch (the last batch may be smaller).
            seed: the shuffle's seed (reshuffled each epoch, deterministically).
            users: the directory the stream was built with, for the demographic inputs.
            buffer_max: the most examples shuffled by ``tf.data``'s buffer.
            limit: the most examples an epoch draws (the start of its permutation: a fresh
                seeded sample each epoch); None for all of them.
        """
        gather = _Gather(self, history_len, users)
        n, batch = len(self), int(batch_size)
        drawn = n if limit is None else min(n, int(limit))
        if drawn == n and n <= buffer_max:
            order = (
                tf.data.Dataset.from_tensor_slices(np.arange(n, dtype=np.int64))
                .shuffle(n, seed=seed, reshuffle_each_iteration=True)
                .batch(batch, drop_remainder=False)
            )
        else:
            epochs = iter(range(1 << 62))  # one permutation per iterator, as Keras makes one per epoch

            def permuted() -> Iterator[np.ndarray]:
                order = np.random.default_rng([seed, next(epochs)]).permutation(n)[:drawn]
                for start in range(0, drawn, batch):
                    yield order[start : start + batch]

            order = tf.data.Dataset.from_generator(
                permuted, output_signature=tf.TensorSpec(shape=(None,), dtype=tf.int64)
            )
        return order.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


class _Gather:
    """The batch-building function: example numbers in, the towers' input tensors out."""

    def __init__(self, stream: EventStream, history_len: int, users: UserDirectory | None):
        self.history_len = int(history_len)
        self.item_id = tf.constant(stream.item_id)
        self.last = tf.constant(max(stream.item_id.size - 1, 0), tf.int64)
        self.position = tf.constant(stream.position)
        self.user_id = tf.constant(stream.user_id)
        self.examples = tf.constant(stream.examples.astype(np.int64))
        self.item_row = tf.constant(stream.item_row.astype(np.int64))
        self.probability = tf.constant(stream.sampling_probability)
        self.user_row = None if stream.user_row is None else tf.constant(stream.user_row)
        self.demographics: dict[str, tf.Tensor] = {}
        if users is not None and stream.user_row is not None:
            for name, values in users.columns.items():
                unknown = np.array([np.nan], np.float32) if name == "age" else np.array([STR_PAD], object)
                column = np.concatenate([values.astype(np.float32 if name == "age" else object), unknown])
                self.demographics[name] = tf.constant(column)

    def __call__(self, batch: tf.Tensor) -> dict[str, tf.Tensor | dict[str, tf.Tensor]]:
        event = tf.gather(self.examples, batch)
        length = tf.minimum(tf.cast(tf.gather(self.position, event), tf.int64), self.history_len)
        slots = tf.range(self.history_len, dtype=tf.int64)
        source = event[:, None] - length[:, None] + slots[None, :]  # oldest first, most recent last
        history = tf.where(
            slots[None, :] < length[:, None],
            tf.gather(self.item_id, tf.clip_by_value(source, 0, self.last)),
            tf.constant(ID_PAD, tf.int64),
        )
        query: dict[str, tf.Tensor] = {"user_id": tf.gather(self.user_id, event), "history": history}
        if self.user_row is not None:
            rows = tf.gather(self.user_row, batch)
            for name, table in self.demographics.items():
                query[name] = tf.gather(table, rows)
        return {
            "query": query,
            "item_row": tf.gather(self.item_row, batch),
            "sampling_probability": tf.gather(self.probability, batch),
        }
