"""The two-tower model: logQ with the right sign, learning, determinism, out-of-vocabulary paths."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
from models_config import CONFIG

from movierec.models.inputs import pad_ids, training_examples
from movierec.models.retrieval import fit_retrieval, sampling_probability


def test_sampling_probability_is_the_items_share_of_training_events(world: dict) -> None:
    events = world["events"]
    items = events.column("item_id").to_numpy()
    p = sampling_probability(items, world["catalogue"])
    ids, counts = np.unique(items, return_counts=True)
    most = ids[counts.argmax()]
    assert p[items == most][0] == pytest.approx(counts.max() / items.size)
    assert p.max() == pytest.approx(counts.max() / items.size)


def test_logq_correction_lowers_popular_candidates_logits() -> None:
    """With equal raw scores, the corrected loss must punish a popular positive and favour a rare one.

    TFRS subtracts log(p) from each candidate's logit. If we passed 1/p, or added the log,
    popular items would be boosted instead, which is the bug this guards against.
    """
    task = tfrs.tasks.Retrieval(
        loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE)
    )
    queries = tf.ones((3, 4))
    candidates = tf.ones((3, 4))  # every logit equal: plain loss is log(3) on each row
    p = tf.constant([0.5, 0.01, 0.01])  # candidate 0 is popular
    plain = task(queries, candidates, compute_metrics=False).numpy()
    corrected = task(queries, candidates, candidate_sampling_probability=p, compute_metrics=False).numpy()
    assert np.allclose(plain, np.log(3))
    assert corrected[0] > plain[0]  # the popular positive now has the lowest corrected logit
    assert corrected[1] < plain[1]


def test_training_examples_use_only_earlier_items() -> None:
    events = pa.table(
        {
            "user_id": pa.array([1, 1, 1, 2], pa.int64()),
            "item_id": pa.array([10, 11, 12, 10], pa.int64()),
            "rating": pa.array([1.0] * 4, pa.float32()),
            "timestamp": pa.array([3, 1, 2, 5], pa.int64()),
        }
    )
    users, hist, items, _stamps = training_examples(events, 2)
    assert users.tolist() == [1, 1, 1, 2]
    assert items.tolist() == [11, 12, 10, 10]  # user 1 in time order
    assert hist.tolist() == [[-1, -1], [11, -1], [11, 12], [-1, -1]]
    assert pad_ids([np.array([11, 12, 10])], 2).tolist() == [[12, 10]]  # the latest, left-aligned


def test_loss_goes_down_and_runs_repeat_exactly(world: dict, fitted) -> None:
    losses = [h["loss"] for h in fitted.history]
    assert losses[-1] < losses[0]
    again = fit_retrieval(world["events"], world["catalogue"], world["users"], CONFIG, seed=7)
    assert [h["loss"] for h in again.history] == pytest.approx(losses, rel=1e-6)
    assert np.allclose(again.embed_items(), fitted.embed_items(), atol=1e-6)


def test_model_ranks_a_users_taste_above_other_items(world: dict, fitted) -> None:
    """Synthetic users prefer items with item_id % 4 == user % 4: the model should learn it."""
    cat = world["catalogue"]
    items = fitted.embed_items()
    hits = []
    for user in range(1, 41):
        history = np.array([i for i in range(1, 41) if i % 4 == user % 4][:4])
        q = fitted.embed_users(np.array([user]), [history])[0]
        top = cat.item_id[np.argsort(-(items @ q))[:10]]
        hits.append(np.mean(top % 4 == user % 4))
    assert np.mean(hits) > 0.5  # chance is 0.25


def test_unknown_users_and_items_get_embeddings(world: dict, fitted) -> None:
    q = fitted.embed_users(np.array([999_999]), [np.array([1, 2, 3])])
    assert q.shape == (1, 16) and np.isfinite(q).all()
    cold = fitted.embed_users(np.array([999_999]), [np.array([], np.int64)])
    assert np.isfinite(cold).all()
    # the history changes the embedding of an unknown user without retraining
    assert not np.allclose(q, cold)
