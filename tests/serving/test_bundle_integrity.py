"""A bundle proves itself: its manifest lists every part, inside the bundle, under a computed
version, and its indexes and ranker agree with their exact references before it serves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_fixture import API_KEY, TinyProject, make_settings
from fastapi.testclient import TestClient

from movierec.errors import DataError
from movierec.models.bundle import REQUIRED, check_manifest, content_version, tree_hash
from movierec.models.ranking_features import DENSE_FEATURES, pair_features
from movierec.serving.app import create_app
from movierec.serving.service import Recommender
from movierec.serving.smoke import MIN_INDEX_OVERLAP, SmokeTestFailed, index_overlaps, sample_users, smoke_test


def _copy(project: TinyProject, tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle" / "checkpoints"  # two levels down: "../../x" stays in tmp_path
    shutil.copytree(project.checkpoints, bundle)
    return bundle


def _edit_manifest(bundle: Path, **changes: Any) -> dict[str, Any]:
    """Rewrite fields of the manifest (the version label untouched unless given)."""
    path = bundle / "manifest.json"
    manifest = {**json.loads(path.read_text(encoding="utf-8")), **changes}
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def _reseal(bundle: Path) -> None:
    """What an attacker who knows the format does after replacing a part: rehash every part
    and recompute the version, so the manifest check passes and only the smoke test is left."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    parts = {part: tree_hash(bundle / part) for part in manifest["parts"]}
    version = content_version(manifest["data_fingerprint"], manifest["params"], parts)
    _edit_manifest(bundle, parts=parts, version=version)


def _with_parts(bundle: Path, parts: dict[str, str]) -> None:
    """Manifest parts replaced, the version recomputed: only the parts check can object."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    _edit_manifest(
        bundle, parts=parts, version=content_version(manifest["data_fingerprint"], manifest["params"], parts)
    )


def _refusal(bundle: Path) -> str:
    with pytest.raises(DataError) as caught:
        check_manifest(bundle)
    return str(caught.value)


def test_a_manifest_with_no_parts_is_refused(tiny_project: TinyProject, tmp_path: Path) -> None:
    bundle = _copy(tiny_project, tmp_path)
    _with_parts(bundle, {})
    message = _refusal(bundle)
    assert "lists no digest for" in message
    assert all(part in message for part in REQUIRED)


def test_a_manifest_missing_one_part_is_refused(tiny_project: TinyProject, tmp_path: Path) -> None:
    bundle = _copy(tiny_project, tmp_path)
    parts = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["parts"]
    del parts["ranking/pointwise"]
    _with_parts(bundle, parts)
    message = _refusal(bundle)
    assert "ranking/pointwise (ranker SavedModel)" in message and "retrieval/faiss" not in message


def test_an_unknown_part_is_refused(tiny_project: TinyProject, tmp_path: Path) -> None:
    bundle = _copy(tiny_project, tmp_path)
    parts = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["parts"]
    _with_parts(bundle, {**parts, "ranking/weights.npz": tree_hash(bundle / "ranking" / "weights.npz")})
    assert "unknown parts ranking/weights.npz" in _refusal(bundle)


@pytest.mark.parametrize("outside", ["../../etc/passwd", "/etc/passwd", "retrieval/../../../etc/passwd"])
def test_a_part_outside_the_bundle_is_refused_without_saying_whether_it_exists(
    tiny_project: TinyProject, tmp_path: Path, outside: str
) -> None:
    bundle = _copy(tiny_project, tmp_path)
    (tmp_path / "secret").write_text("x")  # ../../secret exists, ../../no/such/file does not
    parts = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["parts"]
    messages = {}
    for name in (outside, "../../secret", "../../no/such/file"):
        _with_parts(bundle, {**parts, name: "0" * 64})
        messages[name] = _refusal(bundle).replace(repr(name), "<part>")
    assert len(set(messages.values())) == 1, messages
    assert "not a relative path inside the bundle folder" in messages[outside]


def test_a_part_that_links_out_of_the_bundle_is_refused_like_any_outside_path(
    tiny_project: TinyProject, tmp_path: Path
) -> None:
    bundle = _copy(tiny_project, tmp_path)
    part = bundle / "retrieval" / "retrieval.json"
    messages = []
    for target in (tmp_path / "outside.json", tmp_path / "no-such.json"):
        if target.name == "outside.json":
            shutil.copy(part, target)  # the same content: the digest alone would accept it
        part.unlink()
        part.symlink_to(target)
        messages.append(_refusal(bundle))
    assert messages[0] == messages[1] and "'retrieval/retrieval.json' is not a relative path inside" in messages[0]


def test_an_edited_version_label_is_refused(tiny_project: TinyProject, tmp_path: Path) -> None:
    bundle = _copy(tiny_project, tmp_path)
    _edit_manifest(bundle, version="0123456789abcdef")
    assert "version label '0123456789abcdef' does not match the bundle's content" in _refusal(bundle)


def test_an_edited_data_fingerprint_is_refused(tiny_project: TinyProject, tmp_path: Path) -> None:
    bundle = _copy(tiny_project, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    _edit_manifest(bundle, data_files={**manifest["data_files"], "items.parquet": "0" * 64})
    assert "data fingerprint does not match" in _refusal(bundle)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("parts", ["retrieval/faiss"]),
        ("parts", {"retrieval/faiss": 7}),
        ("parts", None),
        ("parts", ...),
        ("version", ...),
    ],
)
def test_a_malformed_manifest_is_a_data_error(
    tiny_project: TinyProject, tmp_path: Path, field: str, value: Any
) -> None:
    bundle = _copy(tiny_project, tmp_path)
    manifest = _edit_manifest(bundle, **{field: value} if value is not ... else {})
    if value is ...:  # the field left out
        del manifest[field]
        (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert "manifest" in _refusal(bundle)
    (bundle / "manifest.json").write_text("[1, 2]", encoding="utf-8")
    assert "not an object" in _refusal(bundle)


def test_an_intact_bundle_passes_and_its_indexes_agree_with_brute_force(tiny_project: TinyProject) -> None:
    assert check_manifest(tiny_project.checkpoints)["version"]
    candidate = Recommender(tiny_project.checkpoints)
    smoke_test(candidate)
    overlaps = index_overlaps(candidate, sample_users(candidate))
    assert overlaps == {"scann": 1.0, "faiss": 1.0}


def _shuffled_faiss(project: TinyProject, tmp_path: Path) -> Path:
    bundle = _copy(project, tmp_path)
    ids = bundle / "retrieval" / "faiss" / "item_ids.npy"
    np.save(ids, np.random.default_rng(0).permutation(np.load(ids)))
    _reseal(bundle)
    check_manifest(bundle)  # the manifest alone cannot tell
    return bundle


def test_a_shuffled_faiss_id_map_is_refused_by_the_smoke_test(tiny_project: TinyProject, tmp_path: Path) -> None:
    candidate = Recommender(_shuffled_faiss(tiny_project, tmp_path))
    with pytest.raises(
        SmokeTestFailed, match=r"the faiss index disagrees with brute force: mean top-10 overlap 0\.\d\d"
    ):
        smoke_test(candidate)
    assert index_overlaps(candidate, sample_users(candidate))["faiss"] < MIN_INDEX_OVERLAP


def test_reload_refuses_a_shuffled_faiss_id_map_and_keeps_serving(
    client: TestClient, tiny_project: TinyProject, manifest: dict[str, Any], tmp_path: Path
) -> None:
    bundle = _shuffled_faiss(tiny_project, tmp_path)
    r = client.post("/admin/reload", json={"path": str(bundle)}, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reloaded"] is False and "faiss index disagrees with brute force" in body["reason"]
    assert client.get("/ready").json()["model_version"] == manifest["version"]


def test_start_up_refuses_a_shuffled_faiss_id_map(tiny_project: TinyProject, tmp_path: Path) -> None:
    settings = make_settings(tiny_project, tmp_path / "db.sqlite", bundle_dir=_shuffled_faiss(tiny_project, tmp_path))
    with TestClient(create_app(settings)) as started:
        r = started.get("/ready")
    assert r.status_code == 503 and "faiss index disagrees with brute force" in r.json()["reason"]


def test_a_fast_ranker_that_agrees_only_where_the_load_check_looks_is_refused(
    tiny_project: TinyProject, tmp_path: Path
) -> None:
    """A backdoor in ranking/weights.npz: one more hidden unit, silent for the user the load
    check compares (and for every user on their side of a feature), firing for the others."""
    bundle = _copy(tiny_project, tmp_path)
    good = Recommender(bundle)
    weights = bundle / "ranking" / "weights.npz"
    with np.load(weights) as data:
        arrays = {k: data[k] for k in data.files}
    assert "trunk_1_kernel" not in arrays  # the tiny ranker has one hidden layer
    column = DENSE_FEATURES.index("user_mean_rating")
    first = next(iter(good.histories))  # the user of the load check
    users = np.array([first, *sample_users(good)], np.int64)
    feats = pair_features(
        good.context,
        users,
        np.zeros(users.size, np.int64),
        np.zeros((users.size, good.item_embeddings.shape[1]), np.float32),
    )
    scaled = (feats["user_mean_rating"] - arrays["means"][column]) / arrays["stds"][column]
    sign = 1.0 if (scaled[1:] > scaled[0]).sum() >= (scaled[1:] < scaled[0]).sum() else -1.0
    assert (sign * scaled[1:] > sign * scaled[0] + 1e-3).any()
    unit = np.zeros((arrays["trunk_0_kernel"].shape[0], 1), np.float32)
    unit[column] = sign
    arrays["trunk_0_kernel"] = np.concatenate([arrays["trunk_0_kernel"], unit], axis=1)
    arrays["trunk_0_bias"] = np.append(arrays["trunk_0_bias"], -sign * scaled[0] - 1e-3).astype(np.float32)
    arrays["click_0_kernel"] = np.concatenate([arrays["click_0_kernel"], [[50.0]]]).astype(np.float32)
    width = arrays["rating_0_kernel"].shape[1]
    arrays["rating_0_kernel"] = np.concatenate([arrays["rating_0_kernel"], np.zeros((1, width), np.float32)])
    np.savez(weights, **arrays)  # not a manifest part: nothing to reseal

    tampered = Recommender(bundle)
    assert tampered.fast_ranker is not None  # the load check, on one user, lets it through
    with pytest.raises(SmokeTestFailed, match="the served ranker disagrees with the ranker SavedModel: scores"):
        smoke_test(tampered)
