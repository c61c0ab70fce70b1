"""Run in a fresh process (two logical CPUs must be set up before TensorFlow starts): one training
step of each model on one replica against the same step split over two replicas.

Prints a JSON object of the losses and the largest gradient differences; used by
``test_distribute.py``. Imported by nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from conftest import tiny_world  # noqa: E402
from models_config import CONFIG  # noqa: E402

from movierec.models import distribute  # noqa: E402
from movierec.models.ranking import PointwiseRanker  # noqa: E402
from movierec.models.ranking_features import CATEGORICAL_FEATURES, DENSE_FEATURES  # noqa: E402
from movierec.models.retrieval import TwoTowerModel, make_dataset  # noqa: E402
from movierec.models.vocab import build_vocab  # noqa: E402

GLOBAL = 16
STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def dense(gradients: list) -> list[tf.Tensor]:
    return [tf.convert_to_tensor(g) for g in gradients]


def one_replica(model: tf.keras.Model, batch: dict) -> tuple[float, list[np.ndarray]]:
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    return float(loss), [g.numpy() for g in dense(tape.gradient(loss, model.trainable_variables))]


def two_replicas(model: tf.keras.Model, batch: dict) -> tuple[float, list[np.ndarray]]:
    """The global batch split in halves, one per replica; losses and gradients summed as the
    optimiser sums them."""
    half = GLOBAL // 2
    values = STRATEGY.experimental_distribute_values_from_function(
        lambda ctx: tf.nest.map_structure(
            lambda t: t[ctx.replica_id_in_sync_group * half : (ctx.replica_id_in_sync_group + 1) * half], batch
        )
    )

    @tf.function
    def step(inputs: dict) -> tuple:
        def replica(x: dict) -> tuple:
            with tf.GradientTape() as tape:
                loss = model.compute_loss(x, training=True)
            grads = dense(tape.gradient(loss, model.trainable_variables))
            context = tf.distribute.get_replica_context()
            return context.all_reduce("sum", loss), context.all_reduce("sum", grads)

        return STRATEGY.run(replica, args=(inputs,))

    loss, grads = step(values)
    loss = STRATEGY.experimental_local_results(loss)[0]
    grads = [STRATEGY.experimental_local_results(g)[0] for g in grads]
    return float(loss), [g.numpy() for g in grads]


def largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y)) / (np.max(np.abs(x)) + 1e-12)) for x, y in zip(a, b))


def retrieval() -> dict:
    world = tiny_world()
    config = {**CONFIG, "batch_size": GLOBAL}
    vocab = build_vocab(world["events"].column("user_id").to_numpy(), world["catalogue"], world["users"], 1)
    batch = next(iter(make_dataset(world["events"], world["catalogue"], world["users"], config, seed=3)))
    ids = world["catalogue"].item_id[batch["item_row"].numpy()]
    tf.keras.utils.set_random_seed(0)
    single = TwoTowerModel(vocab, config, world["catalogue"])
    single_loss, single_grads = one_replica(single, batch)
    with STRATEGY.scope():
        split = TwoTowerModel(vocab, config, world["catalogue"])
        split.compute_loss(batch)  # builds the variables
        split.set_weights(single.get_weights())
    loss, grads = two_replicas(split, batch)
    gather = distribute.gather_candidates
    distribute.gather_candidates = lambda *tensors: tensors  # each replica's own half only
    try:
        local_loss, _ = two_replicas(split, batch)
    finally:
        distribute.gather_candidates = gather
    return {
        "repeated_items": int(ids.size - np.unique(ids).size),
        "one_replica_loss": single_loss,
        "two_replica_loss": loss,
        "gradient_difference": largest_difference(single_grads, grads),
        "local_negatives_loss": local_loss,
    }


def ranking() -> dict:
    rng = np.random.default_rng(0)
    features = {name: rng.normal(size=GLOBAL).astype(np.float32) for name in DENSE_FEATURES}
    features.update({name: rng.choice(["a", "b", "c"], size=GLOBAL).astype(object) for name in CATEGORICAL_FEATURES})
    label = (rng.random(GLOBAL) < 0.3).astype(np.float32)
    batch = {
        "inputs": {k: tf.constant(v) for k, v in features.items()},
        "label": tf.constant(label),
        "rating": tf.constant(label * rng.integers(1, 6, GLOBAL).astype(np.float32)),
    }
    config = {"hidden_units": [8], "rating_weight": 0.2}
    stats = (np.zeros(len(DENSE_FEATURES), np.float32), np.ones(len(DENSE_FEATURES), np.float32))
    categories = {name: ["a", "b", "c"] for name in CATEGORICAL_FEATURES}
    tf.keras.utils.set_random_seed(0)
    single = PointwiseRanker(config, *stats, categories)
    single_loss, single_grads = one_replica(single, batch)
    with STRATEGY.scope():
        split = PointwiseRanker(config, *stats, categories, global_batch=GLOBAL)
        split(batch["inputs"])
        split.set_weights(single.get_weights())
    loss, grads = two_replicas(split, batch)
    return {
        "one_replica_loss": single_loss,
        "two_replica_loss": loss,
        "gradient_difference": largest_difference(single_grads, grads),
    }


if __name__ == "__main__":
    print(json.dumps({"retrieval": retrieval(), "ranking": ranking()}))
