"""The index step: brute-force, ScaNN and FAISS indexes over an exported two-tower model."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from models_config import CONFIG as BASE_CONFIG
from synthetic import synthetic_events, synthetic_items

import movierec  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from movierec.errors import DataError, ParamsError
from movierec.features import item_features
from movierec.models.export import save_towers
from movierec.models.faiss_index import build_faiss
from movierec.models.index import build_indexes, load_faiss, load_topk, search_faiss
from movierec.models.inputs import Catalogue, UserDirectory
from movierec.models.retrieval import fit_retrieval
from movierec.models.topk_export import build_topk

N_USERS, N_ITEMS = 120, 160
WIDTHS = {"genres": 4, "title": 6, "tags": 4}
CONFIG = {**BASE_CONFIG, "history_len": 10, "epochs": 1}
# 160 items: ScaNN gets 12 leaves (8 searched to start), FAISS 4 lists (all probed, so exact)
PARAMS = {
    "k": 10,
    "eval_queries": 200,
    "eval_batch_size": 50,
    "seed": 0,
    "scann": {"num_leaves_to_search": 8},
    "faiss": {"nlist": 4, "nprobe": 4},
}


def _items() -> pa.Table:
    events = synthetic_events(N_USERS, N_ITEMS)
    cut = int(events.column("timestamp").to_numpy().max()) + 1
    return item_features(events, synthetic_items(N_ITEMS), None, cut, recent_days=30, max_tags=5)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-tower model (with age and gender inputs), trained once and exported."""
    events = synthetic_events(N_USERS, N_ITEMS)
    ids = np.arange(1, N_USERS + 1)
    users = UserDirectory.from_table(
        pa.table(
            {
                "user_id": pa.array(ids, pa.int64()),
                "age": pa.array((ids % 50 + 18).astype(np.float32)),
                "gender": ["MF"[u % 2] for u in ids],
            }
        )
    )
    fitted = fit_retrieval(events, Catalogue.from_table(_items(), WIDTHS), users, CONFIG, seed=1, epochs=1)
    out = tmp_path_factory.mktemp("export") / "retrieval"
    save_towers(fitted, out, WIDTHS)
    return out


@pytest.fixture(scope="module")
def built(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("index") / "index"
    return out, build_indexes(export_dir, out, PARAMS)


def _tree_hashes(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_build_writes_every_index(built: tuple[Path, dict]) -> None:
    out, summary = built
    assert sorted(p.name for p in out.iterdir()) == ["brute", "faiss", "index.json", "scann"]
    for kind in ("brute", "scann"):
        assert (out / kind / "saved_model.pb").exists()
        assert json.loads((out / kind / "topk.json").read_text())["kind"] == kind
    assert {p.name for p in (out / "faiss").iterdir()} == {"index.faiss", "item_ids.npy", "faiss.json"}
    assert json.loads((out / "index.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["k"] == 10 and summary["n_items"] == N_ITEMS and summary["catalogue"] == "export"
    # 12 leaves for 160 items; how many are searched is tuned on this machine's embeddings (and widened
    # by the served-build check if it misses), so only its bounds and its record are fixed
    assert summary["scann"]["num_leaves"] == 12 and 1 <= summary["scann"]["num_leaves_to_search"] <= 12
    served = [row for row in summary["tuning"]["scann"] if row.get("served_build")]
    assert served and summary["scann"]["num_leaves_to_search"] == served[-1]["num_leaves_to_search"]
    assert summary["faiss"]["nlist"] == 4 and 1 <= summary["faiss"]["nprobe"] <= 4
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_index_json_reports_recall_and_timings(built: tuple[Path, dict]) -> None:
    _, summary = built
    for name in ("scann", "faiss"):
        assert 0.9 <= summary["recall"][name] <= 1.0
    if summary["faiss"]["nprobe"] == summary["faiss"]["nlist"]:
        assert summary["recall"]["faiss"] == 1.0  # every list probed: exact
    assert set(summary["build_seconds"]) == {"brute", "scann", "faiss", "tuning"}
    # search settings chosen for this catalogue: the first rung of each ladder reaching the aim
    aim = summary["target_recall"] + 0.01
    faiss_ladder = summary["tuning"]["faiss"]
    reached = [row["nprobe"] for row in faiss_ladder if row["recall"] >= aim]
    assert summary["faiss"]["nprobe"] == (reached[0] if reached else summary["faiss"]["nlist"])
    assert all(row["recall"] < aim for row in faiss_ladder[:-1])  # it stopped at the first success
    scann_ladder = summary["tuning"]["scann"]
    last = scann_ladder[-1]
    if last["recall"] >= aim:
        assert summary["scann"]["num_leaves_to_search"] == last["num_leaves_to_search"]
        assert summary["scann"]["num_reordering_candidates"] == last["num_reordering_candidates"]
    assert all(v > 0 for v in summary["latency_ms_per_batch"].values())
    assert summary["eval_queries"] == 200


RELOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import movierec
    import scann  # noqa: F401
    import numpy as np
    import tensorflow as tf
    from movierec.models.export import LoadedRetrieval
    from movierec.models.index import load_faiss, load_topk, search_faiss

    export, index = Path(sys.argv[1]), Path(sys.argv[2])
    loaded = LoadedRetrieval(export)
    rng = np.random.default_rng(7)
    n = 64
    histories = [rng.choice(loaded.catalogue.item_id, size=int(rng.integers(1, 11)), replace=False)
                 for _ in range(n)]
    hist = np.full((n, 10), -1, np.int64)
    for row, h in enumerate(histories):
        hist[row, :h.size] = h
    feats = {"user_id": tf.constant(rng.integers(1, 130, n), tf.int64), "history": tf.constant(hist),
             "age": tf.constant(rng.uniform(18, 60, n).astype(np.float32)),
             "gender": tf.constant(rng.choice(["M", "F", ""], n))}
    query = loaded.query(**feats)["embedding"].numpy()
    items = loaded.embed_items()
    scores = query @ items.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    expected_ids = loaded.catalogue.item_id[order]
    expected_scores = np.take_along_axis(scores, order, axis=1)
    out = {}
    for kind in ("brute", "scann"):
        result = load_topk(index / kind)(**feats)
        ids, got = result["item_ids"].numpy(), result["scores"].numpy()
        rows = loaded.catalogue.rows_of(ids)
        out[kind] = {"shape": list(ids.shape), "dtypes": [str(ids.dtype), str(got.dtype)],
                     "max_score_error": float(np.abs(got - expected_scores).max()),
                     "max_own_score_error": float(np.abs(np.take_along_axis(scores, rows, 1) - got).max()),
                     "same_ids": float((ids == expected_ids).mean()),
                     "recall": float(np.mean([np.intersect1d(a, b).size / 10 for a, b in zip(ids, expected_ids)]))}
    faiss_index, item_ids = load_faiss(index / "faiss")
    got, ids = search_faiss(faiss_index, item_ids, query, 10)
    out["faiss"] = {"nprobe": int(faiss_index.nprobe), "nlist": int(faiss_index.nlist),
                    "max_score_error": float(np.abs(got - expected_scores).max()),
                    "same_ids": float((ids == expected_ids).mean())}
    print(json.dumps(out))
""")


def test_indexes_reload_in_a_fresh_process(built: tuple[Path, dict], export_dir: Path, tmp_path: Path) -> None:
    out, _ = built
    script = tmp_path / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, str(script), str(export_dir), str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    brute, scann, faiss = result["brute"], result["scann"], result["faiss"]
    assert brute["shape"] == [64, 10] and brute["dtypes"] == ["int64", "float32"]
    # brute force is exactly the top 10 of query @ items.T (ids may swap only on tied scores)
    assert brute["max_score_error"] < 1e-5 and brute["max_own_score_error"] < 1e-5
    assert brute["same_ids"] > 0.98
    assert scann["shape"] == [64, 10] and scann["recall"] >= 0.9
    assert faiss["nprobe"] == faiss["nlist"] == 4
    assert faiss["max_score_error"] < 1e-5 and faiss["same_ids"] > 0.98


def test_changed_catalogue_needs_no_retraining(built: tuple[Path, dict], export_dir: Path, tmp_path: Path) -> None:
    before = _tree_hashes(export_dir)
    items = _items().to_pylist()
    removed = items.pop(5)["item_id"]
    new = dict(
        items[0],
        item_id=10_000,
        title="Brand New Movie (2024)",
        year=2024,
        genres=["Comedy", "Drama"],
        title_tokens=["brand", "new", "movie"],
        n_interactions=0,
        n_recent=0,
        mean_rating=None,
    )
    table = pa.Table.from_pylist(items + [new], schema=_items().schema)
    out = tmp_path / "index"
    summary = build_indexes(export_dir, out, PARAMS | {"k": 1000, "eval_queries": 20, "scann": {}}, items=table)
    expected = set(table.column("item_id").to_pylist())
    assert summary["n_items"] == len(expected) == N_ITEMS and summary["k"] == N_ITEMS
    assert summary["catalogue"] == "items"
    assert set(np.load(out / "faiss" / "item_ids.npy").tolist()) == expected
    history = tf.constant([[1] + [-1] * 9, [10_000] + [-1] * 9], tf.int64)
    feats = {
        "user_id": tf.constant([1, 2], tf.int64),
        "history": history,
        "age": tf.constant([30.0, float("nan")]),
        "gender": tf.constant(["M", ""]),
    }
    for kind in ("brute", "scann"):
        ids = load_topk(out / kind)(**feats)["item_ids"].numpy()
        assert all(set(row.tolist()) == expected for row in ids), kind
        assert removed not in ids
    faiss_index, item_ids = load_faiss(out / "faiss")
    _, ids = search_faiss(faiss_index, item_ids, np.ones((1, faiss_index.d), np.float32), 5)
    assert set(ids[0].tolist()) <= expected
    assert _tree_hashes(export_dir) == before  # the towers were only read


def test_incomplete_export_raises_and_writes_nothing(export_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    with pytest.raises(DataError, match="retrieval.json"):
        build_indexes(tmp_path / "missing", out, PARAMS)
    partial = tmp_path / "partial"
    shutil.copytree(export_dir, partial)
    (partial / "candidate_tower" / "saved_model.pb").unlink()
    with pytest.raises(DataError, match=r"candidate_tower.saved_model\.pb"):
        build_indexes(partial, out, PARAMS)
    with pytest.raises(DataError, match="n_recent"):
        build_indexes(export_dir, out, PARAMS, items=_items().drop_columns(["n_recent"]))
    with pytest.raises(ParamsError, match="index.faiss.nlist"):
        build_indexes(export_dir, out, PARAMS | {"faiss": {"nlist": 0}})
    with pytest.raises(ParamsError, match="num_leafs"):
        build_indexes(export_dir, out, PARAMS | {"scann": {"num_leafs": 10}})
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial"]


class _Identity(tf.keras.layers.Layer):
    """A stand-in query model: the input ``q`` is already the query embedding."""

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        return inputs["q"]


def test_unfilled_slots_are_marked_empty() -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(160, 8)).astype(np.float32)
    ids = np.arange(1000, 1160)
    specs = {"q": tf.TensorSpec([None, 8], tf.float32, name="q")}
    scann = {
        "num_leaves": 12,
        "num_leaves_to_search": 2,
        "dimensions_per_block": 2,
        "num_reordering_candidates": 160,
        "training_iterations": 12,
    }
    module = build_topk("scann", _Identity(), embeddings, ids, specs, k=160, scann=scann)
    out = module.serve(q=tf.constant(embeddings[:4]))
    got_ids, got_scores = out["item_ids"].numpy(), out["scores"].numpy()
    empty = got_ids == -1
    assert empty.any()  # two leaves of twelve cannot hold all 160 items
    assert np.isneginf(got_scores[empty]).all() and np.isfinite(got_scores[~empty]).all()
    assert all(np.unique(row[row >= 0]).size == (row >= 0).sum() for row in got_ids)  # no padded duplicates
    index = build_faiss(embeddings, {"nlist": 4, "nprobe": 1})
    scores, found = search_faiss(index, ids, embeddings[:4], 160)
    assert (found == -1).any() and np.isneginf(scores[found == -1]).all()


def test_index_tuning_picks_the_cheapest_setting_reaching_the_target() -> None:
    import faiss
    import numpy as np

    from movierec.models.faiss_index import build_faiss
    from movierec.models.index_tuning import exact_top_k, ladder, tune_faiss

    assert ladder(1) == [1] and ladder(10) == [1, 2, 4, 8, 10]
    rng = np.random.default_rng(0)
    items = rng.normal(size=(2000, 16)).astype(np.float32)
    queries = rng.normal(size=(100, 16)).astype(np.float32)
    ids = np.arange(2000, dtype=np.int64) + 10
    truth = exact_top_k(queries, items, ids, 20)
    index = build_faiss(items, {"nlist": 32, "nprobe": 1})
    nprobe, tried = tune_faiss(index, ids, queries, truth, 20, 0.9)
    assert tried[-1]["nprobe"] == nprobe and tried[-1]["recall"] >= 0.9
    assert all(row["recall"] < 0.9 for row in tried[:-1])
    assert faiss.extract_index_ivf(index).nprobe == nprobe  # left set on the index
    # an unreachable target searches every list (exact)
    nprobe, _ = tune_faiss(index, ids, queries, truth, 20, 1.01)
    assert nprobe == 32
