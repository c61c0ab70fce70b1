"""The cluster description: TF_CONFIG as TensorFlow reads it, roles, addresses, ports, batch arithmetic."""

from __future__ import annotations

import json
import socket

import pytest

from movierec.errors import ParamsError
from movierec.orchestration.cluster import (
    TF_CONFIG,
    free_ports,
    loopback_cluster,
    parse_hosts,
    per_replica_batch,
    role_from_env,
    tf_config,
)

ADDRESSES = ["10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2300"]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_tf_config_names_every_worker_and_this_ones_place(index: int) -> None:
    config = json.loads(tf_config(ADDRESSES, index))
    assert config == {"cluster": {"worker": ADDRESSES}, "task": {"type": "worker", "index": index}}
    role = role_from_env({TF_CONFIG: tf_config(ADDRESSES, index)})
    assert role is not None
    assert (role.index, role.workers, role.chief) == (index, 3, index == 0)


def test_tensorflow_reads_our_tf_config_as_we_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    monkeypatch.setenv(TF_CONFIG, tf_config(ADDRESSES, 2))
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    assert (resolver.task_type, resolver.task_id) == ("worker", 2)
    assert resolver.cluster_spec().as_dict() == {"worker": ADDRESSES}


def test_one_worker_or_none_is_not_a_cluster() -> None:
    assert role_from_env({}) is None
    assert role_from_env({TF_CONFIG: "  "}) is None
    assert role_from_env({TF_CONFIG: tf_config(ADDRESSES[:1], 0)}) is None


def test_a_chief_task_is_worker_zero_and_the_workers_follow_it() -> None:
    cluster = {"chief": ["c:1"], "worker": ["w0:1", "w1:1"]}
    chief = role_from_env({TF_CONFIG: json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})})
    worker = role_from_env({TF_CONFIG: json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})})
    assert chief is not None and (chief.index, chief.workers, chief.chief) == (0, 3, True)
    assert worker is not None and (worker.index, worker.workers, worker.chief) == (1, 3, False)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{not json", "not a TensorFlow cluster description"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}}', "not a TensorFlow cluster description"),
        ('{"cluster": {"worker": ["a:1", "b:1"], "ps": ["p:1"]}, "task": {"type": "ps", "index": 0}}', "'ps'"),
    ],
)
def test_a_malformed_tf_config_is_named(value: str, words: str) -> None:
    with pytest.raises(ParamsError, match=TF_CONFIG) as caught:
        role_from_env({TF_CONFIG: value})
    assert words in str(caught.value)


def test_tf_config_refuses_an_index_outside_the_cluster_and_bad_addresses() -> None:
    with pytest.raises(ParamsError, match="worker index 3 is outside the cluster of 3"):
        tf_config(ADDRESSES, 3)
    with pytest.raises(ParamsError, match="not host:port"):
        tf_config(["10.0.0.1"], 0)


def test_host_lists() -> None:
    assert parse_hosts("gpu1, gpu2:2300,[::1]") == ["gpu1:2222", "gpu2:2300", "[::1]:2222"]
    assert parse_hosts("a", default_port=9000) == ["a:9000"]
    with pytest.raises(ParamsError, match="no worker addresses"):
        parse_hosts(" , ")
    with pytest.raises(ParamsError, match="repeat: a:1"):
        parse_hosts("a:1,b:1,a:1")
    with pytest.raises(ParamsError, match="not host:port"):
        parse_hosts("a:99999")


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if taken


def test_a_loopback_cluster_has_one_address_per_worker() -> None:
    addresses = loopback_cluster(3)
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    with pytest.raises(ParamsError, match="at least 1"):
        loopback_cluster(0)


def test_the_global_batch_splits_evenly_over_replicas() -> None:
    assert per_replica_batch(512, 1) == 512
    assert per_replica_batch(512, 2) == 256
    assert per_replica_batch(1024, 8) == 128
    with pytest.raises(ParamsError, match=r"retrieval.batch_size 513 .* multiple of 2, e.g. 512 or 514"):
        per_replica_batch(513, 2, "retrieval.batch_size")
    with pytest.raises(ParamsError, match="multiple of 3, e.g. 3$"):  # a batch smaller than the replicas
        per_replica_batch(2, 3)
    with pytest.raises(ValueError):
        per_replica_batch(8, 0)
