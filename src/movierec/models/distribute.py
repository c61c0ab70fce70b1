"""Training on several workers: the strategy ``TF_CONFIG`` describes, each replica's share of
every global batch, and the in-batch candidates gathered from every replica.

The models train the same way on one worker or on many (see ``docs/distributed-training.md``):

* **Global batch.** ``batch_size`` in ``params.yaml`` is the global batch, the examples one
  optimiser step sees. Each of the ``R`` replicas takes ``batch_size / R`` of them.
* **Same batches.** Every worker builds the one-worker input pipeline (seeded, shuffled
  global batches) and keeps its replicas' slices of each batch (the element-wise sharding
  of tf.data's ``AutoShardPolicy.DATA``, done explicitly so that the slices are contiguous
  and their union is exactly the batch one worker would train on). Only full global
  batches are trained on, so every replica takes the same number of steps.
* **Gradients.** Each replica's loss is a sum over its examples (the retrieval loss is a
  sum already; the ranker divides its sum by the global batch), and the optimiser sums the
  replicas' gradients: one step equals one step on the whole global batch.
* **In-batch negatives.** :func:`gather_candidates` all-gathers the candidate embeddings,
  ids and sampling probabilities of every replica, so each query is scored against the
  whole global batch, as on one worker; accidental hits are masked across it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from movierec.errors import ParamsError
from movierec.orchestration.cluster import per_replica_batch, role_from_env

PACK_BYTES = 32 * 1024 * 1024
_strategies: list[tf.distribute.Strategy] = []  # the one strategy of this process, once made


def strategy_from_env() -> tf.distribute.Strategy | None:
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several workers, else None.

    Made once per process: TensorFlow requires it before any other TensorFlow operation
    runs (it configures the collective ops at start-up), so a training stage calls this
    first. Creating it waits until every worker of the cluster has started.
    """
    if role_from_env() is None:
        return None
    if not _strategies:
        # the gradients travel packed into few all-reduces (one per variable costs a round trip each)
        options = tf.distribute.experimental.CommunicationOptions(bytes_per_pack=PACK_BYTES)
        _strategies.append(tf.distribute.MultiWorkerMirroredStrategy(communication_options=options))
    return _strategies[0]


def scope(strategy: tf.distribute.Strategy | None) -> contextlib.AbstractContextManager[Any]:
    """``strategy.scope()``, or a no-op without a strategy (variables are made as before)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def replica_batches(
    strategy: tf.distribute.Strategy,
    one_worker: Callable[[], tf.data.Dataset],
    examples: int,
    global_batch: int,
    setting: str,
) -> tuple[Any, int]:
    """Every replica's slice of each global batch of the one-worker pipeline.

    Args:
        strategy: the multi-worker strategy.
        one_worker: builds the pipeline a single worker trains on: seeded, shuffled batches
            of ``global_batch`` examples (each worker builds it with the same seed, so all
            draw the same batches).
        examples: how many examples an epoch of ``one_worker`` holds.
        global_batch: examples per optimiser step, over all replicas.
        setting: the ``params.yaml`` key of the batch size, for errors.

    Returns:
        ``(distributed dataset, steps per epoch)``; an epoch's last, partial global batch is
        left out (its examples are reshuffled into the next epoch).

    Raises:
        ParamsError: the global batch does not split evenly over the replicas, or the
            examples do not fill one global batch.
    """
    per_replica_batch(global_batch, strategy.num_replicas_in_sync, setting)
    steps = examples // global_batch
    if steps == 0:
        raise ParamsError(f"{examples} training examples do not fill one global batch ({setting} {global_batch})")
    dataset = strategy.distribute_datasets_from_function(
        lambda context: worker_batches(one_worker(), global_batch, context)
    )
    return dataset, steps


def worker_batches(batches: tf.data.Dataset, global_batch: int, context: tf.distribute.InputContext) -> tf.data.Dataset:
    """One worker's input pipeline: its replicas' contiguous slices of each full global batch.

    Every worker builds the same global batches and keeps the slice of each that belongs to
    its replicas, one local batch per replica in replica order (the element-wise sharding
    of tf.data's ``AutoShardPolicy.DATA``, made explicit); the union over workers of step
    ``i``'s slices is global batch ``i`` of the one-worker pipeline.
    """
    local = context.get_per_replica_batch_size(global_batch)
    per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines  # this worker's replicas
    start = context.input_pipeline_id * per_pipeline * local
    stop = start + per_pipeline * local

    def full(batch: Any) -> tf.Tensor:
        return tf.shape(tf.nest.flatten(batch)[0])[0] == global_batch

    def own(batch: Any) -> Any:  # (a static batch size lets the collectives pack their tensors)
        return tf.nest.map_structure(
            lambda column: tf.ensure_shape(column[start:stop], [stop - start, *column.shape[1:]]), batch
        )

    dataset = batches.filter(full).map(own)
    if per_pipeline > 1:  # several replicas on this worker: one local batch each, in order
        dataset = dataset.unbatch().batch(local, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def gather_candidates(
    embeddings: tf.Tensor, ids: tf.Tensor, probabilities: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """The candidates of every replica's batch, this replica's own first.

    Inside a step on several replicas, all-gathers the candidate embeddings (gradients
    flow back to the replica that made each one), ids and sampling probabilities, then
    rotates them so that this replica's candidates come first: row ``i`` of the local
    queries keeps its positive in column ``i``, the layout ``tfrs.tasks.Retrieval``
    expects, and every other candidate of the global batch is an extra negative. Every
    replica must hold the same number of rows, as :func:`worker_batches` makes them. On
    one replica (or outside a step) the inputs come back unchanged.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return embeddings, ids, probabilities
    # every replica holds the same number of rows (worker_batches makes them so)
    offset = context.replica_id_in_sync_group * tf.shape(embeddings)[0]

    def own_first(gathered: tf.Tensor) -> tf.Tensor:
        return tf.roll(gathered, shift=-offset, axis=0)

    all_embeddings = own_first(context.all_gather(embeddings, axis=0))
    extras = [tf.stop_gradient(ids)] + ([] if probabilities is None else [tf.stop_gradient(probabilities)])
    gathered = [own_first(t) for t in context.all_gather(extras, axis=0)]
    return all_embeddings, gathered[0], (gathered[1] if probabilities is not None else None)
