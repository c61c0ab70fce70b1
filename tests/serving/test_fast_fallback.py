"""The server uses a NumPy fast path only when it reproduces the SavedModel; otherwise the SavedModel."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from bundle_fixture import TinyProject

from movierec.serving.service import Recommender, UserQuery


def test_a_wrong_fast_path_is_refused_and_the_saved_model_serves(tiny_project: TinyProject, tmp_path: Path) -> None:
    bundle = tmp_path / "checkpoints"
    shutil.copytree(tiny_project.checkpoints, bundle)
    good = Recommender(bundle)
    assert good.fast_ranker is not None and good.fast_query is not None
    user = next(iter(good.histories))
    items = good.catalogue.item_id[:10].tolist()
    expected, _ = good.rank(UserQuery(user_id=user), [], items)

    weights = bundle / "ranking" / "weights.npz"  # not a manifest part: the load check must catch it
    with np.load(weights) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["click_0_kernel"] = arrays["click_0_kernel"] * -1.0
    np.savez(weights, **arrays)
    tampered = Recommender(bundle)
    assert tampered.fast_ranker is None
    ranked, _ = tampered.rank(UserQuery(user_id=user), [], items)
    assert ranked.item_ids == expected.item_ids
    assert np.allclose(ranked.scores, expected.scores, atol=1e-5)
