"""The streamed training examples are the in-memory path's, batch for batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from movierec.models.event_stream import EventStream
from movierec.models.inputs import Catalogue, UserDirectory, training_examples


def in_memory_dataset(
    events: pa.Table, catalogue: Catalogue, users: UserDirectory | None, history_len: int, batch: int, seed: int
) -> tf.data.Dataset:
    """The earlier path: every example's histories materialised, sliced and shuffled whole."""
    user_ids, hist, item_ids, _ = training_examples(events, history_len)
    rows = catalogue.rows_of(item_ids)
    keep = rows >= 0
    query = {"user_id": user_ids[keep], "history": hist[keep]}
    if users is not None:
        query.update(users.lookup(user_ids[keep]))
    counts = np.bincount(rows[keep], minlength=len(catalogue)).astype(np.float64)
    data = {
        "query": query,
        "item_row": rows[keep],
        "sampling_probability": (counts[rows[keep]] / counts.sum()).astype(np.float32),
    }
    n = int(keep.sum())
    return tf.data.Dataset.from_tensor_slices(data).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch)


def _flat(batch: dict) -> dict[str, np.ndarray]:
    out = {f"query.{k}": v.numpy() for k, v in batch["query"].items()}
    out.update({k: batch[k].numpy() for k in ("item_row", "sampling_probability")})
    return out


def _assert_same_epochs(streamed: tf.data.Dataset, reference: tf.data.Dataset, epochs: int = 2) -> None:
    for _ in range(epochs):  # a fresh iterator per epoch, as Keras makes one per fit
        pairs = list(zip(streamed, reference, strict=True))
        assert pairs
        for new, old in pairs:
            new, old = _flat(new), _flat(old)
            assert new.keys() == old.keys()
            for key in old:
                if old[key].dtype.kind == "f":
                    np.testing.assert_array_equal(np.isnan(new[key]), np.isnan(old[key]), err_msg=key)
                    np.testing.assert_array_equal(np.nan_to_num(new[key]), np.nan_to_num(old[key]), err_msg=key)
                else:
                    np.testing.assert_array_equal(new[key], old[key], err_msg=key)


@pytest.mark.parametrize("history_len", [1, 4, 30])
def test_streamed_batches_equal_the_in_memory_ones(world: dict, history_len: int) -> None:
    events, catalogue, users = world["events"], world["catalogue"], world["users"]
    stream = EventStream.from_events(events, catalogue, users)
    _assert_same_epochs(
        stream.dataset(history_len, 16, seed=5, users=users),
        in_memory_dataset(events, catalogue, users, history_len, 16, seed=5),
    )


def test_items_outside_the_catalogue_stay_in_later_histories_and_unknown_users_get_blanks(world: dict) -> None:
    """Events on items the catalogue lacks are no examples but still precede others; users
    missing from the directory get a NaN age and empty strings, as the lookup gives them."""
    events, catalogue = world["events"], world["catalogue"]
    rows = catalogue.rows_of(events.column("item_id").to_numpy())
    dropped = np.flatnonzero(rows >= 0)[::7]
    items = events.column("item_id").to_numpy().copy()
    items[dropped] = 10_000 + np.arange(dropped.size)  # not in the catalogue
    events = events.set_column(events.column_names.index("item_id"), "item_id", pa.array(items))
    users = world["users"]
    half = UserDirectory(users.user_id[::2], {k: v[::2] for k, v in users.columns.items()})
    stream = EventStream.from_events(events, catalogue, half)
    assert len(stream) == int((catalogue.rows_of(items) >= 0).sum())
    _assert_same_epochs(
        stream.dataset(10, 32, seed=1, users=half), in_memory_dataset(events, catalogue, half, 10, 32, seed=1), 1
    )


def test_without_demographics_the_query_has_ids_and_history_only(world: dict) -> None:
    stream = EventStream.from_events(world["events"], world["catalogue"], None)
    batch = next(iter(stream.dataset(5, 8, seed=0)))
    assert set(batch["query"]) == {"user_id", "history"}
    assert batch["query"]["history"].shape == (8, 5)


def _example_keys(dataset: tf.data.Dataset) -> list[tuple[int, ...]]:
    keys = []
    for batch in dataset:
        flat = _flat(batch)
        for i in range(len(flat["item_row"])):
            keys.append((int(flat["query.user_id"][i]), int(flat["item_row"][i]), *flat["query.history"][i].tolist()))
    return keys


def test_above_the_buffer_limit_each_epoch_is_a_seeded_permutation_of_the_same_examples(world: dict) -> None:
    events, catalogue, users = world["events"], world["catalogue"], world["users"]
    stream = EventStream.from_events(events, catalogue, users)
    reference = sorted(_example_keys(in_memory_dataset(events, catalogue, users, 6, 16, seed=3)))
    permuted = stream.dataset(6, 16, seed=3, users=users, buffer_max=10)
    first, second = _example_keys(permuted), _example_keys(permuted)
    assert sorted(first) == reference and sorted(second) == reference  # every example once per epoch
    assert first != second  # reshuffled each epoch
    again = stream.dataset(6, 16, seed=3, users=users, buffer_max=10)
    assert _example_keys(again) == first and _example_keys(again) == second  # deterministic by seed
    assert _example_keys(stream.dataset(6, 16, seed=4, users=users, buffer_max=10)) != first


def test_an_epoch_limit_draws_a_fresh_sample_of_that_many_examples(world: dict) -> None:
    events, catalogue, users = world["events"], world["catalogue"], world["users"]
    stream = EventStream.from_events(events, catalogue, users)
    everything = set(_example_keys(in_memory_dataset(events, catalogue, users, 6, 16, seed=3)))
    limited = stream.dataset(6, 16, seed=3, users=users, limit=50)
    first, second = _example_keys(limited), _example_keys(limited)
    assert len(first) == len(second) == 50 and len(set(first)) == 50
    assert set(first) <= everything and set(second) <= everything and set(first) != set(second)
    assert len(_example_keys(stream.dataset(6, 16, seed=3, users=users, limit=10 * len(stream)))) == len(stream)
