"""Exports reload in a fresh Python process and give the in-memory model's outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

RELOAD = """
import sys, json, numpy as np
import movierec
import pyarrow.parquet as pq
from movierec.models.export import LoadedRetrieval
loaded = LoadedRetrieval(sys.argv[1])
np.save(sys.argv[2] + "/items.npy", loaded.embed_items())
users = np.array([1, 2, 999999])
hist = [np.array([1, 5, 9]), np.array([], np.int64), np.array([2, 6])]
np.save(sys.argv[2] + "/users.npy", loaded.embed_users(users, hist))
"""


def test_towers_reload_in_a_fresh_process(exported: Path, fitted, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", RELOAD, str(exported), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.allclose(np.load(tmp_path / "items.npy"), fitted.embed_items(), atol=1e-5)
    # the fresh process has no demographics directory: compare with the same unknown demographics
    from movierec.models.inputs import query_features

    users = np.array([1, 2, 999999])
    hist = [np.array([1, 5, 9]), np.array([], np.int64), np.array([2, 6])]
    feats = query_features(users, hist, None, fitted.config["history_len"])
    feats.update(age=np.full(3, np.nan, np.float32), gender=np.full(3, "", object), occupation=np.full(3, "", object))
    import tensorflow as tf

    expected = fitted.model.query_tower({k: tf.constant(v) for k, v in feats.items()}).numpy()
    assert np.allclose(np.load(tmp_path / "users.npy"), expected, atol=1e-5)


def test_signatures_have_named_inputs_and_embedding_output(exported: Path) -> None:
    meta = json.loads((exported / "retrieval.json").read_text())
    assert list(meta["query_inputs"]) == ["user_id", "history", "age", "gender", "occupation"]
    assert list(meta["candidate_inputs"])[:4] == ["item_id", "genres", "title_tokens", "year"]
    import tensorflow as tf

    sig = tf.saved_model.load(str(exported / "query_tower")).signatures["serving_default"]
    assert set(sig.structured_outputs) == {"embedding"}
    assert set(sig.structured_input_signature[1]) == set(meta["query_inputs"])
