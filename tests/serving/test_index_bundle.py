"""A bundle enlarged with synthetic items (``movierec bench bundle``) loads, passes its smoke
test and serves the chain through the index its build recorded for ``auto``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import yaml
from bundle_fixture import TinyProject, chdir

from movierec.models.bundle import check_manifest
from movierec.models.index_rules import IndexRules, faiss_nlist
from movierec.serving.routes.recommend import resolve_index
from movierec.serving.service import recorded_index

N_ITEMS = 2_000
BRUTE_MAX = 1_000  # below the enlarged catalogue: its build must record FAISS for `auto`


@pytest.fixture(scope="module")
def enlarged(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The tiny bundle enlarged to N_ITEMS items, then served (one worker) and smoke-tested by the command."""
    from movierec.cli import main

    base = tmp_path_factory.mktemp("enlarged")
    params = json.loads(json.dumps(tiny_project.params))
    params["index"].setdefault("rules", {})["brute_max_items"] = BRUTE_MAX
    params_file = base / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    out, report = base / "bundle", base / "report.json"
    argv = ["--params", str(params_file), "bench", "bundle", "--source", str(tiny_project.checkpoints)]
    argv += ["--items", str(N_ITEMS), "--out", str(out), "--smoke", "--serve", "--workers", "1"]
    argv += ["--requests", "5", "--json", str(report)]
    with chdir(base):
        assert main(argv) == 0
    return out, json.loads(report.read_text(encoding="utf-8"))


def test_the_enlarged_bundle_is_a_valid_bundle_of_the_asked_size(
    enlarged: tuple[Path, dict[str, Any]], tiny_project: TinyProject
) -> None:
    out, _ = enlarged
    source = check_manifest(tiny_project.checkpoints)
    manifest = check_manifest(out)  # every digest recomputed, the version sealed
    note = manifest["synthetic_catalogue"]
    assert manifest["version"] != source["version"] and note["source_version"] == source["version"]
    real = pq.read_table(tiny_project.checkpoints / "retrieval" / "catalogue.parquet")
    catalogue = pq.read_table(out / "retrieval" / "catalogue.parquet")
    assert catalogue.num_rows == N_ITEMS == note["items"] and note["synthetic_items"] == N_ITEMS - real.num_rows
    assert catalogue.slice(0, real.num_rows).equals(real)  # the real items untouched
    ids = catalogue.column("item_id").to_numpy()
    assert np.unique(ids).size == N_ITEMS and ids[real.num_rows] > real.column("item_id").to_numpy().max()
    new = catalogue.slice(real.num_rows)
    assert set(new.column("n_interactions").to_pylist()) == {0.0}  # no event ever touched them
    assert len(set(map(tuple, new.column("title_tokens").to_pylist()))) > N_ITEMS // 4  # varied, not copies
    ease = sp.load_npz(out / "ranking" / "ease.npz")
    assert ease.shape == (N_ITEMS, N_ITEMS)
    assert ease.nnz == sp.load_npz(tiny_project.checkpoints / "ranking" / "ease.npz").nnz
    with np.load(out / "ranking" / "context.npz") as context:
        assert np.array_equal(context["item_ids"], ids)


def test_the_build_records_the_rules_and_auto_s_choice(enlarged: tuple[Path, dict[str, Any]]) -> None:
    out, report = enlarged
    index = json.loads((out / "retrieval" / "index.json").read_text(encoding="utf-8"))
    rules = IndexRules(**index["rules"])
    assert index["n_items"] == N_ITEMS and index["auto"] == "faiss" and rules.brute_max_items == BRUTE_MAX
    assert index["faiss"]["nlist"] == faiss_nlist(N_ITEMS, rules)
    assert min(index["recall"].values()) >= index["target_recall"] - 0.05
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["metrics"]["index"] == index and recorded_index(manifest) == "faiss"
    assert report["index"]["auto"] == "faiss"


def test_the_service_loads_it_passes_the_smoke_test_and_serves_through_faiss(
    enlarged: tuple[Path, dict[str, Any]],
) -> None:
    _, report = enlarged
    smoke = report["smoke"]
    assert smoke["seconds"] > 0 and min(smoke["overlaps"].values()) >= 0.8
    served = report["service"]
    assert served["ready"]["items"] == N_ITEMS and served["ready"]["ready"] is True
    for name in ("chain", "retrieval"):
        assert served[name]["requests"] == 5 and served[name]["indexes"] == ["faiss"]
        assert 0 < served[name]["p50_ms"] <= served[name]["p99_ms"]
    (worker,) = served["memory_after_requests"].values()
    assert worker["rss_bytes"] > 50 * 2**20 and worker["peak_rss_bytes"] >= worker["rss_bytes"]


def test_auto_follows_the_recorded_choice_and_falls_back_without_one() -> None:
    assert resolve_index("auto", 1_682, 10_000, "faiss") == "faiss"
    assert resolve_index("auto", 1_682, 10_000) == "brute" and resolve_index("auto", 50_000, 10_000) == "faiss"
    assert resolve_index("brute", 1_000_000, 10_000, "faiss") == "brute"  # a request's own choice wins
    assert recorded_index({"metrics": {"index": {"auto": "scann"}}}) == "scann"
    for manifest in ({}, {"metrics": {}}, {"metrics": {"index": {"auto": "annoy"}}}, {"metrics": "x"}):
        assert recorded_index(manifest) is None
