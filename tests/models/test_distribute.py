"""Training on several replicas: each replica's slice of the global batches, and a step on two
replicas that equals the step on one (in-batch negatives from the whole global batch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from movierec.errors import ParamsError
from movierec.models.distribute import replica_batches, worker_batches

N, GLOBAL, SEED = 103, 8, 5


def _one_worker() -> tf.data.Dataset:
    """A one-worker pipeline like the models': seeded shuffle, global batches, a partial last one."""
    data = {
        "row": np.arange(N, dtype=np.int64),
        "name": np.array([f"item {i}" for i in range(N)], dtype=object),
        "query": {"history": np.arange(N * 3, dtype=np.int64).reshape(N, 3)},
    }
    return tf.data.Dataset.from_tensor_slices(data).shuffle(N, seed=SEED, reshuffle_each_iteration=True).batch(GLOBAL)


def _rows(batch: dict) -> list[int]:
    return batch["row"].numpy().tolist()


def _context(pipelines: int, pipeline: int, replicas: int) -> tf.distribute.InputContext:
    return tf.distribute.InputContext(
        num_input_pipelines=pipelines, input_pipeline_id=pipeline, num_replicas_in_sync=replicas
    )


def test_two_workers_slices_of_each_step_make_the_one_worker_batch_for_every_epoch() -> None:
    reference = _one_worker()
    workers = [worker_batches(_one_worker(), GLOBAL, _context(2, i, 2)) for i in range(2)]
    for _epoch in range(2):  # reshuffled each epoch, the same way on every worker
        expected = [b for b in reference if len(_rows(b)) == GLOBAL]
        got = [list(w) for w in workers]
        assert len(expected) == N // GLOBAL and [len(g) for g in got] == [N // GLOBAL] * 2
        for step, batch in enumerate(expected):
            first, second = got[0][step], got[1][step]
            assert _rows(first) + _rows(second) == _rows(batch)
            assert [*first["name"].numpy(), *second["name"].numpy()] == list(batch["name"].numpy())
            joined = np.concatenate([first["query"]["history"], second["query"]["history"]])
            assert np.array_equal(joined, batch["query"]["history"])
        seen = [r for g in got for b in g for r in _rows(b)]
        assert len(seen) == len(set(seen)) == (N // GLOBAL) * GLOBAL  # no example twice in an epoch


def test_several_replicas_on_one_worker_take_consecutive_local_batches() -> None:
    local = list(worker_batches(_one_worker(), GLOBAL, _context(1, 0, 4)))
    expected = [b for b in _one_worker() if len(_rows(b)) == GLOBAL]
    assert len(local) == 4 * len(expected)
    for step, batch in enumerate(expected):
        assert [r for b in local[4 * step : 4 * step + 4] for r in _rows(b)] == _rows(batch)


def test_the_global_batch_must_split_and_fill() -> None:
    with pytest.raises(ParamsError, match="ranking.batch_size 8 .* over 3 replicas"):
        replica_batches(SimpleNamespace(num_replicas_in_sync=3), _one_worker, N, GLOBAL, "ranking.batch_size")
    with pytest.raises(ParamsError, match="5 training examples do not fill one global batch"):
        replica_batches(SimpleNamespace(num_replicas_in_sync=2), _one_worker, 5, GLOBAL, "ranking.batch_size")


@pytest.fixture(scope="module")
def replica_steps() -> dict:
    """One step of each model on one replica and on two (a fresh process: the two logical
    CPUs must exist before TensorFlow starts)."""
    script = Path(__file__).with_name("replica_check.py")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_a_retrieval_step_on_two_replicas_is_the_step_on_the_global_batch(replica_steps: dict) -> None:
    """Candidates gathered from both replicas: the same softmax over the same 16 candidates
    (accidental hits masked across replicas, logQ from the same probabilities) as one replica."""
    result = replica_steps["retrieval"]
    assert result["repeated_items"] > 0  # the batch has accidental hits to mask
    assert result["two_replica_loss"] == pytest.approx(result["one_replica_loss"], rel=1e-5)
    assert result["gradient_difference"] < 1e-4
    # each replica's own 8 candidates only would be a different loss: the check can tell
    assert abs(result["local_negatives_loss"] - result["one_replica_loss"]) > 0.05 * result["one_replica_loss"]


@pytest.mark.integration
def test_a_ranking_step_on_two_replicas_is_the_step_on_the_global_batch(replica_steps: dict) -> None:
    result = replica_steps["ranking"]
    assert result["two_replica_loss"] == pytest.approx(result["one_replica_loss"], rel=1e-5)
    assert result["gradient_difference"] < 1e-4
